// Unit tests for the format-2 structures: layout, superblock, records, checkpoints, the chunk
// allocator and the circular journal (on the simulated disk).
#include <gtest/gtest.h>

#include <cstring>

#include "server/disk_store/allocator.h"
#include "server/disk_store/jformat.h"
#include "server/disk_store/journal.h"
#include "server/disk_store/sim_disk.h"

namespace spindle::server::jdisk {
namespace {

Superblock TestSuperblock() {
  auto sb = Layout(64 * kMiB, 0);
  EXPECT_TRUE(sb.ok()) << sb.status().ToString();
  sb->disk = DiskId(7);
  sb->cluster_id = "c1";
  sb->instance = 0x1234;
  return *sb;
}

BlockImage Filled(uint8_t v) {
  auto b = std::make_shared<env::AlignedBuffer>(kBlockSize);
  std::memset(b->data(), v, kBlockSize);
  return b;
}

Record WriteRecord(uint64_t version, uint32_t nblocks) {
  Record r;
  r.layer = LayerId(3);
  r.object = ObjectIndex(4);
  r.version = version;
  r.chunks.push_back(ChunkEntry{1, ChunkEntryKind::kAlloc, 0, 9, {}});
  for (uint32_t i = 0; i < nblocks; ++i) {
    r.blocks.push_back(BlockEntry{static_cast<uint16_t>(16 + i), 0xabc + i,
                                  Filled(static_cast<uint8_t>(version + i))});
  }
  return r;
}

// The layout fits inside the device, keeps the areas apart and sizes the checkpoint copies
// for the worst-case index.
TEST(JFormat, LayoutFitsAndSeparatesAreas) {
  for (uint64_t size : {8 * kMiB, 64 * kMiB, 10 * kGiB, 4 * kTiB}) {
    auto sb = Layout(size, 0);
    ASSERT_TRUE(sb.ok()) << size;
    EXPECT_GE(sb->meta_offset, sb->journal_offset + sb->journal_bytes);
    EXPECT_GE(sb->data_offset, sb->meta_offset + 2 * sb->meta_copy_bytes);
    EXPECT_LE(sb->data_offset + uint64_t{sb->data_chunks} * kChunkBytes, size);
    EXPECT_GE(sb->meta_copy_bytes, kMetaBlock + sb->max_objects() * kObjectRecBytes +
                                       sb->max_chunk_recs() * kChunkRecBytes);
    // Metadata and journal overhead stay small on real sizes.
    if (size >= 10 * kGiB) {
      EXPECT_LT(sb->data_offset, size / 25);  // journal <= 1/32, checkpoints ~0.55 %
    }
  }
  EXPECT_FALSE(Layout(1 * kMiB, 0).ok());
}

// A superblock survives encode/decode; a flipped byte, another version or no magic is refused.
TEST(JFormat, SuperblockRoundTripAndRefusals) {
  Superblock sb = TestSuperblock();
  env::AlignedBuffer buf(kMetaBlock);
  EncodeSuperblock(sb, buf.span());
  auto back = DecodeSuperblock(buf.span());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->disk.value(), 7u);
  EXPECT_EQ(back->cluster_id, "c1");
  EXPECT_EQ(back->instance, 0x1234u);
  EXPECT_EQ(back->data_chunks, sb.data_chunks);
  buf.data()[100] ^= 1;
  EXPECT_EQ(DecodeSuperblock(buf.span()).status().code(), Code::kCorruption);
  sb.format_version = 1;
  EncodeSuperblock(sb, buf.span());
  auto old = DecodeSuperblock(buf.span());
  EXPECT_EQ(old.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(old.status().message().find("version 1"), std::string::npos);
  std::memset(buf.data(), 0, kMetaBlock);
  EXPECT_EQ(DecodeSuperblock(buf.span()).status().code(), Code::kFailedPrecondition);
}

// A record decodes to what was encoded; any flipped byte makes it invalid.
TEST(JFormat, RecordRoundTripAndChecksum) {
  Record r = WriteRecord(5, 3);
  r.seq = 11;
  r.prev_crc = 0x77;
  r.instance = 0x1234;
  r.zero_first = 40;
  r.zero_count = 2;
  r.round_index = 5;
  env::AlignedBuffer buf;
  uint32_t crc = EncodeRecord(r, buf);
  EXPECT_EQ(buf.size(), RecordBytes(r));
  EXPECT_EQ(PeekRecordBytes(buf.span()), buf.size());
  uint32_t crc2 = 0;
  auto back = DecodeRecord(buf.span(), &crc2);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(crc, crc2);
  EXPECT_EQ(back->seq, 11u);
  EXPECT_EQ(back->round_index, 5u);
  EXPECT_EQ(back->version, 5u);
  EXPECT_EQ(back->zero_count, 2u);
  ASSERT_EQ(back->blocks.size(), 3u);
  EXPECT_EQ(back->blocks[2].block, 18);
  EXPECT_EQ(back->blocks[2].data->data()[100], 7);
  ASSERT_EQ(back->chunks.size(), 1u);
  EXPECT_EQ(back->chunks[0].disk, 9u);
  for (size_t at : {size_t{5}, size_t{200}, buf.size() - 1}) {
    buf.data()[at] ^= 0x10;
    EXPECT_FALSE(DecodeRecord(buf.span(), nullptr).ok()) << at;
    buf.data()[at] ^= 0x10;
  }
}

// Install records (begin with zero entries) round-trip; an unknown record type or chunk
// entry kind is refused even with a valid checksum.
TEST(JFormat, InstallRecordsRoundTripUnknownKindsRefused) {
  Record r;
  r.type = RecordType::kInstallBegin;
  r.layer = LayerId(3);
  r.object = ObjectIndex(4);
  r.chunks.push_back(ChunkEntry{7, ChunkEntryKind::kZero, 0x00f0, kNoChunk, {}});
  env::AlignedBuffer buf;
  EncodeRecord(r, buf);
  auto back = DecodeRecord(buf.span(), nullptr);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->type, RecordType::kInstallBegin);
  ASSERT_EQ(back->chunks.size(), 1u);
  EXPECT_EQ(back->chunks[0].kind, ChunkEntryKind::kZero);
  EXPECT_EQ(back->chunks[0].present, 0x00f0);
  r.type = static_cast<RecordType>(kMaxRecordType + 1);
  EncodeRecord(r, buf);
  EXPECT_EQ(DecodeRecord(buf.span(), nullptr).status().code(), Code::kCorruption);
  r.type = RecordType::kInstallData;
  r.chunks[0].kind = static_cast<ChunkEntryKind>(kMaxChunkEntryKind + 1);
  EncodeRecord(r, buf);
  EXPECT_EQ(DecodeRecord(buf.span(), nullptr).status().code(), Code::kCorruption);
}

// Checkpoint header and body round-trip.
TEST(JFormat, CheckpointRoundTrip) {
  ObjectRec o;
  o.layer = LayerId(9);
  o.object = ObjectIndex(2);
  o.state = ObjectState::kOk;
  o.version = 44;
  ChunkRec c;
  c.index = 3;
  c.present = 0x00f0;
  c.zeroed = 0x0001;
  c.disk = 17;
  c.crc[5] = 0xdeadbeef;
  o.chunks.push_back(c);
  std::vector<uint8_t> body;
  EncodeObjectRec(o, body);
  EncodeObjectRec(o, body);
  auto back = DecodeCheckpointBody(body, 2);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ((*back)[1].version, 44u);
  EXPECT_EQ((*back)[1].chunks[0].crc[5], 0xdeadbeefu);
  EXPECT_EQ((*back)[1].chunks[0].zeroed, 1);
  EXPECT_FALSE(DecodeCheckpointBody(body, 3).ok());
  CheckpointHeader h{3, 4, 5, 6, 7, body.size(), 8, 2};
  env::AlignedBuffer buf(kMetaBlock);
  EncodeCheckpointHeader(h, buf.span());
  auto hb = DecodeCheckpointHeader(buf.span());
  ASSERT_TRUE(hb.ok());
  EXPECT_EQ(hb->journal_pos, 6u);
  buf.data()[30] ^= 1;
  EXPECT_EQ(DecodeCheckpointHeader(buf.span()).status().code(), Code::kCorruption);
}

// The allocator hands out every chunk once, refuses when full, and reuses a freed chunk only
// after Release.
TEST(ChunkAllocatorTest, FullDeferredFreeAndRelease) {
  ChunkAllocator a(4);
  uint32_t c[4];
  for (uint32_t& x : c) ASSERT_TRUE(a.Allocate(&x));
  uint32_t extra = 0;
  EXPECT_FALSE(a.Allocate(&extra));
  a.Free(c[1]);
  EXPECT_FALSE(a.Allocate(&extra));  // deferred
  EXPECT_EQ(a.pending(), 1u);
  auto pending = a.TakePending();
  a.Release(pending);
  ASSERT_TRUE(a.Allocate(&extra));
  EXPECT_EQ(extra, c[1]);
  a.Return(extra);
  EXPECT_EQ(a.used(), 3u);
  a.MarkUsed(extra);
  a.MarkUsed(extra);
  EXPECT_EQ(a.used(), 4u);
}

class JournalTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kJournalBytes = 256 * kKiB;
  void SetUp() override {
    disk_ = env_.AddDisk("j", 1 * kMiB, 1);
    auto f = env_.OpenFile("j", {});
    ASSERT_TRUE(f.ok());
    file_ = std::move(*f);
  }
  std::vector<uint64_t> ReplayVersions(JournalCursor from, JournalCursor* end) {
    Journal j(*file_, 64 * kKiB, kJournalBytes, 42);
    std::vector<uint64_t> v;
    auto e = j.Replay(from, [&](Record&& r) {
      v.push_back(r.version);
      return Status::Ok();
    });
    EXPECT_TRUE(e.ok());
    if (end) *end = *e;
    return v;
  }
  SimEnv env_;
  std::shared_ptr<SimDisk> disk_;
  std::unique_ptr<env::File> file_;
};

// Records come back in order across many laps of the circle as the tail advances; the next
// record after the last one is never a stale one from an earlier lap.
TEST_F(JournalTest, AppendReplayAcrossLaps) {
  Journal j(*file_, 64 * kKiB, kJournalBytes, 42);
  ASSERT_TRUE(j.Replay({}, [](Record&&) { return Status::Ok(); }).ok());
  JournalCursor start{};
  uint64_t version = 0;
  for (int round = 0; round < 20; ++round) {
    start = j.cursor();
    j.SetTail(start.pos);
    std::vector<Record> recs;
    for (int i = 0; i < 3; ++i) recs.push_back(WriteRecord(++version, 1 + (round + i) % 5));
    std::vector<Record*> ptrs;
    for (Record& r : recs) ptrs.push_back(&r);
    ASSERT_TRUE(j.Append(ptrs).ok());
  }
  JournalCursor end;
  auto v = ReplayVersions(start, &end);
  EXPECT_EQ(v, (std::vector<uint64_t>{version - 2, version - 1, version}));
  EXPECT_EQ(end.pos, j.cursor().pos);
  EXPECT_GT(end.pos, 3 * kJournalBytes);  // it went round several times
}

// A batch whose first record ends exactly at the end of the circle writes the next one at its
// start, never past the journal region (where the checkpoints are).
TEST_F(JournalTest, BatchAcrossLapEndStaysInside) {
  env::AlignedBuffer marker(kBlockSize);
  std::memset(marker.data(), 0xee, kBlockSize);
  const uint64_t after = 64 * kKiB + kJournalBytes;
  ASSERT_TRUE(file_->PWrite(after, marker.span()).ok());
  Journal j(*file_, 64 * kKiB, kJournalBytes, 42);
  ASSERT_TRUE(j.Replay({}, [](Record&&) { return Status::Ok(); }).ok());
  uint64_t version = 1;
  Record first = WriteRecord(version, 1);
  std::vector<Record*> one{&first};
  ASSERT_TRUE(j.Append(one).ok());  // the pairs below start at an odd record boundary
  JournalCursor start;
  for (int i = 0; i < 40; ++i) {  // 8 KiB records: 32 fill a lap exactly
    start = j.cursor();
    j.SetTail(start.pos);
    Record a = WriteRecord(++version, 1), b = WriteRecord(++version, 1);
    std::vector<Record*> two{&a, &b};
    ASSERT_TRUE(j.Append(two).ok());
  }
  env::AlignedBuffer check(kBlockSize);
  ASSERT_TRUE(file_->PRead(after, check.span()).ok());
  EXPECT_EQ(std::memcmp(check.data(), marker.data(), kBlockSize), 0);
  EXPECT_EQ(ReplayVersions(start, nullptr), (std::vector<uint64_t>{version - 1, version}));
}

// A record torn by a crash ends the replay there; the records before it are kept.
TEST_F(JournalTest, TornTailIsIgnored) {
  Journal j(*file_, 64 * kKiB, kJournalBytes, 42);
  ASSERT_TRUE(j.Replay({}, [](Record&&) { return Status::Ok(); }).ok());
  Record a = WriteRecord(1, 2), b = WriteRecord(2, 8);
  std::vector<Record*> first{&a};
  ASSERT_TRUE(j.Append(first).ok());
  disk_->ArmCrash(2);  // the write of b goes through, its sync crashes the disk
  std::vector<Record*> second{&b};
  EXPECT_FALSE(j.Append(second).ok());
  disk_->Revive();
  // Depending on the tear, b is whole (kept) or not (dropped); a is always there.
  auto v = ReplayVersions({}, nullptr);
  ASSERT_GE(v.size(), 1u);
  EXPECT_EQ(v[0], 1u);
  EXPECT_LE(v.size(), 2u);
}

// A journal refuses records that do not fit before its tail.
TEST_F(JournalTest, FullJournalRefuses) {
  Journal j(*file_, 64 * kKiB, kJournalBytes, 42);
  ASSERT_TRUE(j.Replay({}, [](Record&&) { return Status::Ok(); }).ok());
  Status s;
  int n = 0;
  while (s.ok() && n < 1000) {
    Record r = WriteRecord(++n, 15);
    std::vector<Record*> one{&r};
    s = j.Append(one);
  }
  EXPECT_EQ(s.code(), Code::kResourceExhausted);
  EXPECT_GT(n, 2);
}

// Each Append is one round: its records carry round indexes 0, 1, 2, ... in order.
TEST_F(JournalTest, AppendNumbersTheRound) {
  Journal j(*file_, 64 * kKiB, kJournalBytes, 42);
  ASSERT_TRUE(j.Replay({}, [](Record&&) { return Status::Ok(); }).ok());
  for (uint64_t round = 0; round < 2; ++round) {
    Record a = WriteRecord(3 * round + 1, 1), b = WriteRecord(3 * round + 2, 0),
           c = WriteRecord(3 * round + 3, 2);
    std::vector<Record*> recs{&a, &b, &c};
    ASSERT_TRUE(j.Append(recs).ok());
  }
  std::vector<uint16_t> rounds;
  Journal k(*file_, 64 * kKiB, kJournalBytes, 42);
  ASSERT_TRUE(k.Replay({}, [&](Record&& r) {
                 rounds.push_back(r.round_index);
                 return Status::Ok();
               }).ok());
  EXPECT_EQ(rounds, (std::vector<uint16_t>{0, 1, 2, 0, 1, 2}));
}

// Records of another init (other instance) are not replayed.
TEST_F(JournalTest, ForeignInstanceIsNotReplayed) {
  Journal j(*file_, 64 * kKiB, kJournalBytes, 41);
  ASSERT_TRUE(j.Replay({}, [](Record&&) { return Status::Ok(); }).ok());
  Record a = WriteRecord(1, 1);
  std::vector<Record*> one{&a};
  ASSERT_TRUE(j.Append(one).ok());
  EXPECT_TRUE(ReplayVersions({}, nullptr).empty());
}

}  // namespace
}  // namespace spindle::server::jdisk
