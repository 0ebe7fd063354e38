// Helpers shared by the server's unit tests: a scratch disk and a bounded io_context runner.
#pragma once

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <string>

#include <gtest/gtest.h>
#include <asio.hpp>

#include "common/assert.h"
#include "server/disk_store/jstore.h"

namespace spindle::server::testing {

inline const std::string kTestCluster = "unit.test";

// A temporary directory holding disk files; removed at destruction.
class ScratchDir {
 public:
  // Under /tmp, or `base` (e.g. /dev/shm for a store whose file is in memory).
  explicit ScratchDir(const std::string& base = "/tmp") {
    std::string tmpl = base + "/spindle-server-test-XXXXXX";
    SP_ASSERT(::mkdtemp(tmpl.data()) != nullptr);
    dir_ = tmpl;
  }
  ~ScratchDir() { std::filesystem::remove_all(dir_); }
  // Initialises a disk whose data area holds `objects` whole objects and opens it.
  std::unique_ptr<jdisk::JStore> NewDisk(uint32_t disk_id, uint32_t objects = 4) {
    std::string path = dir_ + "/disk" + std::to_string(disk_id) + ".img";
    Status s = jdisk::JStore::Init(env::Env::Default(), path,
                                   {DiskId(disk_id), kTestCluster, DiskBytes(objects), kJournal});
    EXPECT_TRUE(s.ok()) << s.ToString();
    auto store = jdisk::JStore::Open(env::Env::Default(), path, kTestCluster);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  // Device bytes whose data area holds `objects` whole objects (and less than one more).
  static uint64_t DiskBytes(uint32_t objects) {
    uint64_t bytes = uint64_t{objects} * kObjectSize;
    while (jdisk::Layout(bytes, kJournal)->data_chunks * jdisk::kChunkBytes <
           uint64_t{objects} * kObjectSize) {
      bytes += kMiB;
    }
    return bytes;
  }
  static constexpr uint64_t kJournal = 2 * kMiB;

 private:
  std::string dir_;
};

inline std::vector<uint8_t> Pattern(size_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  std::mt19937 rng(seed);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

// Runs `body` on io until it finishes (at most 20 s, then the test fails).
inline void RunCoroutine(asio::io_context& io, asio::awaitable<void> body) {
  bool done = false;
  asio::co_spawn(io, std::move(body), [&](std::exception_ptr) {
    done = true;
    io.stop();
  });
  io.run_for(std::chrono::seconds(20));
  ASSERT_TRUE(done) << "test coroutine did not finish in time";
}

// Lets every coroutine still on io finish (connections closing, detached spawns), so none is
// destroyed suspended after the objects it refers to are gone. Bounded to 5 s.
inline void Drain(asio::io_context& io) {
  io.restart();
  io.run_for(std::chrono::seconds(5));
}

}  // namespace spindle::server::testing
