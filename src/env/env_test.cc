#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include <gtest/gtest.h>

#include "env/env.h"

namespace spindle::env {
namespace {

class EnvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/spindle-env-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

// Data written at an aligned offset reads back identically after a sync, and the file grows
// to cover it; this holds with or without O_DIRECT.
TEST_F(EnvTest, WriteReadRoundtrip) {
  auto f = Env::Default().OpenFile(dir_ + "/a", {Create::kYes, Direct::kTry});
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  AlignedBuffer out(8192);
  for (size_t i = 0; i < out.size(); ++i) out.data()[i] = static_cast<uint8_t>(i * 7);
  ASSERT_TRUE((*f)->PWrite(4096, out.span()).ok());
  ASSERT_TRUE((*f)->DataSync().ok());
  EXPECT_EQ((*f)->Size().value(), 4096u + 8192u);
  AlignedBuffer in(8192);
  auto n = (*f)->PRead(4096, in.span());
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 8192u);
  EXPECT_EQ(std::memcmp(in.data(), out.data(), 8192), 0);
}

// Reads past the end are short (not errors), and a sparse hole reads as zeros.
TEST_F(EnvTest, ShortReadAtEofAndSparseZeros) {
  auto f = Env::Default().OpenFile(dir_ + "/b", {Create::kYes, Direct::kTry});
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Truncate(16384).ok());
  AlignedBuffer in(8192);
  std::memset(in.data(), 0xff, in.size());
  auto n = (*f)->PRead(12288, in.span());
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 4096u);
  for (size_t i = 0; i < 4096; ++i) ASSERT_EQ(in.data()[i], 0);
}

// A punched hole reads as zeros, keeps the file size, and leaves the data around it intact
// (or is reported kUnimplemented where the filesystem cannot punch holes).
TEST_F(EnvTest, PunchHoleZeroesRangeKeepsSize) {
  auto f = Env::Default().OpenFile(dir_ + "/h", {Create::kYes, Direct::kTry});
  ASSERT_TRUE(f.ok());
  AlignedBuffer out(3 * 4096);
  std::memset(out.data(), 0xab, out.size());
  ASSERT_TRUE((*f)->PWrite(0, out.span()).ok());
  Status s = (*f)->PunchHole(4096, 4096);
  if (s.code() == Code::kUnimplemented) GTEST_SKIP() << s.ToString();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ((*f)->Size().value(), 3u * 4096);
  AlignedBuffer in(3 * 4096);
  ASSERT_EQ((*f)->PRead(0, in.span()).value(), 3u * 4096);
  for (size_t i = 0; i < in.size(); ++i) {
    ASSERT_EQ(in.data()[i], (i >= 4096 && i < 8192) ? 0 : 0xab) << i;
  }
}

// Opening a missing file without Create is kNotFound, and the message names the path.
TEST_F(EnvTest, MissingFileIsNotFound) {
  auto f = Env::Default().OpenFile(dir_ + "/nope", {Create::kNo, Direct::kTry});
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), Code::kNotFound);
  EXPECT_NE(f.status().message().find("nope"), std::string::npos);
}

// A direct file rejects unaligned I/O itself with kInvalidArgument instead of letting the
// kernel fail it obscurely; a buffered file accepts it.
TEST_F(EnvTest, UnalignedDirectIoRejected) {
  auto f = Env::Default().OpenFile(dir_ + "/c", {Create::kYes, Direct::kTry});
  ASSERT_TRUE(f.ok());
  uint8_t small[100] = {};
  Status s = (*f)->PWrite(10, std::span<const uint8_t>(small, sizeof(small)));
  if ((*f)->is_direct()) {
    EXPECT_EQ(s.code(), Code::kInvalidArgument);
  } else {
    EXPECT_TRUE(s.ok());
  }
  auto buffered = Env::Default().OpenFile(dir_ + "/d", {Create::kYes, Direct::kNo});
  ASSERT_TRUE(buffered.ok());
  EXPECT_FALSE((*buffered)->is_direct());
  EXPECT_TRUE((*buffered)->PWrite(10, std::span<const uint8_t>(small, sizeof(small))).ok());
}

// Batch on both engines: a stretch of writes (more than one ring holds) and its sync, then
// reads in the same call that see them; a read past the end of the file fails the batch with
// kIoError naming the file; unaligned ops on a direct file are refused before any I/O.
class BatchTest : public EnvTest, public ::testing::WithParamInterface<IoEngine> {
 protected:
  void SetUp() override {
    EnvTest::SetUp();
    SetIoEngine(GetParam());
  }
  void TearDown() override {
    SetIoEngine(IoEngine::kIoUring);
    EnvTest::TearDown();
  }
};

TEST_P(BatchTest, WritesSyncThenReads) {
  auto f = Env::Default().OpenFile(dir_ + "/b", {Create::kYes, Direct::kTry});
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  RecordProperty("engine", IoEngineName(CurrentIoEngine()));
  constexpr size_t kOps = 300, kLen = 8192;
  AlignedBuffer out(kOps * kLen), in(kOps * kLen);
  for (size_t i = 0; i < out.size(); ++i) out.data()[i] = static_cast<uint8_t>(i * 13 + i / 4096);
  std::vector<IoOp> ops;
  for (size_t i = 0; i < kOps; ++i) {  // written in a shuffled order of offsets
    const size_t k = (i * 7) % kOps;
    ops.push_back(IoOp::Write(k * kLen, out.span().subspan(k * kLen, kLen)));
  }
  ops.push_back(IoOp::Sync());
  for (size_t k = 0; k < kOps; ++k)
    ops.push_back(IoOp::Read(k * kLen, in.span().subspan(k * kLen, kLen)));
  ops.push_back(IoOp::Sync());
  Status s = (*f)->Batch(ops);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(std::memcmp(in.data(), out.data(), out.size()), 0);
  EXPECT_EQ((*f)->Size().value(), kOps * kLen);

  // One write and its sync (the journal's shape), then a read of it in a second call.
  AlignedBuffer one(4096), back(4096);
  std::memset(one.data(), 0x5a, one.size());
  std::vector<IoOp> pair{IoOp::Write(4096, one.span()), IoOp::Sync()};
  ASSERT_TRUE((*f)->Batch(pair).ok());
  std::vector<IoOp> read{IoOp::Read(4096, back.span())};
  ASSERT_TRUE((*f)->Batch(read).ok());
  EXPECT_EQ(std::memcmp(back.data(), one.data(), 4096), 0);
  std::vector<IoOp> none;
  EXPECT_TRUE((*f)->Batch(none).ok());
}

TEST_P(BatchTest, ShortReadAndUnalignedFail) {
  auto f = Env::Default().OpenFile(dir_ + "/s", {Create::kYes, Direct::kTry});
  ASSERT_TRUE(f.ok());
  AlignedBuffer buf(3 * 4096);
  ASSERT_TRUE((*f)->PWrite(0, buf.span().first(4096)).ok());
  std::vector<IoOp> past{IoOp::Read(0, buf.span().first(4096)), IoOp::Read(0, buf.span())};
  Status s = (*f)->Batch(past);
  EXPECT_EQ(s.code(), Code::kIoError) << s.ToString();
  EXPECT_NE(s.message().find(dir_ + "/s"), std::string::npos) << s.message();
  if ((*f)->is_direct()) {
    std::vector<IoOp> odd{IoOp::Write(0, buf.span().first(4096)),
                          IoOp::Write(100, buf.span().first(4096))};
    EXPECT_EQ((*f)->Batch(odd).code(), Code::kInvalidArgument);
  }
}

INSTANTIATE_TEST_SUITE_P(Engines, BatchTest,
                         ::testing::Values(IoEngine::kIoUring, IoEngine::kPosix),
                         [](const auto& info) { return std::string(IoEngineName(info.param)); });

// On this kernel io_uring is expected to work unless SPINDLE_IO_URING=0 turns it off; the
// test reports which engine Batch uses.
TEST(IoEngineTest, DefaultIsReported) {
  SetIoEngine(IoEngine::kIoUring);
  const char* name = IoEngineName(CurrentIoEngine());
  RecordProperty("engine", name);
  std::printf("io engine: %s\n", name);
  SetIoEngine(IoEngine::kPosix);
  EXPECT_EQ(CurrentIoEngine(), IoEngine::kPosix);
  SetIoEngine(IoEngine::kIoUring);
}

// AlignedBuffer rounds its size up to the alignment and returns an aligned, zeroed block.
TEST(AlignedBufferTest, RoundsAndAligns) {
  AlignedBuffer b(5000);
  EXPECT_EQ(b.size(), 8192u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % kDirectIoAlignment, 0u);
  for (size_t i = 0; i < b.size(); ++i) ASSERT_EQ(b.data()[i], 0);
}

// The system clock is monotonic and its wall time is after 2020; the manual clock moves only
// when advanced.
TEST(ClockTest, SystemAndManual) {
  const Clock& c = Env::Default().clock();
  auto a = c.Now();
  EXPECT_LE(a, c.Now());
  EXPECT_GT(c.UnixSeconds(), 1577836800);
  ManualClock m;
  m.SetUnixSeconds(1000);
  auto t0 = m.Now();
  m.Advance(std::chrono::seconds(5));
  EXPECT_EQ(m.Now() - t0, std::chrono::seconds(5));
  EXPECT_EQ(m.UnixSeconds(), 1005);
}

}  // namespace
}  // namespace spindle::env
