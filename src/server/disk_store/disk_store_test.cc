#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "server/disk_store/disk_store.h"

namespace spindle::server::disk {
namespace {

constexpr uint64_t kDiskBytes = kSlotsOffset + 4 * kSlotStride;  // four slots
const std::string kCluster = "test.cluster";

class DiskStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/spindle-disk-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/disk.img";
    ASSERT_TRUE(
        DiskStore::Init(env::Env::Default(), path_, {DiskId(7), kCluster, kDiskBytes}).ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<DiskStore> OpenStore() {
    auto s = DiskStore::Open(env::Env::Default(), path_, kCluster);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }
  static std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
    std::vector<uint8_t> v(n);
    std::mt19937 rng(seed);
    for (auto& b : v) b = static_cast<uint8_t>(rng());
    return v;
  }
  std::vector<uint8_t> ReadBack(DiskStore& s, std::vector<LayerId> chain, uint32_t object,
                                uint32_t offset, size_t len, Code expect = Code::kOk) {
    std::vector<uint8_t> out(len);
    Status st = s.Read(chain, ObjectIndex(object), offset, out);
    EXPECT_EQ(st.code(), expect) << st.ToString();
    return out;
  }

  std::string dir_, path_;
};

// A write reads back byte-identical; bytes around it read as zeros; info counts its blocks.
TEST_F(DiskStoreTest, Roundtrip) {
  auto s = OpenStore();
  auto data = Pattern(3 * kBlockSize, 1);
  ASSERT_EQ(s->Write(LayerId(1), ObjectIndex(0), 1, 8192, data).value(), 1u);
  EXPECT_EQ(ReadBack(*s, {LayerId(1)}, 0, 8192, data.size()), data);
  auto around = ReadBack(*s, {LayerId(1)}, 0, 0, 8192);
  EXPECT_EQ(around, std::vector<uint8_t>(8192, 0));
  ObjectInfo info = s->Info(LayerId(1), ObjectIndex(0));
  EXPECT_EQ(info.version, 1u);
  EXPECT_EQ(info.state, ObjectState::kOk);
  EXPECT_EQ(info.blocks_present, 3u);
  EXPECT_EQ(s->Stats().slots_used, 1u);
  EXPECT_EQ(s->Stats().bytes_stored, 3 * kBlockSize);
}

// Sector-sized writes inside a block keep the block's other bytes (read-modify-write), both
// within one block and straddling two.
TEST_F(DiskStoreTest, PartialWrites) {
  auto s = OpenStore();
  auto base = Pattern(2 * kBlockSize, 2);
  ASSERT_TRUE(s->Write(LayerId(1), ObjectIndex(3), 1, 0, base).ok());
  auto patch = Pattern(1024, 3);
  ASSERT_TRUE(s->Write(LayerId(1), ObjectIndex(3), 2, 3584, patch).ok());  // straddles 4096
  std::memcpy(base.data() + 3584, patch.data(), patch.size());
  auto sector = Pattern(512, 4);
  ASSERT_TRUE(s->Write(LayerId(1), ObjectIndex(3), 3, 512, sector).ok());
  std::memcpy(base.data() + 512, sector.data(), sector.size());
  EXPECT_EQ(ReadBack(*s, {LayerId(1)}, 3, 0, base.size()), base);
  // A sector in a block never written before: the rest of that block reads as zeros.
  ASSERT_TRUE(s->Write(LayerId(1), ObjectIndex(3), 4, 5 * 4096 + 1024, sector).ok());
  auto blk = ReadBack(*s, {LayerId(1)}, 3, 5 * 4096, 4096);
  std::vector<uint8_t> want(4096, 0);
  std::memcpy(want.data() + 1024, sector.data(), 512);
  EXPECT_EQ(blk, want);
  // Unaligned offsets and lengths are refused.
  EXPECT_EQ(s->Write(LayerId(1), ObjectIndex(3), 5, 100, sector).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(s->Write(LayerId(1), ObjectIndex(3), 5, kObjectSize - 512, base).status().code(),
            Code::kInvalidArgument);
}

// A chain read takes each block from the first layer that has it and zeros where none does.
TEST_F(DiskStoreTest, ChainFallThrough) {
  auto s = OpenStore();
  auto lower = Pattern(4 * kBlockSize, 5);
  auto upper = Pattern(kBlockSize, 6);
  ASSERT_TRUE(s->Write(LayerId(10), ObjectIndex(1), 1, 0, lower).ok());
  ASSERT_TRUE(s->Write(LayerId(11), ObjectIndex(1), 1, kBlockSize, upper).ok());
  auto got = ReadBack(*s, {LayerId(11), LayerId(10)}, 1, 0, 6 * kBlockSize);
  std::vector<uint8_t> want(6 * kBlockSize, 0);
  std::memcpy(want.data(), lower.data(), lower.size());
  std::memcpy(want.data() + kBlockSize, upper.data(), upper.size());
  EXPECT_EQ(got, want);
  // The top layer alone has only its block.
  auto top = ReadBack(*s, {LayerId(11)}, 1, 0, 2 * kBlockSize);
  EXPECT_EQ(std::vector<uint8_t>(top.begin(), top.begin() + kBlockSize),
            std::vector<uint8_t>(kBlockSize, 0));
}

// Version order: duplicates are acknowledged without change, gaps are refused, and only the
// next version applies.
TEST_F(DiskStoreTest, VersionOrder) {
  auto s = OpenStore();
  auto a = Pattern(kBlockSize, 7), b = Pattern(kBlockSize, 8);
  EXPECT_EQ(s->Write(LayerId(1), ObjectIndex(0), 2, 0, a).status().code(),
            Code::kFailedPrecondition);
  ASSERT_EQ(s->Write(LayerId(1), ObjectIndex(0), 1, 0, a).value(), 1u);
  EXPECT_EQ(s->Write(LayerId(1), ObjectIndex(0), 1, 0, b).value(), 1u);  // duplicate: no change
  EXPECT_EQ(ReadBack(*s, {LayerId(1)}, 0, 0, kBlockSize), a);
  EXPECT_EQ(s->Write(LayerId(1), ObjectIndex(0), 3, 0, b).status().code(),
            Code::kFailedPrecondition);
  ASSERT_EQ(s->Write(LayerId(1), ObjectIndex(0), 2, 0, b).value(), 2u);
  EXPECT_EQ(ReadBack(*s, {LayerId(1)}, 0, 0, kBlockSize), b);
}

// Flipping a byte of stored data in the file makes the read of that block fail with
// kCorruption (and a read of other blocks still succeeds).
TEST_F(DiskStoreTest, CorruptionDetected) {
  auto data = Pattern(2 * kBlockSize, 9);
  uint32_t slot = 0;
  {
    auto s = OpenStore();
    ASSERT_TRUE(s->Write(LayerId(1), ObjectIndex(0), 1, 0, data).ok());
    slot = s->List().at(0).slot;
  }
  {
    std::fstream f(path_, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(SlotDataOffset(slot) + kBlockSize + 100));
    char c = static_cast<char>(data[kBlockSize + 100] ^ 0x40);
    f.write(&c, 1);
  }
  auto s = OpenStore();
  ReadBack(*s, {LayerId(1)}, 0, 0, 2 * kBlockSize, Code::kCorruption);
  EXPECT_EQ(ReadBack(*s, {LayerId(1)}, 0, 0, kBlockSize),
            std::vector<uint8_t>(data.begin(), data.begin() + kBlockSize));
  // A sub-block write into the damaged block refuses rather than sealing the damage.
  EXPECT_EQ(s->Write(LayerId(1), ObjectIndex(0), 2, kBlockSize, std::vector<uint8_t>(512, 1))
                .status()
                .code(),
            Code::kCorruption);
}

// Data, versions and slot usage survive closing and reopening the store.
TEST_F(DiskStoreTest, ReopenKeepsDataAndVersions) {
  auto a = Pattern(kBlockSize, 10), b = Pattern(8 * kBlockSize, 11);
  {
    auto s = OpenStore();
    ASSERT_TRUE(s->Write(LayerId(5), ObjectIndex(2), 1, 0, a).ok());
    ASSERT_TRUE(s->Write(LayerId(5), ObjectIndex(2), 2, 0, a).ok());
    ASSERT_TRUE(s->Write(LayerId(6), ObjectIndex(9), 1, kObjectSize - b.size(), b).ok());
  }
  auto s = OpenStore();
  EXPECT_EQ(s->Info(LayerId(5), ObjectIndex(2)).version, 2u);
  EXPECT_EQ(s->Info(LayerId(6), ObjectIndex(9)).blocks_present, 8u);
  EXPECT_EQ(ReadBack(*s, {LayerId(6)}, 9, kObjectSize - b.size(), b.size()), b);
  EXPECT_EQ(s->Stats().slots_used, 2u);
  EXPECT_EQ(s->Stats().bytes_stored, 9 * kBlockSize);
  // The next write goes on from the stored version; a fresh object takes a free slot.
  EXPECT_EQ(s->Write(LayerId(5), ObjectIndex(2), 3, 0, a).value(), 3u);
  ASSERT_TRUE(s->Write(LayerId(7), ObjectIndex(0), 1, 0, a).ok());
  EXPECT_EQ(s->Stats().slots_used, 3u);
}

// A disk of another cluster, an unknown format version, or no superblock at all is refused
// with an error saying why; a second Init of a live disk is refused too.
TEST_F(DiskStoreTest, WrongClusterAndFormatRefused) {
  auto other = DiskStore::Open(env::Env::Default(), path_, "other.cluster");
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(other.status().message().find("test.cluster"), std::string::npos);
  EXPECT_EQ(DiskStore::Init(env::Env::Default(), path_, {DiskId(8), kCluster, kDiskBytes}).code(),
            Code::kAlreadyExists);
  {
    env::AlignedBuffer block(kMetaBlockSize);
    Superblock sb{kFormatVersion + 1, DiskId(7), kCluster, kDiskBytes, SlotCountFor(kDiskBytes)};
    EncodeSuperblock(sb, block.span());
    std::fstream f(path_, std::ios::in | std::ios::out | std::ios::binary);
    f.write(reinterpret_cast<const char*>(block.data()),
            static_cast<std::streamsize>(block.size()));
  }
  auto future = DiskStore::Open(env::Env::Default(), path_, kCluster);
  ASSERT_FALSE(future.ok());
  EXPECT_NE(future.status().message().find("format version"), std::string::npos);
  std::ofstream(dir_ + "/blank.img").put('x');
  std::filesystem::resize_file(dir_ + "/blank.img", kDiskBytes);
  EXPECT_EQ(DiskStore::Open(env::Env::Default(), dir_ + "/blank.img", kCluster).status().code(),
            Code::kFailedPrecondition);
}

// When every slot is taken, a write to a new object fails with kResourceExhausted and the
// existing objects stay writable.
TEST_F(DiskStoreTest, FullDisk) {
  auto s = OpenStore();
  auto a = Pattern(kBlockSize, 12);
  for (uint32_t i = 0; i < 4; ++i) ASSERT_TRUE(s->Write(LayerId(1), ObjectIndex(i), 1, 0, a).ok());
  EXPECT_EQ(s->Write(LayerId(1), ObjectIndex(4), 1, 0, a).status().code(),
            Code::kResourceExhausted);
  EXPECT_TRUE(s->Write(LayerId(1), ObjectIndex(0), 2, 0, a).ok());
}

// A slot header damaged on disk is quarantined at open: its object is gone from the index,
// the other objects stay, and the damage is counted.
TEST_F(DiskStoreTest, DamagedSlotHeaderQuarantined) {
  auto a = Pattern(kBlockSize, 13);
  {
    auto s = OpenStore();
    ASSERT_TRUE(s->Write(LayerId(1), ObjectIndex(0), 1, 0, a).ok());
    ASSERT_TRUE(s->Write(LayerId(1), ObjectIndex(1), 1, 0, a).ok());
  }
  {
    std::fstream f(path_, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(SlotOffset(0) + 30));
    f.put('\x5a');
  }
  auto s = OpenStore();
  EXPECT_EQ(s->Stats().slots_damaged, 1u);
  EXPECT_EQ(s->Stats().slots_used, 1u);
  EXPECT_EQ(s->Info(LayerId(1), ObjectIndex(1)).version, 1u);
}

// A trim over whole and partial blocks makes the range read as zeros, keeps the bytes around
// it, frees the whole blocks (presence count, file space) and survives a reopen.
TEST_F(DiskStoreTest, TrimZeroesAndFrees) {
  auto data = Pattern(4 * kBlockSize, 21);
  {
    auto s = OpenStore();
    ASSERT_TRUE(s->Write(LayerId(1), ObjectIndex(0), 1, 0, data).ok());
    // [2048, 3 * 4096 + 512): block 0 partial, blocks 1-2 whole, block 3 partial.
    ASSERT_EQ(s->Trim(LayerId(1), ObjectIndex(0), 2, 2048, 3 * 4096 + 512 - 2048).value(), 2u);
  }
  std::memset(data.data() + 2048, 0, 3 * 4096 + 512 - 2048);
  auto s = OpenStore();
  EXPECT_EQ(ReadBack(*s, {LayerId(1)}, 0, 0, data.size()), data);
  ObjectInfo info = s->Info(LayerId(1), ObjectIndex(0));
  EXPECT_EQ(info.version, 2u);
  EXPECT_EQ(info.blocks_present, 2u);
  EXPECT_EQ(s->Stats().bytes_stored, 2 * kBlockSize);
  auto status = s->BlockStatus(std::vector<LayerId>{LayerId(1)}, ObjectIndex(0), 0, 5 * 4096);
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(*status, (std::vector<bool>{true, false, false, true, false}));
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  // Two data blocks plus metadata stay allocated; the punched blocks are gone (tmpfs and
  // ext4 both punch; the bound is loose to allow for metadata blocks).
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, 4 * kBlockSize + 64 * 1024);
}

// Trim is versioned exactly like Write: duplicates are acknowledged, gaps refused, and a trim
// of a never-written object records its version so the next write applies.
TEST_F(DiskStoreTest, TrimVersionOrder) {
  auto s = OpenStore();
  EXPECT_EQ(s->Trim(LayerId(2), ObjectIndex(5), 2, 0, 4096).status().code(),
            Code::kFailedPrecondition);
  EXPECT_EQ(s->Trim(LayerId(2), ObjectIndex(5), 1, 0, 4096).value(), 1u);
  EXPECT_EQ(s->Trim(LayerId(2), ObjectIndex(5), 1, 0, 4096).value(), 1u);
  auto a = Pattern(512, 22);
  EXPECT_EQ(s->Write(LayerId(2), ObjectIndex(5), 2, 512, a).value(), 2u);
  std::vector<uint8_t> want(4096, 0);
  std::memcpy(want.data() + 512, a.data(), 512);
  EXPECT_EQ(ReadBack(*s, {LayerId(2)}, 5, 0, 4096), want);
  EXPECT_EQ(s->Trim(LayerId(2), ObjectIndex(5), 3, 100, 4096).status().code(),
            Code::kInvalidArgument);
}

// A block trimmed in the top layer reads as zeros and counts as a hole even though a lower
// layer of the chain has data there; untrimmed blocks still fall through.
TEST_F(DiskStoreTest, TrimHidesLowerLayer) {
  auto s = OpenStore();
  auto base = Pattern(2 * kBlockSize, 23);
  ASSERT_TRUE(s->Write(LayerId(1), ObjectIndex(0), 1, 0, base).ok());
  ASSERT_TRUE(s->Trim(LayerId(2), ObjectIndex(0), 1, 0, 4096).ok());
  std::vector<uint8_t> want = base;
  std::memset(want.data(), 0, 4096);
  EXPECT_EQ(ReadBack(*s, {LayerId(2), LayerId(1)}, 0, 0, want.size()), want);
  auto status =
      s->BlockStatus(std::vector<LayerId>{LayerId(2), LayerId(1)}, ObjectIndex(0), 0, 3 * 4096);
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(*status, (std::vector<bool>{false, true, false}));
  EXPECT_EQ(
      s->BlockStatus(std::vector<LayerId>{LayerId(1)}, ObjectIndex(0), 512, 4096).status().code(),
      Code::kInvalidArgument);
}

}  // namespace
}  // namespace spindle::server::disk
