// The wire codec round-trips every message and rejects malformed frames and payloads: bad
// magic, version, header checksum, over-limit lengths, truncated or trailing bytes.
#include "proto/wire.h"

#include <gtest/gtest.h>

#include <numeric>

namespace spindle::proto {
namespace {

TEST(Wire, HeaderRoundTripAndValidation) {
  FrameHeader h{static_cast<uint16_t>(MsgType::kWrite), 42, 1000, 0};
  uint8_t buf[kHeaderSize];
  EncodeHeader(h, buf);
  auto d = DecodeHeader(buf);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->request_id, 42u);
  EXPECT_EQ(d->payload_len, 1000u);

  uint8_t bad[kHeaderSize];
  std::copy(buf, buf + kHeaderSize, bad);
  bad[0] ^= 1;
  EXPECT_FALSE(DecodeHeader(bad).ok());
  std::copy(buf, buf + kHeaderSize, bad);
  bad[10] ^= 1;  // request id byte: checksum catches it
  EXPECT_EQ(DecodeHeader(bad).status().code(), Code::kCorruption);

  h.payload_len = kMaxPayloadBytes + 1;
  EncodeHeader(h, buf);
  EXPECT_FALSE(DecodeHeader(buf).ok());
  h.payload_len = 0;
  h.type = 77;
  EncodeHeader(h, buf);
  EXPECT_FALSE(DecodeHeader(buf).ok());
}

TEST(Wire, WriteRoundTrip) {
  std::vector<uint8_t> data(5000 + 120);  // 10 sectors: two chunks, the last short
  std::iota(data.begin(), data.end(), 0);
  std::vector<uint32_t> crcs;
  ComputeChunkCrcs(data, crcs);
  ASSERT_EQ(crcs.size(), 2u);
  WriteRequest w{DiskId(101), LayerId(7), ObjectIndex(3), 9, 4096, kWriteFlagFua, crcs, data};
  std::vector<uint8_t> payload;
  EncodePayload(w, payload);
  auto d = DecodeWriteRequest(payload);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->disk, DiskId(101));
  EXPECT_EQ(d->layer, LayerId(7));
  EXPECT_EQ(d->object, ObjectIndex(3));
  EXPECT_EQ(d->version, 9u);
  EXPECT_EQ(d->offset, 4096u);
  EXPECT_EQ(d->flags, kWriteFlagFua);
  EXPECT_TRUE(std::equal(d->data.begin(), d->data.end(), data.begin(), data.end()));
  EXPECT_TRUE(VerifyChunkCrcs(d->data, d->crcs).ok());

  payload.push_back(0);  // trailing byte
  EXPECT_FALSE(DecodeWriteRequest(payload).ok());
  payload.resize(payload.size() - 10);  // truncated
  EXPECT_FALSE(DecodeWriteRequest(payload).ok());

  // A skipping write follows version - kVersionSkip; a version too small for that or an
  // unknown flag is refused.
  w.flags = kWriteFlagSkip;
  w.version = kVersionSkip + 9;
  EncodePayload(w, payload);
  d = DecodeWriteRequest(payload);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(BaseVersion(d->version, d->flags), 9u);
  EXPECT_EQ(BaseVersion(9, kWriteFlagFua), 8u);
  w.version = kVersionSkip - 1;
  EncodePayload(w, payload);
  EXPECT_EQ(DecodeWriteRequest(payload).status().code(), Code::kInvalidArgument);
  w.version = 9;
  w.flags = 8;
  EncodePayload(w, payload);
  EXPECT_EQ(DecodeWriteRequest(payload).status().code(), Code::kInvalidArgument);
}

TEST(Wire, WriteRangeRules) {
  std::vector<uint8_t> data(512);
  std::vector<uint32_t> crcs;
  ComputeChunkCrcs(data, crcs);
  std::vector<uint8_t> payload;
  WriteRequest w{DiskId(1), LayerId(1), ObjectIndex(0), 1, 100, 0, crcs, data};  // unaligned
  EncodePayload(w, payload);
  EXPECT_FALSE(DecodeWriteRequest(payload).ok());
  w.offset = static_cast<uint32_t>(kObjectSize - 512);
  EncodePayload(w, payload);
  EXPECT_TRUE(DecodeWriteRequest(payload).ok());
  w.offset = static_cast<uint32_t>(kObjectSize);  // past the object's end
  EncodePayload(w, payload);
  EXPECT_FALSE(DecodeWriteRequest(payload).ok());
  w.offset = 0;
  w.version = 0;
  EncodePayload(w, payload);
  EXPECT_FALSE(DecodeWriteRequest(payload).ok());
}

TEST(Wire, CorruptDataDetected) {
  std::vector<uint8_t> data(8192, 0xab);
  std::vector<uint32_t> crcs;
  ComputeChunkCrcs(data, crcs);
  data[5000] ^= 0x10;
  Status s = VerifyChunkCrcs(data, crcs);
  EXPECT_EQ(s.code(), Code::kCorruption);
}

TEST(Wire, ReadAndInfoRoundTrip) {
  ReadRequest r{DiskId(5), ObjectIndex(2), 512, 8192, {LayerId(9), LayerId(4)}};
  std::vector<uint8_t> payload;
  EncodePayload(r, payload);
  auto d = DecodeReadRequest(payload);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->chain.size(), 2u);
  EXPECT_EQ(d->chain[1], LayerId(4));
  EXPECT_EQ(d->flags, 0u);
  r.flags = kReadClientChecks;
  EncodePayload(r, payload);
  d = DecodeReadRequest(payload);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->flags, kReadClientChecks);
  // A flag this side does not know is refused, not ignored.
  r.flags = 2;
  EncodePayload(r, payload);
  EXPECT_EQ(DecodeReadRequest(payload).status().code(), Code::kInvalidArgument);
  r.flags = 0;
  r.chain.clear();
  EncodePayload(r, payload);
  EXPECT_FALSE(DecodeReadRequest(payload).ok());

  std::vector<uint8_t> data(1024, 7);
  std::vector<uint32_t> crcs;
  ComputeChunkCrcs(data, crcs);
  EncodePayload(ReadResponse{12, crcs, data}, payload);
  auto rr = DecodeReadResponse(payload);
  ASSERT_TRUE(rr.ok());
  EXPECT_EQ(rr->version, 12u);
  EXPECT_EQ(rr->data.size(), 1024u);

  EncodePayload(ObjectInfoResponse{3, 1, 17}, payload);
  auto oi = DecodeObjectInfoResponse(payload);
  ASSERT_TRUE(oi.ok());
  EXPECT_EQ(oi->blocks_present, 17u);

  EncodePayload(HelloResponse{ServerId(2), {DiskId(201), DiskId(202)}}, payload);
  auto hr = DecodeHelloResponse(payload);
  ASSERT_TRUE(hr.ok());
  EXPECT_EQ(hr->disks.size(), 2u);
}

TEST(Wire, TrimAndBlockStatusRoundTrip) {
  std::vector<uint8_t> payload;
  EncodePayload(TrimRequest{DiskId(3), LayerId(8), ObjectIndex(1), 5, 512, 8192}, payload);
  auto t = DecodeTrimRequest(payload);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->version, 5u);
  EXPECT_EQ(t->length, 8192u);
  EncodePayload(TrimRequest{DiskId(3), LayerId(8), ObjectIndex(1), 5, 100, 8192}, payload);
  EXPECT_FALSE(DecodeTrimRequest(payload).ok());
  EncodePayload(TrimRequest{DiskId(3), LayerId(8), ObjectIndex(1), kVersionSkip + 4, 512, 8192, 9,
                            kWriteFlagSkip},
                payload);
  t = DecodeTrimRequest(payload);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->flags, kWriteFlagSkip);
  EXPECT_EQ(BaseVersion(t->version, t->flags), 4u);
  EncodePayload(TrimRequest{DiskId(3), LayerId(8), ObjectIndex(1), 5, 512, 8192, 9, 4}, payload);
  EXPECT_EQ(DecodeTrimRequest(payload).status().code(), Code::kInvalidArgument);  // unknown flag

  EncodePayload(BlockStatusRequest{DiskId(3), ObjectIndex(0), 4096, 65536, {LayerId(2)}}, payload);
  auto b = DecodeBlockStatusRequest(payload);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->length, 65536u);
  EncodePayload(BlockStatusRequest{DiskId(3), ObjectIndex(0), 512, 4096, {LayerId(2)}}, payload);
  EXPECT_FALSE(DecodeBlockStatusRequest(payload).ok());  // not 4 KiB aligned

  BlockStatusResponse r{10, {0xff, 0x02}};
  EncodePayload(r, payload);
  auto d = DecodeBlockStatusResponse(payload);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->blocks, 10u);
  EXPECT_EQ(d->bitmap, r.bitmap);
  payload.pop_back();
  EXPECT_FALSE(DecodeBlockStatusResponse(payload).ok());
}

}  // namespace
}  // namespace spindle::proto
