// The subset of the NBD protocol (NetworkBlockDevice doc/proto.md) that spindle-block speaks:
// fixed newstyle handshake, simple and structured replies, the `base:allocation` meta context.
// docs/formats/nbd.md lists what is supported.
// All integers on the wire are big-endian. This file is the only place that knows the layouts;
// its functions are pure (no I/O) so they are unit-tested directly.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace spindle::client::nbd {

// Handshake.
inline constexpr uint64_t kNbdMagic = 0x4e42444d41474943;  // "NBDMAGIC"
inline constexpr uint64_t kIHaveOpt = 0x49484156454F5054;  // "IHAVEOPT"
inline constexpr uint64_t kOptReplyMagic = 0x3e889045565a9;
inline constexpr uint16_t kFlagFixedNewstyle = 1 << 0;
inline constexpr uint16_t kFlagNoZeroes = 1 << 1;
inline constexpr uint32_t kClientFlagFixedNewstyle = 1 << 0;
inline constexpr uint32_t kClientFlagNoZeroes = 1 << 1;

// Options.
inline constexpr uint32_t kOptExportName = 1;
inline constexpr uint32_t kOptAbort = 2;
inline constexpr uint32_t kOptList = 3;
inline constexpr uint32_t kOptStartTls = 5;
inline constexpr uint32_t kOptInfo = 6;
inline constexpr uint32_t kOptGo = 7;
inline constexpr uint32_t kOptStructuredReply = 8;
inline constexpr uint32_t kOptListMetaContext = 9;
inline constexpr uint32_t kOptSetMetaContext = 10;

// Option reply types.
inline constexpr uint32_t kRepAck = 1;
inline constexpr uint32_t kRepServer = 2;
inline constexpr uint32_t kRepInfo = 3;
inline constexpr uint32_t kRepMetaContext = 4;
inline constexpr uint32_t kRepErrBit = 1u << 31;
inline constexpr uint32_t kRepErrUnsup = kRepErrBit | 1;
inline constexpr uint32_t kRepErrPolicy = kRepErrBit | 2;
inline constexpr uint32_t kRepErrInvalid = kRepErrBit | 3;
inline constexpr uint32_t kRepErrUnknown = kRepErrBit | 6;

// NBD_INFO_* items in NBD_REP_INFO replies.
inline constexpr uint16_t kInfoExport = 0;
inline constexpr uint16_t kInfoName = 1;
inline constexpr uint16_t kInfoDescription = 2;
inline constexpr uint16_t kInfoBlockSize = 3;

// Transmission flags.
inline constexpr uint16_t kTxHasFlags = 1 << 0;
inline constexpr uint16_t kTxReadOnly = 1 << 1;
inline constexpr uint16_t kTxSendFlush = 1 << 2;
inline constexpr uint16_t kTxSendFua = 1 << 3;
inline constexpr uint16_t kTxSendTrim = 1 << 5;
inline constexpr uint16_t kTxSendWriteZeroes = 1 << 6;
inline constexpr uint16_t kTxSendDf = 1 << 7;
inline constexpr uint16_t kTxCanMultiConn = 1 << 8;

// Requests and replies.
inline constexpr uint32_t kRequestMagic = 0x25609513;
inline constexpr uint32_t kSimpleReplyMagic = 0x67446698;
inline constexpr size_t kRequestHeaderSize = 28;
inline constexpr size_t kSimpleReplySize = 16;
inline constexpr uint16_t kCmdRead = 0;
inline constexpr uint16_t kCmdWrite = 1;
inline constexpr uint16_t kCmdDisc = 2;
inline constexpr uint16_t kCmdFlush = 3;
inline constexpr uint16_t kCmdTrim = 4;
inline constexpr uint16_t kCmdWriteZeroes = 6;
inline constexpr uint16_t kCmdBlockStatus = 7;
inline constexpr uint16_t kCmdFlagFua = 1 << 0;
inline constexpr uint16_t kCmdFlagNoHole = 1 << 1;
inline constexpr uint16_t kCmdFlagDf = 1 << 2;
inline constexpr uint16_t kCmdFlagReqOne = 1 << 3;

// Structured replies.
inline constexpr uint32_t kStructuredReplyMagic = 0x668e33ef;
inline constexpr size_t kStructuredReplyHeaderSize = 20;
inline constexpr uint16_t kReplyFlagDone = 1 << 0;
inline constexpr uint16_t kReplyTypeNone = 0;
inline constexpr uint16_t kReplyTypeOffsetData = 1;
inline constexpr uint16_t kReplyTypeOffsetHole = 2;
inline constexpr uint16_t kReplyTypeBlockStatus = 5;
inline constexpr uint16_t kReplyTypeError = (1 << 15) | 1;

// The one meta context: base:allocation (NBD_STATE_HOLE / NBD_STATE_ZERO per extent).
inline constexpr char kMetaBaseAllocation[] = "base:allocation";
inline constexpr uint32_t kMetaContextBaseAllocation = 1;  // our context id for it
inline constexpr uint32_t kStateHole = 1 << 0;
inline constexpr uint32_t kStateZero = 1 << 1;

// Errors in replies (NBD_E*; values of Linux errno).
inline constexpr uint32_t kEPerm = 1;
inline constexpr uint32_t kEIo = 5;
inline constexpr uint32_t kENoMem = 12;
inline constexpr uint32_t kEInval = 22;
inline constexpr uint32_t kENoSpc = 28;
inline constexpr uint32_t kEOverflow = 75;
inline constexpr uint32_t kENotSup = 95;

// Limits of this server.
inline constexpr uint32_t kMaxOptionBytes = 4096;        // option payload; bigger: ERR_INVALID
inline constexpr uint32_t kMaxOptionsPerHandshake = 64;  // then the connection is closed
inline constexpr uint32_t kMaxPayloadBytes = 32 * 1024 * 1024;  // READ/WRITE length
inline constexpr uint32_t kMaxInfoRequests = 32;
inline constexpr uint32_t kMinBlockBytes = 512;
inline constexpr uint32_t kPreferredBlockBytes = 4096;
inline constexpr uint32_t kMaxMetaQueries = 64;         // per LIST/SET_META_CONTEXT option
inline constexpr uint32_t kMaxErrorMessageBytes = 128;  // in a structured error chunk

// Big-endian helpers over byte buffers.
uint16_t Load16(const uint8_t* p);
uint32_t Load32(const uint8_t* p);
uint64_t Load64(const uint8_t* p);
void Append16(std::vector<uint8_t>& out, uint16_t v);
void Append32(std::vector<uint8_t>& out, uint32_t v);
void Append64(std::vector<uint8_t>& out, uint64_t v);

struct Request {
  uint16_t flags = 0;
  uint16_t type = 0;
  uint64_t cookie = 0;
  uint64_t offset = 0;
  uint32_t length = 0;
};

// Decodes a request header. false when the magic is wrong (the connection must be closed).
bool DecodeRequest(const uint8_t* in /* kRequestHeaderSize bytes */, Request& out);
void EncodeRequest(const Request& r, uint8_t* out /* kRequestHeaderSize bytes */);
void EncodeSimpleReply(uint32_t error, uint64_t cookie, uint8_t* out /* kSimpleReplySize */);

// What the session must do with a decoded request.
enum class Verdict {
  kExecute,     // valid: run it
  kReplyError,  // reply with `error` (after reading and discarding a WRITE payload)
  kClose,       // unrecoverable (e.g. a WRITE payload too large to skip): close the connection
  kDisconnect,  // NBD_CMD_DISC: stop reading, finish in-flight requests, close
};
struct Validation {
  Verdict verdict = Verdict::kExecute;
  uint32_t error = 0;
};

struct ExportView {
  uint64_t size_bytes = 0;
  bool read_only = false;
  bool structured = false;       // NBD_OPT_STRUCTURED_REPLY was negotiated
  bool base_allocation = false;  // base:allocation was selected with SET_META_CONTEXT
};

// Checks one request against the export: known command, known flags, bounds, alignment of
// writes, write permission, and that BLOCK_STATUS has a meta context to report.
Validation ValidateRequest(const Request& r, const ExportView& ex);

// Transmission flags advertised for an export.
uint16_t TransmissionFlags(const ExportView& ex);

// Structured reply chunks (header + payload; READ data is sent after its 8-byte offset).
std::vector<uint8_t> EncodeChunkHeader(uint16_t flags, uint16_t type, uint64_t cookie,
                                       uint32_t length);
// The same into `out` (kStructuredReplyHeaderSize bytes), for replies built without the heap.
void EncodeChunkHeader(uint16_t flags, uint16_t type, uint64_t cookie, uint32_t length,
                       uint8_t* out);
// A successful READ's single OFFSET_DATA chunk up to its data: header + offset.
inline constexpr size_t kReadChunkHeadSize = kStructuredReplyHeaderSize + 8;
void EncodeReadChunkHead(uint64_t cookie, uint64_t offset, uint32_t data_length,
                         uint8_t* out /* kReadChunkHeadSize */);
// NBD_REPLY_TYPE_ERROR with DONE; the message is cut to kMaxErrorMessageBytes.
std::vector<uint8_t> EncodeErrorChunk(uint64_t cookie, uint32_t error, std::string_view message);
// One base:allocation extent.
struct StatusExtent {
  uint32_t length = 0;
  uint32_t flags = 0;  // kStateHole | kStateZero, or 0 for data
};
// NBD_REPLY_TYPE_BLOCK_STATUS with DONE for context `context_id`.
std::vector<uint8_t> EncodeBlockStatusChunk(uint64_t cookie, uint32_t context_id,
                                            std::span<const StatusExtent> extents);

// Parsed body of NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT.
struct MetaContextRequest {
  std::string name;
  std::vector<std::string> queries;
};
// false when the body is malformed or has more than kMaxMetaQueries queries.
bool DecodeMetaContextRequest(std::span<const uint8_t> body, MetaContextRequest& out);
// Whether a query selects base:allocation: LIST matches "base:" and the full name (and an
// empty query list means "everything"); SET matches only the full name.
bool QuerySelectsBaseAllocation(std::string_view query, bool listing);

// Parsed body of NBD_OPT_INFO / NBD_OPT_GO.
struct InfoRequest {
  std::string name;
  std::vector<uint16_t> items;
};
// false when the body is malformed (reply NBD_REP_ERR_INVALID).
bool DecodeInfoRequest(std::span<const uint8_t> body, InfoRequest& out);

// One option reply header + data.
std::vector<uint8_t> EncodeOptionReply(uint32_t option, uint32_t type,
                                       std::span<const uint8_t> data);

}  // namespace spindle::client::nbd
