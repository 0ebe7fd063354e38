// Data wire protocol v1 between spindle-block (and tools) and spindle-server. Layout and rules
// are described in docs/formats/wire.md; this file is the only place that encodes them.
//
// A frame is a 32-byte header followed by payload_len bytes. Many requests may be in flight on
// one connection; responses carry the request's id and may come back in any order. A response
// with status != 0 carries a UTF-8 error message as its payload. All integers little-endian.
//
// Decoders validate every length against the limits below and against the actual buffer; a
// decoder never reads past what it is given. Decoded spans point into the caller's buffer.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/ids.h"
#include "common/status.h"
#include "common/units.h"

namespace spindle::proto {

inline constexpr uint32_t kWireMagic = 0x444e5053;  // bytes "SPND"
inline constexpr uint16_t kWireVersion = 1;
inline constexpr size_t kHeaderSize = 32;
inline constexpr uint32_t kMaxIoBytes = static_cast<uint32_t>(kObjectSize);
inline constexpr uint32_t kMaxChunks = kMaxIoBytes / kBlockSize;  // crcs per I/O
inline constexpr uint32_t kMaxChainLength = 64;
inline constexpr uint32_t kMaxErrorBytes = 4096;
inline constexpr uint32_t kMaxDisksPerServer = 256;
// Entries one OBJECT_LIST answer may carry.
inline constexpr uint32_t kMaxListEntries = 65536;
// The largest payload of any message: a whole object's image (OBJECT_PULL: data, checksums
// and two bitmaps), a little more than a full-object write with its checksums.
inline constexpr uint32_t kMaxPayloadBytes = kMaxIoBytes + 4 * kMaxChunks + 4096;

enum class MsgType : uint16_t {
  kHello = 1,
  kWrite = 2,
  kRead = 3,
  kObjectInfo = 4,
  kTrim = 5,
  kBlockStatus = 6,
  kObjectList = 7,
  kObjectPull = 8,
  kObjectSync = 9,
};
inline constexpr uint16_t kResponseBit = 0x8000;

struct FrameHeader {
  uint16_t type = 0;  // MsgType, | kResponseBit on responses
  uint64_t request_id = 0;
  uint32_t payload_len = 0;
  int32_t status = 0;  // spindle::Code on responses; 0 on requests
};

void EncodeHeader(const FrameHeader& h, uint8_t* out /* kHeaderSize bytes */);
// Checks magic, version, header checksum, known type, payload_len <= kMaxPayloadBytes.
Result<FrameHeader> DecodeHeader(const uint8_t* in /* kHeaderSize bytes */);

// WRITE and TRIM flags. kWriteFlagSkip: the write follows version - kVersionSkip instead of
// version - 1 — a client's first write of an object after it learnt the object's version from
// the replicas it could reach, so that a copy holding writes nobody acknowledged (issued
// before, applied on a replica then out of reach) can never pass for the same version
// (docs/decisions/0014).
inline constexpr uint32_t kWriteFlagFua = 1;
inline constexpr uint32_t kWriteFlagSkip = 2;
inline constexpr uint32_t kWriteFlagsKnown = kWriteFlagFua | kWriteFlagSkip;
inline constexpr uint64_t kVersionSkip = uint64_t{1} << 20;
// The version a WRITE or TRIM with `flags` follows.
inline uint64_t BaseVersion(uint64_t version, uint32_t flags) {
  return (flags & kWriteFlagSkip) != 0 ? version - kVersionSkip : version - 1;
}

// WRITE: apply data at [offset, offset+length) of one object of one layer, as version
// `version`. crcs[i] = Crc32c of the i-th 4 KiB chunk of data (the last may be shorter).
// offset and length are multiples of 512, length > 0, offset + length <= kObjectSize.
struct WriteRequest {
  DiskId disk;
  LayerId layer;
  ObjectIndex object;
  uint64_t version = 0;
  uint32_t offset = 0;
  uint32_t flags = 0;
  std::span<const uint32_t> crcs;  // decoded: points into the payload (aligned by layout)
  std::span<const uint8_t> data;
  uint32_t client = 0;  // the writing client's id (fencing); 0: a tool or a server
};
struct WriteResponse {
  uint64_t version = 0;  // the object's applied version after this write
};

// READ: [offset, offset+length) of one object through a chain of layers (top first): each
// 4 KiB block comes from the first layer that has it, zeros where none has. The server checks
// its stored checksums and answers kCorruption on a mismatch.
// READ flags. kReadClientChecks: the client checks the data against the crcs itself, so a
// server may send stored blocks without checking them first; a client that finds a mismatch
// reads the replica again without the flag (the server then checks, and repairs a bad copy).
inline constexpr uint32_t kReadClientChecks = 1;
inline constexpr uint32_t kReadFlagsKnown = kReadClientChecks;
struct ReadRequest {
  DiskId disk;
  ObjectIndex object;
  uint32_t offset = 0;
  uint32_t length = 0;
  std::vector<LayerId> chain;  // 1..kMaxChainLength layers, top first
  uint32_t flags = 0;          // kRead*
};
struct ReadResponse {
  uint64_t version = 0;            // version of the object in the top layer (0: never written)
  std::span<const uint32_t> crcs;  // per 4 KiB chunk of data, as in WriteRequest
  std::span<const uint8_t> data;
};

// OBJECT_INFO: version and state of one object of one layer on one disk.
struct ObjectInfoRequest {
  DiskId disk;
  LayerId layer;
  ObjectIndex object;
};
struct ObjectInfoResponse {
  uint64_t version = 0;  // 0: the object does not exist on this disk
  uint32_t state = 0;    // StorPool ObjectState (1 = OBJECT_OK)
  uint32_t blocks_present = 0;
};

// TRIM: after it, [offset, offset+length) of the object reads as zeros through this layer
// (also when a lower layer of a chain has data there), and the store frees what it can.
// Versioned exactly like WRITE (it is a write of zeros that need not be stored). offset and
// length are multiples of 512 as for WRITE; partial 4 KiB blocks are zero-filled in place.
struct TrimRequest {
  DiskId disk;
  LayerId layer;
  ObjectIndex object;
  uint64_t version = 0;
  uint32_t offset = 0;
  uint32_t length = 0;
  uint32_t client = 0;  // as in WriteRequest
  uint32_t flags = 0;   // kWriteFlagSkip or 0
};
// Response: WriteResponse.

// BLOCK_STATUS: which 4 KiB blocks of [offset, offset+length) hold data in some layer of the
// chain (a trimmed block of the top layer counts as a hole). offset and length are multiples of
// 4096. Response bitmap: bit i (LSB first within each byte) = block offset/4096 + i has data.
struct BlockStatusRequest {
  DiskId disk;
  ObjectIndex object;
  uint32_t offset = 0;
  uint32_t length = 0;
  std::vector<LayerId> chain;  // 1..kMaxChainLength layers, top first
};
struct BlockStatusResponse {
  uint32_t blocks = 0;          // length / 4096
  std::vector<uint8_t> bitmap;  // (blocks + 7) / 8 bytes
};

// OBJECT_LIST: the objects stored on a disk, in (layer, object) order, starting strictly after
// (after_layer, after_object); at most `max` (1..kMaxListEntries) per answer.
struct ObjectListRequest {
  DiskId disk;
  uint32_t max = 0;
  LayerId after_layer;
  ObjectIndex after_object;
};
struct ObjectListEntry {
  LayerId layer;
  ObjectIndex object;
  uint32_t state = 0;  // ObjectState; OUTDATED copies report version 0
  uint64_t version = 0;
  bool operator==(const ObjectListEntry&) const = default;
};
struct ObjectListResponse {
  bool more = false;  // the list was cut at `max`
  std::vector<ObjectListEntry> entries;
};

// OBJECT_PULL: one layer's own copy of an object (no chain), for a replica that recovers it.
// A block is present (data follows), zeroed (trimmed in this layer: reads stop here) or absent
// (falls through to lower layers). Data and crcs cover only the present blocks, in order.
struct ObjectPullRequest {
  DiskId disk;
  ObjectIndex object;
  LayerId layer;
};
struct ObjectPullResponse {
  uint64_t version = 0;            // 0: the object does not exist there
  std::vector<uint8_t> present;    // kBlocksPerObject / 8 bytes, bit i = block i
  std::vector<uint8_t> zeroed;     // as present
  std::span<const uint32_t> crcs;  // one per present block
  std::span<const uint8_t> data;   // 4096 bytes per present block
};

// OBJECT_SYNC: asks a replica to bring its copy of (layer, object) to at least `version`, by
// pulling it from the other replicas; answers with the version it now has (WriteResponse).
struct ObjectSyncRequest {
  DiskId disk;
  ObjectIndex object;
  LayerId layer;
  uint64_t version = 0;
};

// HELLO: first message on a connection; names the peer, learns the server's disks.
enum class PeerKind : uint32_t { kClient = 1, kServer = 2, kTool = 3 };
struct HelloRequest {
  PeerKind kind = PeerKind::kClient;
  uint32_t peer_id = 0;
};
struct HelloResponse {
  ServerId server;
  std::vector<DiskId> disks;
};

// Encoders append the payload to `out` (cleared first). Decoders validate and return views.
void EncodePayload(const WriteRequest& m, std::vector<uint8_t>& out);
void EncodePayload(const WriteResponse& m, std::vector<uint8_t>& out);
void EncodePayload(const ReadRequest& m, std::vector<uint8_t>& out);
void EncodePayload(const ReadResponse& m, std::vector<uint8_t>& out);
// A READ response's payload up to its data (which follows as is), so that a server can send the
// data without copying it: EncodePayload == this head + m.data.
void EncodeReadResponseHead(const ReadResponse& m, std::vector<uint8_t>& out);
// Decodes such a head received apart from its data (which is `data`, already in place).
Result<ReadResponse> DecodeReadResponseHead(std::span<const uint8_t> head,
                                            std::span<const uint8_t> data);
// Every request addressed to a disk (WRITE, READ, ... OBJECT_SYNC) starts with the disk id as a
// u32: one encoded request goes to several replicas with only these bytes replaced.
inline constexpr size_t kDiskIdBytes = 4;
void EncodeDiskId(DiskId disk, std::vector<uint8_t>& out);
void EncodePayload(const ObjectInfoRequest& m, std::vector<uint8_t>& out);
void EncodePayload(const ObjectInfoResponse& m, std::vector<uint8_t>& out);
void EncodePayload(const HelloRequest& m, std::vector<uint8_t>& out);
void EncodePayload(const TrimRequest& m, std::vector<uint8_t>& out);
void EncodePayload(const BlockStatusRequest& m, std::vector<uint8_t>& out);
void EncodePayload(const BlockStatusResponse& m, std::vector<uint8_t>& out);
void EncodePayload(const HelloResponse& m, std::vector<uint8_t>& out);
void EncodePayload(const ObjectListRequest& m, std::vector<uint8_t>& out);
void EncodePayload(const ObjectListResponse& m, std::vector<uint8_t>& out);
void EncodePayload(const ObjectPullRequest& m, std::vector<uint8_t>& out);
void EncodePayload(const ObjectPullResponse& m, std::vector<uint8_t>& out);
void EncodePayload(const ObjectSyncRequest& m, std::vector<uint8_t>& out);

Result<WriteRequest> DecodeWriteRequest(std::span<const uint8_t> payload);
Result<WriteResponse> DecodeWriteResponse(std::span<const uint8_t> payload);
Result<ReadRequest> DecodeReadRequest(std::span<const uint8_t> payload);
Result<ReadResponse> DecodeReadResponse(std::span<const uint8_t> payload);
Result<ObjectInfoRequest> DecodeObjectInfoRequest(std::span<const uint8_t> payload);
Result<ObjectInfoResponse> DecodeObjectInfoResponse(std::span<const uint8_t> payload);
Result<HelloRequest> DecodeHelloRequest(std::span<const uint8_t> payload);
Result<TrimRequest> DecodeTrimRequest(std::span<const uint8_t> payload);
Result<BlockStatusRequest> DecodeBlockStatusRequest(std::span<const uint8_t> payload);
Result<BlockStatusResponse> DecodeBlockStatusResponse(std::span<const uint8_t> payload);
Result<HelloResponse> DecodeHelloResponse(std::span<const uint8_t> payload);
Result<ObjectListRequest> DecodeObjectListRequest(std::span<const uint8_t> payload);
Result<ObjectListResponse> DecodeObjectListResponse(std::span<const uint8_t> payload);
Result<ObjectPullRequest> DecodeObjectPullRequest(std::span<const uint8_t> payload);
Result<ObjectPullResponse> DecodeObjectPullResponse(std::span<const uint8_t> payload);
Result<ObjectSyncRequest> DecodeObjectSyncRequest(std::span<const uint8_t> payload);

// Number of 4 KiB chunks (checksums) covering `length` bytes.
inline uint32_t ChunkCount(uint32_t length) {
  return static_cast<uint32_t>((length + kBlockSize - 1) / kBlockSize);
}
// Computes the per-chunk crcs of `data` into `out` (resized).
void ComputeChunkCrcs(std::span<const uint8_t> data, std::vector<uint32_t>& out);
// Checks data against crcs; kCorruption naming the first bad chunk otherwise.
Status VerifyChunkCrcs(std::span<const uint8_t> data, std::span<const uint32_t> crcs);

}  // namespace spindle::proto
