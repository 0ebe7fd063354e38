// Crash test of the journaled store on the simulated disk: thousands of random crash points,
// each followed by recovery and a check against the model of acknowledged writes.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <thread>

#include "server/disk_store/jstore.h"
#include "server/disk_store/sim_disk.h"

namespace spindle::server::jdisk {
namespace {

constexpr char kCluster[] = "crash";
constexpr uint32_t kSpan = 512 * 1024;  // bytes of each object the test touches
constexpr int kThreads = 2;
constexpr int kObjectsPerThread = 2;
constexpr int kMaxOpsPerRound = 60;
constexpr int kMaxRounds = 3000;
constexpr auto kTimeBudget = std::chrono::seconds(15);

struct Op {
  bool trim = false;
  uint64_t version = 0;
  uint32_t offset = 0;
  std::vector<uint8_t> data;  // empty for a trim
  uint32_t length = 0;
};

struct ObjectModel {
  uint64_t version = 0;
  std::vector<uint8_t> bytes = std::vector<uint8_t>(kSpan, 0);
  std::optional<Op> in_flight;  // not acknowledged: may or may not be applied
  void Apply(const Op& op) {
    if (op.trim) {
      std::memset(bytes.data() + op.offset, 0, op.length);
    } else {
      std::memcpy(bytes.data() + op.offset, op.data.data(), op.data.size());
    }
    version = op.version;
  }
};

Op RandomOp(std::mt19937_64& rng, uint64_t version) {
  Op op;
  op.version = version;
  op.trim = rng() % 6 == 0;
  const int kind = static_cast<int>(rng() % 10);
  uint32_t len = kind < 4   ? static_cast<uint32_t>(1 + rng() % 8) * 512        // sub-4 KiB
                 : kind < 7 ? static_cast<uint32_t>(1 + rng() % 16) * 4096      // small
                            : static_cast<uint32_t>(128 + rng() % 200) * 1024;  // large
  op.length = len;
  op.offset = static_cast<uint32_t>(rng() % ((kSpan - len) / 512 + 1)) * 512;
  if (!op.trim) {
    op.data.resize(len);
    for (uint32_t i = 0; i < len; i += 8) {
      const uint64_t r = rng();
      std::memcpy(op.data.data() + i, &r, 8);
    }
  }
  return op;
}

// One writer thread: random ops on its objects until one fails (the disk crashed).
void Writer(JStore& store, std::vector<ObjectModel*> objs, uint32_t first_object, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (int i = 0; i < kMaxOpsPerRound; ++i) {
    const uint32_t k = static_cast<uint32_t>(rng() % objs.size());
    ObjectModel& m = *objs[k];
    Op op = RandomOp(rng, m.version + 1);
    const ObjectIndex object(first_object + k);
    Result<uint64_t> r = op.trim ? store.Trim(LayerId(1), object, op.version, op.offset, op.length)
                                 : store.Write(LayerId(1), object, op.version, op.offset, op.data);
    if (!r.ok()) {
      m.in_flight = std::move(op);
      return;
    }
    m.Apply(op);
  }
}

// Checks every object after recovery: at the acknowledged version with exactly its content,
// or (when a write was in flight) wholly at the next version; reads never fail their crcs.
void CheckRecovered(JStore& store, std::vector<ObjectModel>& models, int round) {
  for (uint32_t o = 0; o < models.size(); ++o) {
    ObjectModel& m = models[o];
    const uint64_t v = store.Info(LayerId(1), ObjectIndex(o)).version;
    if (m.in_flight && v == m.in_flight->version) {
      m.Apply(*m.in_flight);
    }
    m.in_flight.reset();
    ASSERT_EQ(v, m.version) << "round " << round << " object " << o;
    std::vector<uint8_t> got(kSpan);
    Status s = store.Read(std::vector<LayerId>{LayerId(1)}, ObjectIndex(o), 0, got);
    ASSERT_TRUE(s.ok()) << "round " << round << ": " << s.ToString();
    ASSERT_TRUE(got == m.bytes) << "round " << round << " object " << o << " version " << v;
  }
}

Result<std::unique_ptr<JStore>> OpenAfterCrash(SimEnv& env, SimDisk& disk, std::mt19937_64& rng) {
  StoreOptions opts;
  opts.flush_interval = std::chrono::milliseconds(1 + rng() % 5);
  disk.Revive();
  if (rng() % 6 == 0) disk.ArmCrash(1 + rng() % 6);  // crash during recovery as well
  auto store = JStore::Open(env, "c", kCluster, opts);
  if (store.ok() || !disk.crashed()) return store;
  disk.Revive();
  return JStore::Open(env, "c", kCluster, opts);
}

// Thousands of random crash points (during writes, group commits, flushes, checkpoints and
// recovery itself) lose no acknowledged write, tear no object and cause no checksum error.
TEST(JStoreCrash, RandomCrashPoints) {
  SimEnv env;
  auto disk = env.AddDisk("c", 24 * kMiB, 12345);
  ASSERT_TRUE(JStore::Init(env, "c", {DiskId(1), kCluster, 0, 2 * kMiB}).ok());
  std::mt19937_64 rng(777);
  std::vector<ObjectModel> models(kThreads * kObjectsPerThread);
  const auto start = std::chrono::steady_clock::now();
  int rounds = 0;
  uint64_t acked_versions = 0;
  for (; rounds < kMaxRounds && std::chrono::steady_clock::now() - start < kTimeBudget; ++rounds) {
    auto store = OpenAfterCrash(env, *disk, rng);
    ASSERT_TRUE(store.ok()) << "round " << rounds << ": " << store.status().ToString();
    CheckRecovered(**store, models, rounds);
    if (HasFatalFailure()) return;
    if (rounds % 100 == 0) {
      auto bad = (*store)->Verify();
      ASSERT_TRUE(bad.ok());
      ASSERT_TRUE(bad->empty()) << bad->front();
    }
    disk->ArmCrash(1 + rng() % 80);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      std::vector<ObjectModel*> mine;
      for (int k = 0; k < kObjectsPerThread; ++k)
        mine.push_back(&models[t * kObjectsPerThread + k]);
      threads.emplace_back(Writer, std::ref(**store), mine, t * kObjectsPerThread, rng());
    }
    for (auto& th : threads) th.join();
    disk->CrashNow();  // if no write hit the armed point, crash now
    store->reset();
  }
  for (const auto& m : models) acked_versions += m.version;
  RecordProperty("rounds", rounds);
  std::printf("crash rounds: %d, versions acknowledged: %llu\n", rounds,
              static_cast<unsigned long long>(acked_versions));
  EXPECT_GE(rounds, 1000);
  EXPECT_GT(acked_versions, static_cast<uint64_t>(rounds));
}

}  // namespace
}  // namespace spindle::server::jdisk
