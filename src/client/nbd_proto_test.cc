#include "client/nbd_proto.h"

#include <gtest/gtest.h>

namespace spindle::client::nbd {
namespace {

constexpr ExportView kRw{64 * 1024 * 1024, false};
constexpr ExportView kRo{64 * 1024 * 1024, true};

Request Make(uint16_t type, uint64_t offset, uint32_t length, uint16_t flags = 0) {
  return Request{flags, type, 0x1122334455667788, offset, length};
}

// A request header survives encode/decode bit for bit, and its byte layout is big-endian with
// the request magic first.
TEST(NbdProto, RequestRoundTrip) {
  Request r = Make(kCmdWrite, 0x0102030405060708, 0x0a0b0c0d, kCmdFlagFua);
  uint8_t buf[kRequestHeaderSize];
  EncodeRequest(r, buf);
  EXPECT_EQ(buf[0], 0x25);
  EXPECT_EQ(buf[3], 0x13);
  Request d;
  ASSERT_TRUE(DecodeRequest(buf, d));
  EXPECT_EQ(d.flags, r.flags);
  EXPECT_EQ(d.type, r.type);
  EXPECT_EQ(d.cookie, r.cookie);
  EXPECT_EQ(d.offset, r.offset);
  EXPECT_EQ(d.length, r.length);
}

// A header whose magic is wrong is rejected so the session closes the connection.
TEST(NbdProto, BadMagicRejected) {
  uint8_t buf[kRequestHeaderSize];
  EncodeRequest(Make(kCmdRead, 0, 512), buf);
  buf[0] ^= 0xff;
  Request d;
  EXPECT_FALSE(DecodeRequest(buf, d));
}

// The simple reply carries magic, error and the request's cookie, big-endian.
TEST(NbdProto, SimpleReplyLayout) {
  uint8_t buf[kSimpleReplySize];
  EncodeSimpleReply(kEIo, 0xdeadbeef, buf);
  EXPECT_EQ(Load32(buf), kSimpleReplyMagic);
  EXPECT_EQ(Load32(buf + 4), kEIo);
  EXPECT_EQ(Load64(buf + 8), 0xdeadbeefu);
}

// Valid reads, writes, zeroes and flushes are executed.
TEST(NbdValidate, ValidRequestsExecute) {
  EXPECT_EQ(ValidateRequest(Make(kCmdRead, 0, 1), kRw).verdict, Verdict::kExecute);
  EXPECT_EQ(ValidateRequest(Make(kCmdRead, kRw.size_bytes - 4096, 4096), kRw).verdict,
            Verdict::kExecute);
  EXPECT_EQ(ValidateRequest(Make(kCmdWrite, 4096, 8192, kCmdFlagFua), kRw).verdict,
            Verdict::kExecute);
  EXPECT_EQ(ValidateRequest(Make(kCmdWriteZeroes, 0, 1 << 30 >> 5, kCmdFlagNoHole), kRw).verdict,
            Verdict::kExecute);
  EXPECT_EQ(ValidateRequest(Make(kCmdFlush, 0, 0), kRw).verdict, Verdict::kExecute);
  EXPECT_EQ(ValidateRequest(Make(kCmdRead, 0, 512), kRo).verdict, Verdict::kExecute);
}

// Out-of-range requests get EINVAL (reads) or ENOSPC (writes), including offset overflow.
TEST(NbdValidate, OutOfRange) {
  auto v = ValidateRequest(Make(kCmdRead, kRw.size_bytes - 512, 1024), kRw);
  EXPECT_EQ(v.verdict, Verdict::kReplyError);
  EXPECT_EQ(v.error, kEInval);
  v = ValidateRequest(Make(kCmdWrite, kRw.size_bytes, 512), kRw);
  EXPECT_EQ(v.error, kENoSpc);
  v = ValidateRequest(Make(kCmdRead, ~0ull - 100, 512), kRw);
  EXPECT_EQ(v.error, kEInval);
  v = ValidateRequest(Make(kCmdWriteZeroes, kRw.size_bytes - 512, 1024), kRw);
  EXPECT_EQ(v.error, kENoSpc);
}

// Oversized reads get EINVAL; oversized writes close the connection (their payload can't be
// skipped safely).
TEST(NbdValidate, Oversized) {
  auto v = ValidateRequest(Make(kCmdRead, 0, kMaxPayloadBytes + 1), kRw);
  EXPECT_EQ(v.verdict, Verdict::kReplyError);
  EXPECT_EQ(v.error, kEInval);
  v = ValidateRequest(Make(kCmdWrite, 0, kMaxPayloadBytes + 512), kRw);
  EXPECT_EQ(v.verdict, Verdict::kClose);
}

// Writes to a read-only export are refused with EPERM.
TEST(NbdValidate, ReadOnlyRefusesWrites) {
  EXPECT_EQ(ValidateRequest(Make(kCmdWrite, 0, 512), kRo).error, kEPerm);
  EXPECT_EQ(ValidateRequest(Make(kCmdWriteZeroes, 0, 512), kRo).error, kEPerm);
}

// Unknown commands and flags, unaligned writes, zero lengths and BLOCK_STATUS without a
// negotiated meta context are EINVAL; DISC ends the session.
TEST(NbdValidate, Malformed) {
  EXPECT_EQ(ValidateRequest(Make(99, 0, 512), kRw).error, kEInval);
  EXPECT_EQ(ValidateRequest(Make(kCmdTrim, 100, 512), kRw).error, kEInval);
  EXPECT_EQ(ValidateRequest(Make(kCmdBlockStatus, 0, 512), kRw).error, kEInval);
  EXPECT_EQ(ValidateRequest(Make(kCmdRead, 0, 512, kCmdFlagDf), kRw).error, kEInval);
  EXPECT_EQ(ValidateRequest(Make(kCmdRead, 0, 512, 1 << 7), kRw).error, kEInval);
  EXPECT_EQ(ValidateRequest(Make(kCmdWrite, 0, 512, kCmdFlagNoHole), kRw).error, kEInval);
  EXPECT_EQ(ValidateRequest(Make(kCmdWrite, 100, 512), kRw).error, kEInval);
  EXPECT_EQ(ValidateRequest(Make(kCmdWrite, 0, 100), kRw).error, kEInval);
  EXPECT_EQ(ValidateRequest(Make(kCmdRead, 0, 0), kRw).error, kEInval);
  EXPECT_EQ(ValidateRequest(Make(kCmdDisc, 0, 0), kRw).verdict, Verdict::kDisconnect);
}

// Read-only exports advertise READ_ONLY and not WRITE_ZEROES; both advertise flush, FUA and
// multi-connection.
TEST(NbdProto, TransmissionFlags) {
  const uint16_t rw = TransmissionFlags(kRw);
  const uint16_t ro = TransmissionFlags(kRo);
  EXPECT_EQ(rw & kTxReadOnly, 0);
  EXPECT_NE(rw & kTxSendWriteZeroes, 0);
  EXPECT_NE(ro & kTxReadOnly, 0);
  EXPECT_EQ(ro & kTxSendWriteZeroes, 0);
  for (uint16_t f : {rw, ro}) {
    EXPECT_NE(f & kTxHasFlags, 0);
    EXPECT_NE(f & kTxSendFlush, 0);
    EXPECT_NE(f & kTxCanMultiConn, 0);
    EXPECT_EQ(f & kTxSendDf, 0);
  }
  EXPECT_NE(rw & kTxSendTrim, 0);
  EXPECT_EQ(ro & kTxSendTrim, 0);
  ExportView structured = kRw;
  structured.structured = true;
  EXPECT_NE(TransmissionFlags(structured) & kTxSendDf, 0);
}

// With structured replies and base:allocation negotiated, TRIM, BLOCK_STATUS (+REQ_ONE) and
// READ+DF are accepted; BLOCK_STATUS past the end is EINVAL, TRIM past the end ENOSPC, TRIM on
// a read-only export EPERM.
TEST(NbdValidate, StructuredCommands) {
  ExportView ex = kRw;
  ex.structured = true;
  ex.base_allocation = true;
  EXPECT_EQ(ValidateRequest(Make(kCmdTrim, 4096, 8192), ex).verdict, Verdict::kExecute);
  EXPECT_EQ(ValidateRequest(Make(kCmdBlockStatus, 1, 100, kCmdFlagReqOne), ex).verdict,
            Verdict::kExecute);
  EXPECT_EQ(ValidateRequest(Make(kCmdRead, 0, 512, kCmdFlagDf), ex).verdict, Verdict::kExecute);
  EXPECT_EQ(ValidateRequest(Make(kCmdBlockStatus, ex.size_bytes, 512), ex).error, kEInval);
  EXPECT_EQ(ValidateRequest(Make(kCmdTrim, ex.size_bytes, 512), ex).error, kENoSpc);
  EXPECT_EQ(ValidateRequest(Make(kCmdTrim, 0, 512), kRo).error, kEPerm);
}

// Structured chunks have the documented layout: error chunks carry errno and a bounded
// message; block status chunks carry the context id and (length, flags) pairs.
TEST(NbdProto, StructuredChunks) {
  auto err = EncodeErrorChunk(0x1122, kEIo, std::string(500, 'x'));
  ASSERT_EQ(err.size(), kStructuredReplyHeaderSize + 6 + kMaxErrorMessageBytes);
  EXPECT_EQ(Load32(err.data()), kStructuredReplyMagic);
  EXPECT_EQ(Load16(err.data() + 4), kReplyFlagDone);
  EXPECT_EQ(Load16(err.data() + 6), kReplyTypeError);
  EXPECT_EQ(Load64(err.data() + 8), 0x1122u);
  EXPECT_EQ(Load32(err.data() + 16), 6 + kMaxErrorMessageBytes);
  EXPECT_EQ(Load32(err.data() + 20), kEIo);
  std::vector<StatusExtent> ext{{4096, 0}, {8192, kStateHole | kStateZero}};
  auto bs = EncodeBlockStatusChunk(7, kMetaContextBaseAllocation, ext);
  ASSERT_EQ(bs.size(), kStructuredReplyHeaderSize + 4 + 16);
  EXPECT_EQ(Load16(bs.data() + 6), kReplyTypeBlockStatus);
  EXPECT_EQ(Load32(bs.data() + 20), kMetaContextBaseAllocation);
  EXPECT_EQ(Load32(bs.data() + 32), 8192u);
  EXPECT_EQ(Load32(bs.data() + 36), 3u);
  // A READ's OFFSET_DATA chunk head: header (length counts the offset) + offset.
  std::array<uint8_t, kReadChunkHeadSize> rd{};
  EncodeReadChunkHead(0xabcdef, 1 << 20, 4096, rd.data());
  EXPECT_EQ(Load32(rd.data()), kStructuredReplyMagic);
  EXPECT_EQ(Load16(rd.data() + 4), kReplyFlagDone);
  EXPECT_EQ(Load16(rd.data() + 6), kReplyTypeOffsetData);
  EXPECT_EQ(Load64(rd.data() + 8), 0xabcdefu);
  EXPECT_EQ(Load32(rd.data() + 16), 8u + 4096u);
  EXPECT_EQ(Load64(rd.data() + 20), 1u << 20);
}

// Meta context option bodies decode when exact; overruns, leftovers and too many queries are
// refused; base:allocation is selected by its name, and by "base:" only when listing.
TEST(NbdProto, MetaContextDecode) {
  std::vector<uint8_t> body;
  Append32(body, 4);
  body.insert(body.end(), {'v', 'o', 'l', '1'});
  Append32(body, 1);
  Append32(body, 15);
  for (char c : std::string("base:allocation")) body.push_back(static_cast<uint8_t>(c));
  MetaContextRequest req;
  ASSERT_TRUE(DecodeMetaContextRequest(body, req));
  EXPECT_EQ(req.name, "vol1");
  ASSERT_EQ(req.queries.size(), 1u);
  EXPECT_TRUE(QuerySelectsBaseAllocation(req.queries[0], false));
  EXPECT_TRUE(QuerySelectsBaseAllocation("base:", true));
  EXPECT_FALSE(QuerySelectsBaseAllocation("base:", false));
  EXPECT_FALSE(QuerySelectsBaseAllocation("qemu:dirty-bitmap:x", true));
  body.push_back(0);
  EXPECT_FALSE(DecodeMetaContextRequest(body, req));
  body.pop_back();
  body[12] = 0xff;  // the query length overruns the body
  EXPECT_FALSE(DecodeMetaContextRequest(body, req));
  std::vector<uint8_t> many;
  Append32(many, 0);
  Append32(many, kMaxMetaQueries + 1);
  EXPECT_FALSE(DecodeMetaContextRequest(many, req));
}

// NBD_OPT_INFO/GO bodies decode when exact, and are rejected when a length overruns or bytes
// are left over.
TEST(NbdProto, InfoRequestDecode) {
  std::vector<uint8_t> body;
  Append32(body, 4);
  for (char c : std::string("vol1")) body.push_back(static_cast<uint8_t>(c));
  Append16(body, 2);
  Append16(body, kInfoName);
  Append16(body, kInfoBlockSize);
  InfoRequest req;
  ASSERT_TRUE(DecodeInfoRequest(body, req));
  EXPECT_EQ(req.name, "vol1");
  EXPECT_EQ(req.items, (std::vector<uint16_t>{kInfoName, kInfoBlockSize}));
  auto extra = body;
  extra.push_back(0);
  EXPECT_FALSE(DecodeInfoRequest(extra, req));
  auto shortened = body;
  shortened.pop_back();
  EXPECT_FALSE(DecodeInfoRequest(shortened, req));
  std::vector<uint8_t> huge;
  Append32(huge, 0xffffffff);
  Append16(huge, 0);
  EXPECT_FALSE(DecodeInfoRequest(huge, req));
  EXPECT_FALSE(DecodeInfoRequest(std::vector<uint8_t>{0, 0}, req));
}

// Option replies carry the reply magic, the option, the type and the data length.
TEST(NbdProto, OptionReplyLayout) {
  std::vector<uint8_t> data{1, 2, 3};
  auto out = EncodeOptionReply(kOptGo, kRepErrUnknown, data);
  ASSERT_EQ(out.size(), 23u);
  EXPECT_EQ(Load64(out.data()), kOptReplyMagic);
  EXPECT_EQ(Load32(out.data() + 8), kOptGo);
  EXPECT_EQ(Load32(out.data() + 12), kRepErrUnknown);
  EXPECT_EQ(Load32(out.data() + 16), 3u);
}

}  // namespace
}  // namespace spindle::client::nbd
