#include "server/uring_reader.h"

// GCC 12 reports a false -Wmismatched-new-delete on asio's coroutine frame allocator when a
// long test coroutine is inlined; the frame is allocated and freed by the same asio operators.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "common/crc32c.h"
#include "proto/wire.h"
#include "server/object_store.h"
#include "server/test_util.h"

namespace spindle::server {
namespace {

using testing::Pattern;
using testing::RunCoroutine;

class UringReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    reader_ = std::make_unique<UringReader>(io_);
    if (!reader_->ok()) GTEST_SKIP() << "io_uring is not available here";
    path_ = dir_path_ + "/data";
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_GE(fd_, 0);
    content_ = Pattern(64 * 1024, 7);
    ASSERT_EQ(::pwrite(fd_, content_.data(), content_.size(), 0),
              static_cast<ssize_t>(content_.size()));
  }
  void TearDown() override {
    if (reader_) reader_->Stop();
    testing::Drain(io_);
    reader_.reset();
    if (fd_ >= 0) ::close(fd_);
    ::unlink(path_.c_str());
    ::rmdir(dir_path_.c_str());
  }
  static std::string MakeDir() {
    char tmpl[] = "/tmp/spindle-uring-test-XXXXXX";
    SP_ASSERT(::mkdtemp(tmpl) != nullptr);
    return tmpl;
  }

  asio::io_context io_;
  std::unique_ptr<UringReader> reader_;
  std::string dir_path_ = MakeDir();
  std::string path_;
  int fd_ = -1;
  std::vector<uint8_t> content_;
};

TEST_F(UringReaderTest, ReadsWhatTheFileHolds) {
  std::vector<uint8_t> a(4096), b(8192);
  Status s = Error(Code::kInternal, "not run");
  RunCoroutine(io_, [&]() -> asio::awaitable<void> {
    std::vector<env::IoOp> ops{env::IoOp::Read(4096, {a.data(), a.size()}),
                               env::IoOp::Read(40960, {b.data(), b.size()})};
    const std::span<const env::IoOp> view(ops);
    s = co_await reader_->Read(fd_, view);
  }());
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(std::memcmp(a.data(), content_.data() + 4096, a.size()), 0);
  EXPECT_EQ(std::memcmp(b.data(), content_.data() + 40960, b.size()), 0);
  EXPECT_EQ(reader_->reads_submitted(), 2u);
}

TEST_F(UringReaderTest, AShortReadIsAnError) {
  std::vector<uint8_t> a(8192);
  Status s;
  RunCoroutine(io_, [&]() -> asio::awaitable<void> {
    // Past the end of the 64 KiB file: 4 KiB of 8 come back.
    std::vector<env::IoOp> ops{env::IoOp::Read(60 * 1024, {a.data(), a.size()})};
    const std::span<const env::IoOp> view(ops);
    s = co_await reader_->Read(fd_, view);
  }());
  EXPECT_EQ(s.code(), Code::kIoError) << s.ToString();
}

TEST_F(UringReaderTest, ABadDescriptorIsAnError) {
  std::vector<uint8_t> a(4096);
  Status s;
  RunCoroutine(io_, [&]() -> asio::awaitable<void> {
    std::vector<env::IoOp> ops{env::IoOp::Read(0, {a.data(), a.size()})};
    const std::span<const env::IoOp> view(ops);
    s = co_await reader_->Read(1 << 20, view);  // not an open descriptor
  }());
  EXPECT_EQ(s.code(), Code::kIoError) << s.ToString();
}

TEST_F(UringReaderTest, ManyReadsAtOnce) {
  // More concurrent reads than the ring holds: each completes with the right bytes, or (when
  // it finds no room) is refused with kResourceExhausted, so that the caller uses its pool.
  // How many find room depends on how fast earlier ones complete.
  constexpr int kReads = UringReader::kEntries + 64;
  std::vector<std::vector<uint8_t>> bufs(kReads, std::vector<uint8_t>(512));
  std::vector<Status> results(kReads, Error(Code::kInternal, "not run"));
  int finished = 0;
  for (int i = 0; i < kReads; ++i) {
    asio::co_spawn(
        io_,
        [&, i]() -> asio::awaitable<void> {
          std::vector<env::IoOp> ops{
              env::IoOp::Read(static_cast<uint64_t>(i % 128) * 512, {bufs[i].data(), 512})};
          const std::span<const env::IoOp> view(ops);
          results[i] = co_await reader_->Read(fd_, view);
          ++finished;
        },
        asio::detached);
  }
  for (int round = 0; round < 200 && finished < kReads; ++round) {
    io_.run_for(std::chrono::milliseconds(50));
    io_.restart();
  }
  ASSERT_EQ(finished, kReads);
  int ok = 0, refused = 0;
  for (int i = 0; i < kReads; ++i) {
    if (results[i].ok()) {
      ++ok;
      EXPECT_EQ(std::memcmp(bufs[i].data(), content_.data() + (i % 128) * 512, 512), 0) << i;
    } else {
      EXPECT_EQ(results[i].code(), Code::kResourceExhausted) << results[i].ToString();
      ++refused;
    }
  }
  EXPECT_GE(ok, static_cast<int>(UringReader::kEntries));
  EXPECT_EQ(ok + refused, kReads);
}

TEST_F(UringReaderTest, StopLetsTheLoopEnd) {
  reader_->Stop();
  io_.restart();
  io_.run_for(std::chrono::seconds(5));
  EXPECT_TRUE(io_.stopped()) << "the completion loop kept the io_context busy after Stop";
  io_.restart();
  std::vector<uint8_t> a(4096);
  Status s;
  RunCoroutine(io_, [&]() -> asio::awaitable<void> {
    std::vector<env::IoOp> ops{env::IoOp::Read(0, {a.data(), a.size()})};
    const std::span<const env::IoOp> view(ops);
    s = co_await reader_->Read(fd_, view);
  }());
  EXPECT_EQ(s.code(), Code::kResourceExhausted);
}

// Writes `data` at byte 8192 of object 2 of layer 1 (version 1) and flushes it to the file (a
// fresh write may still be served from the journal's image in memory).
asio::awaitable<void> WriteFlushed(ObjectStore& store, const std::vector<uint8_t>& data) {
  auto w = co_await store.Write(LayerId(1), ObjectIndex(2), 1, 8192, data);
  EXPECT_TRUE(w.ok()) << w.status().ToString();
  Status c = store.mutable_store().Checkpoint();
  EXPECT_TRUE(c.ok()) << c.ToString();
}

// Reads [offset, offset + length) of object 2 through layer 1, expecting it to succeed.
asio::awaitable<Result<ReadResult>> ReadOk(ObjectStore& store, uint32_t offset, uint32_t length) {
  std::vector<LayerId> chain{LayerId(1)};
  auto r = co_await store.Read(std::move(chain), ObjectIndex(2), offset, length);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  co_return r;
}

// The bytes a read returned, as a vector.
std::vector<uint8_t> Bytes(const ReadResult& r) {
  const std::span<const uint8_t> b = r.bytes();
  return {b.begin(), b.end()};
}

// An ObjectStore on a disk file (not tmpfs) reads through the ring, and reads what it wrote.
TEST(ObjectStoreUring, DeviceReadsGoThroughTheRing) {
  asio::io_context io;
  asio::thread_pool pool{2};
  testing::ScratchDir dir;
  UringReader reader(io);
  if (!reader.ok()) GTEST_SKIP() << "io_uring is not available here";
  ObjectStore store(io, pool, dir.NewDisk(1));
  if (store.store().in_memory()) GTEST_SKIP() << "/tmp is a memory filesystem here";
  store.set_uring(&reader);
  const std::vector<uint8_t> data = Pattern(3 * 4096, 11);
  RunCoroutine(io, [&]() -> asio::awaitable<void> {
    co_await WriteFlushed(store, data);
    // Whole blocks and a part of one (read through a buffer of the plan's own).
    auto r = co_await ReadOk(store, 8192, 3 * 4096);
    if (r.ok()) {
      EXPECT_EQ(Bytes(*r), data);
      EXPECT_EQ(r->block_crcs.size(), 3u);
      EXPECT_EQ(r->version, 1u);
    }
    auto part = co_await ReadOk(store, 8192 + 512, 1024);
    if (part.ok()) {
      EXPECT_EQ(Bytes(*part), std::vector<uint8_t>(data.begin() + 512, data.begin() + 1536));
    }
  }());
  EXPECT_GE(reader.reads_submitted(), 2u);
  reader.Stop();
  testing::Drain(io);
  pool.join();
}

// A store whose file is in memory answers a read of whole flushed blocks from its mapping (no
// copy: the bytes point into the file), checked against the stored crcs; other reads copy.
TEST(ObjectStoreInPlace, MemoryReadsComeFromTheMapping) {
  if (!std::filesystem::is_directory("/dev/shm")) GTEST_SKIP() << "no /dev/shm here";
  asio::io_context io;
  asio::thread_pool pool{2};
  testing::ScratchDir dir("/dev/shm");
  ObjectStore store(io, pool, dir.NewDisk(1));
  if (!store.store().in_memory()) GTEST_SKIP() << "/dev/shm is not a memory filesystem here";
  const std::vector<uint8_t> data = Pattern(3 * 4096, 12);
  RunCoroutine(io, [&]() -> asio::awaitable<void> {
    co_await WriteFlushed(store, data);
    auto r = co_await ReadOk(store, 8192, 3 * 4096);
    if (r.ok()) {
      EXPECT_NE(r->keep, nullptr) << "whole flushed blocks were copied, not read in place";
      EXPECT_TRUE(r->data.empty());
      EXPECT_EQ(Bytes(*r), data);
      EXPECT_EQ(r->block_crcs.size(), 3u);
      if (r->block_crcs.size() == 3) {
        EXPECT_EQ(r->block_crcs[1], Crc32c(data.data() + 4096, 4096));
      }
      EXPECT_EQ(r->version, 1u);
    }
    // A part of a block, and a range running into blocks never written: copied.
    auto part = co_await ReadOk(store, 8192 + 512, 1024);
    if (part.ok()) {
      EXPECT_EQ(part->keep, nullptr);
      EXPECT_EQ(Bytes(*part), std::vector<uint8_t>(data.begin() + 512, data.begin() + 1536));
    }
    auto zeros = co_await ReadOk(store, 0, 4 * 4096);
    if (zeros.ok()) {
      EXPECT_EQ(zeros->keep, nullptr);
      const std::vector<uint8_t> got = Bytes(*zeros);
      EXPECT_EQ(std::vector<uint8_t>(got.begin(), got.begin() + 8192),
                std::vector<uint8_t>(8192, 0));
    }
  }());
  testing::Drain(io);
  pool.join();
}

// A stored block changed behind the store's back is caught by the in-place read's crc check;
// a read for a caller that checks the crcs itself (check = false) hands it out with the stored
// crcs, which do not match it.
TEST(ObjectStoreInPlace, CorruptBlockIsNotServed) {
  if (!std::filesystem::is_directory("/dev/shm")) GTEST_SKIP() << "no /dev/shm here";
  testing::ScratchDir dir("/dev/shm");
  auto disk = dir.NewDisk(1);
  ASSERT_NE(disk, nullptr);
  if (!disk->in_memory()) GTEST_SKIP() << "/dev/shm is not a memory filesystem here";
  const std::vector<uint8_t> data = Pattern(2 * 4096, 13);
  ASSERT_TRUE(disk->Write(LayerId(1), ObjectIndex(0), 1, 0, data).ok());
  ASSERT_TRUE(disk->Checkpoint().ok());
  std::vector<LayerId> chain{LayerId(1)};
  jdisk::JStore::InPlaceRead r;
  ASSERT_TRUE(disk->ReadInPlace(chain, ObjectIndex(0), 0, 8192, &r).ok());
  ASSERT_EQ(r.bytes.size(), 8192u);
  // Flip a byte of the second block in the file itself, where the mapping shows it.
  const auto at = static_cast<uint64_t>(r.bytes.data() + 4096 - r.keep->bytes().data());
  auto file = env::Env::Default().OpenFile(disk->path(), {});
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  uint8_t b = static_cast<uint8_t>(data[4096] ^ 0xff);
  ASSERT_TRUE((*file)->PWrite(at, {&b, 1}).ok());
  jdisk::JStore::InPlaceRead again;
  Status s = disk->ReadInPlace(chain, ObjectIndex(0), 0, 8192, &again);
  EXPECT_EQ(s.code(), Code::kCorruption) << s.ToString();
  EXPECT_TRUE(again.bytes.empty());
  jdisk::JStore::InPlaceRead unchecked;
  s = disk->ReadInPlace(chain, ObjectIndex(0), 0, 8192, &unchecked, /*check=*/false);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(unchecked.bytes.size(), 8192u);
  ASSERT_EQ(unchecked.block_crcs.size(), 2u);
  EXPECT_EQ(unchecked.block_crcs, r.block_crcs);
  EXPECT_EQ(unchecked.bytes[4096], b);
  EXPECT_TRUE(
      proto::VerifyChunkCrcs(unchecked.bytes.first(4096), std::span(unchecked.block_crcs).first(1))
          .ok());
  EXPECT_EQ(proto::VerifyChunkCrcs(unchecked.bytes, unchecked.block_crcs).code(),
            Code::kCorruption);
}

}  // namespace
}  // namespace spindle::server
