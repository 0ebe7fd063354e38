// Tests of the background scrubber on file-backed disks: corruption is found within one pass
// and reported once, the bandwidth bound holds, and a rewritten or repaired object is cleared.
#include "server/scrubber.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "server/registrar.h"
#include "server/test_util.h"

namespace spindle::server {
namespace {

using namespace std::chrono_literals;

struct Found {
  DiskId disk;
  LayerId layer;
  ObjectIndex object;
};

class ScrubberTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = dir_.NewDisk(7, 4);
    ASSERT_NE(store_, nullptr);
    path_ = store_->path();
  }
  void TearDown() override {
    scrubber_.reset();
    pool_.join();
  }
  // Writes `bytes` of Pattern(seed) at offset 0 of (layer, object) as `version`.
  void Put(uint64_t layer, uint32_t object, uint64_t version, size_t bytes, uint32_t seed) {
    auto r = store_->Write(LayerId(layer), ObjectIndex(object), version, 0,
                           testing::Pattern(bytes, seed));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  // Flips one byte of the block in the file, with the store closed, and reopens it.
  void Corrupt(uint64_t layer, uint32_t object, uint32_t block) {
    ASSERT_TRUE(store_->Checkpoint().ok());
    auto at = store_->BlockOffset(LayerId(layer), ObjectIndex(object), block);
    ASSERT_TRUE(at.ok()) << at.status().ToString();
    store_.reset();
    int fd = ::open(path_.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    uint8_t byte = 0;
    ASSERT_EQ(::pread(fd, &byte, 1, static_cast<off_t>(*at + 123)), 1);
    byte ^= 0x5a;
    ASSERT_EQ(::pwrite(fd, &byte, 1, static_cast<off_t>(*at + 123)), 1);
    ::close(fd);
    auto s = jdisk::JStore::Open(env::Env::Default(), path_, testing::kTestCluster);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
  }
  void StartScrubber(uint64_t bandwidth, std::chrono::milliseconds pass_interval = 10ms) {
    ScrubOptions o;
    o.bandwidth_bytes_per_s = bandwidth;
    o.min_pass_interval = pass_interval;
    scrubber_ = std::make_unique<Scrubber>(env::Env::Default(), pool_, *store_, o);
    scrubber_->set_on_bad([this](DiskId d, LayerId l, ObjectIndex o) {
      std::lock_guard lock(mu_);
      found_.push_back({d, l, o});
    });
    scrubber_->Start();
  }
  // Waits (at most 20 s) until the scrubber has completed `passes` passes.
  ScrubStats WaitPasses(uint64_t passes) {
    auto deadline = std::chrono::steady_clock::now() + 20s;
    ScrubStats s = scrubber_->Stats();
    while (s.passes < passes && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
      s = scrubber_->Stats();
    }
    EXPECT_GE(s.passes, passes) << "the scrubber did not finish in time";
    return s;
  }
  std::vector<Found> found() {
    std::lock_guard lock(mu_);
    return found_;
  }

  testing::ScratchDir dir_;
  std::unique_ptr<jdisk::JStore> store_;
  std::string path_;
  asio::thread_pool pool_{2};
  std::unique_ptr<Scrubber> scrubber_;
  std::mutex mu_;
  std::vector<Found> found_;
};

// A byte flipped in one stored block is found in the first pass: listed (with the object's
// version), logged and passed to on_bad once per pass; every other block verifies.
TEST_F(ScrubberTest, CorruptBlockIsFoundInOnePass) {
  Put(1, 0, 1, 256 * 1024, 1);
  Put(1, 2, 1, 8192, 2);
  Put(4, 1, 1, 4096, 3);
  Put(4, 1, 2, 4096, 4);
  Corrupt(1, 0, 37);
  StartScrubber(1024 * kMiB);
  ScrubStats s = WaitPasses(1);
  ASSERT_EQ(s.bad_blocks.size(), 1u);
  EXPECT_EQ(s.bad_blocks[0], (jdisk::BadBlock{LayerId(1), ObjectIndex(0), 37, 1}));
  EXPECT_EQ(s.verified_blocks % (64 + 2 + 1), 0u);  // whole passes at once count every block
  EXPECT_GT(s.last_pass_end_unix_seconds, 0);
  s = WaitPasses(3);
  EXPECT_EQ(s.bad_blocks.size(), 1u);  // stays known bad
  scrubber_->Stop();
  s = scrubber_->Stats();
  auto f = found();
  ASSERT_GE(f.size(), 1u);
  EXPECT_LE(f.size(), s.passes + 1);  // once per pass (the stopped one may have called it)
  for (const Found& one : f) {
    EXPECT_EQ(one.disk, DiskId(7));
    EXPECT_EQ(one.layer, LayerId(1));
    EXPECT_EQ(one.object, ObjectIndex(0));
  }
  // The registrar reports it per disk.
  Registrar r(net::ApiEndpoint{}, {ServerId(1), NodeId(1), "127.0.0.1", 47001, 0}, {store_.get()});
  nlohmann::json body = r.Body();
  const auto& scrub = body["disks"][0]["scrub"];
  EXPECT_GE(scrub["passes"], 3);
  EXPECT_EQ(scrub["badBlocks"], nlohmann::json::parse("[[1, 0, 37]]"));
}

// The bytes read per second stay near the bound: 4 MiB at 8 MiB/s take about half a second.
// With bandwidth 0 nothing runs.
TEST_F(ScrubberTest, BandwidthIsBounded) {
  for (uint32_t o = 0; o < 4; ++o) Put(2, o, 1, kMiB, o);
  ASSERT_TRUE(store_->Checkpoint().ok());  // in place: every block is read from the device
  const auto start = std::chrono::steady_clock::now();
  StartScrubber(8 * kMiB, 60s);
  ScrubStats s = WaitPasses(1);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(s.verified_blocks, 4 * kMiB / kBlockSize);
  EXPECT_GE(took, 400ms);
  EXPECT_LE(took, 5s);
  scrubber_.reset();

  StartScrubber(0);
  std::this_thread::sleep_for(100ms);
  s = scrubber_->Stats();
  EXPECT_EQ(s.passes, 0u);
  EXPECT_EQ(s.verified_blocks, 0u);
  EXPECT_EQ(s.bandwidth_bytes_per_s, 0u);
}

// While clients do I/O on the disk the scrubber is paced at bandwidth / busy_divisor (reported
// as throttled); once they stop, at the full bandwidth again. It never stops.
TEST_F(ScrubberTest, YieldsToClientIo) {
  for (uint32_t o = 0; o < 4; ++o) Put(2, o, 1, kMiB, o);
  ASSERT_TRUE(store_->Checkpoint().ok());
  StartScrubber(64 * kMiB, 10ms);
  std::atomic<bool> clients{true};
  std::thread io([&] {
    while (clients) {
      store_->NoteClientIo();
      std::this_thread::sleep_for(1ms);
    }
  });
  auto wait_throttled = [&](bool want) {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (scrubber_->Stats().throttled != want && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(2ms);
    }
    return scrubber_->Stats().throttled == want;
  };
  EXPECT_TRUE(wait_throttled(true));
  const uint64_t before = scrubber_->Stats().verified_blocks;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (scrubber_->Stats().verified_blocks == before &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_GT(scrubber_->Stats().verified_blocks, before);  // slowed, not stopped
  EXPECT_TRUE(scrubber_->Stats().throttled);
  clients = false;
  io.join();
  EXPECT_TRUE(wait_throttled(false));
  const ScrubStats s = WaitPasses(scrubber_->Stats().passes + 2);  // full speed again
  EXPECT_FALSE(s.throttled);
}

// A rewrite of the object (new version) drops its bad block at once, and the next passes find
// the new data good; a repair that installs the same version is cleared by the next pass.
TEST_F(ScrubberTest, RewrittenOrRepairedObjectIsCleared) {
  Put(1, 0, 1, 64 * 1024, 1);
  Put(1, 1, 1, 64 * 1024, 2);
  Corrupt(1, 0, 3);
  Corrupt(1, 1, 5);
  StartScrubber(1024 * kMiB);
  ScrubStats s = WaitPasses(1);
  ASSERT_EQ(s.bad_blocks.size(), 2u);
  Put(1, 0, 2, 64 * 1024, 3);  // version 2 rewrites block 3
  s = scrubber_->Stats();
  ASSERT_EQ(s.bad_blocks.size(), 1u);
  EXPECT_EQ(s.bad_blocks[0].object, ObjectIndex(1));
  // Repair object 1 at its current version, as recovery does from a peer.
  jdisk::ObjectImage image;
  image.version = 1;
  image.present.assign(kBlocksPerObject, false);
  image.zeroed.assign(kBlocksPerObject, false);
  for (uint32_t b = 0; b < 16; ++b) image.present[b] = true;
  image.data = testing::Pattern(64 * 1024, 2);
  ASSERT_TRUE(store_->Install(LayerId(1), ObjectIndex(1), image).ok());
  const uint64_t after = s.passes;
  s = WaitPasses(after + 2);
  EXPECT_TRUE(s.bad_blocks.empty());
}

// Writes, trims and checkpoints racing the scrubber (blocks rewritten in place, chunks freed
// and reused) never make a good block look bad.
TEST_F(ScrubberTest, ConcurrentWritesAreNotCorruption) {
  for (uint32_t o = 0; o < 3; ++o) Put(3, o, 1, 128 * 1024, o);
  StartScrubber(1024 * kMiB, 0ms);
  std::atomic<bool> failed{false};
  std::thread writer([&] {
    for (uint64_t v = 2; v < 300 && !failed; ++v) {
      for (uint32_t o = 0; o < 3; ++o) {
        const uint32_t off = static_cast<uint32_t>((v * 7 + o) % 32) * 4096;
        Result<uint64_t> r = v % 5 == 0
                                 ? store_->Trim(LayerId(3), ObjectIndex(o), v, off, 2 * 65536 - off)
                                 : store_->Write(LayerId(3), ObjectIndex(o), v, off,
                                                 testing::Pattern(8192, static_cast<uint32_t>(v)));
        if (!r.ok()) failed = true;
      }
      if (v % 25 == 0 && !store_->Checkpoint().ok()) failed = true;
    }
  });
  writer.join();
  EXPECT_FALSE(failed);
  ScrubStats s = WaitPasses(scrubber_->Stats().passes + 2);
  EXPECT_TRUE(s.bad_blocks.empty());
  EXPECT_TRUE(found().empty());
  EXPECT_GT(s.verified_blocks, 0u);
}

// Forwards to the real files; calls `before_read` (once per arming) before a read that covers
// `offset`, to make a write race the read deterministically.
class HookEnv final : public env::Env {
 public:
  class HookFile final : public env::File {
   public:
    HookFile(HookEnv& env, std::unique_ptr<env::File> f) : env_(env), f_(std::move(f)) {}
    Result<size_t> PRead(uint64_t offset, std::span<uint8_t> buf) override {
      std::function<void()> hook;
      {
        std::lock_guard lock(env_.mu_);
        if (env_.before_read_ && offset <= env_.offset_ && env_.offset_ < offset + buf.size()) {
          hook = std::exchange(env_.before_read_, nullptr);
        }
      }
      if (hook) hook();
      return f_->PRead(offset, buf);
    }
    Status PWrite(uint64_t offset, std::span<const uint8_t> data) override {
      return f_->PWrite(offset, data);
    }
    Status DataSync() override { return f_->DataSync(); }
    Result<uint64_t> Size() override { return f_->Size(); }
    Status Truncate(uint64_t size) override { return f_->Truncate(size); }
    Status PunchHole(uint64_t offset, uint64_t length) override {
      return f_->PunchHole(offset, length);
    }
    bool is_direct() const override { return f_->is_direct(); }
    bool is_block_device() const override { return f_->is_block_device(); }
    const std::string& path() const override { return f_->path(); }

   private:
    HookEnv& env_;
    std::unique_ptr<env::File> f_;
  };

  Result<std::unique_ptr<env::File>> OpenFile(const std::string& path,
                                              const env::OpenOptions& options) override {
    SP_ASSIGN_OR_RETURN(auto f, env::Env::Default().OpenFile(path, options));
    return std::unique_ptr<env::File>(new HookFile(*this, std::move(f)));
  }
  const env::Clock& clock() const override { return env::Env::Default().clock(); }
  void Arm(uint64_t offset, std::function<void()> before_read) {
    std::lock_guard lock(mu_);
    offset_ = offset;
    before_read_ = std::move(before_read);
  }
  bool armed() {
    std::lock_guard lock(mu_);
    return before_read_ != nullptr;
  }

 private:
  std::mutex mu_;
  uint64_t offset_ = 0;
  std::function<void()> before_read_;
};

// A block rewritten in place (write, then checkpoint) between ScrubBlocks resolving it and
// reading it mismatches its old crc once; resolving again finds the new image good.
TEST(ScrubBlocks, RacingRewriteIsNotCorruption) {
  testing::ScratchDir dir;
  std::string path = dir.NewDisk(8, 2)->path();
  HookEnv env;
  auto opened = jdisk::JStore::Open(env, path, testing::kTestCluster);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  jdisk::JStore& store = **opened;
  ASSERT_TRUE(store.Write(LayerId(1), ObjectIndex(0), 1, 0, testing::Pattern(64 * 1024, 1)).ok());
  ASSERT_TRUE(store.Checkpoint().ok());
  auto at = store.BlockOffset(LayerId(1), ObjectIndex(0), 5);
  ASSERT_TRUE(at.ok());
  env.Arm(*at, [&] {
    const auto fresh = testing::Pattern(4096, 2);
    EXPECT_TRUE(store.Write(LayerId(1), ObjectIndex(0), 2, 5 * 4096, fresh).ok());
    EXPECT_TRUE(store.Checkpoint().ok());  // the new image goes in place, over the old
  });
  auto r = store.ScrubBlocks(LayerId(1), ObjectIndex(0), 0, 256);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(env.armed()) << "the read did not race";
  EXPECT_TRUE(r->bad_blocks.empty());
  EXPECT_EQ(r->blocks_verified, 16u);
  EXPECT_EQ(r->version, 2u);
  EXPECT_EQ(r->next_block, kBlocksPerObject);
}

}  // namespace
}  // namespace spindle::server
