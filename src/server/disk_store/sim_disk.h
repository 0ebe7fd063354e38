// A simulated disk behind the env seam, for crash tests (test-only).
// Writes are kept in memory as "unsynced" until DataSync; a simulated crash keeps, drops or
// tears (a random subset of 512-byte sectors) each unsynced write, as a power cut may.
// Files are direct: offsets, lengths and buffers must be 4 KiB-aligned.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "env/env.h"

namespace spindle::server::jdisk {

class SimDisk {
 public:
  SimDisk(uint64_t size, uint64_t seed);

  Result<size_t> Read(uint64_t offset, std::span<uint8_t> buf);
  Status Write(uint64_t offset, std::span<const uint8_t> data);
  Status Sync();
  uint64_t size() const { return size_; }

  // After `ops` more writes or syncs the disk crashes: the operation that hits the count and
  // every later one fail with kIoError; unsynced writes are kept, dropped or torn.
  void ArmCrash(uint64_t ops);
  // The `n`th sync from now (n >= 1) crashes the disk instead of completing.
  void ArmCrashAtSync(uint64_t n);
  // What a crash does to an unsynced write: kRandom keeps, drops or tears it (seeded choice).
  enum class Fate { kRandom, kKeep, kDrop, kTear };
  // Decides the fate of each unsynced write at a crash by its range (tests that need one).
  void SetCrashPolicy(std::function<Fate(uint64_t offset, uint64_t length)> policy);
  // Crashes now (if not crashed yet).
  void CrashNow();
  bool crashed() const;
  // Accepts I/O again (the "reboot"); disarms any pending crash.
  void Revive();
  // Flips one byte of durable storage (corruption tests).
  void FlipByte(uint64_t offset);
  uint64_t syncs() const;
  uint64_t writes() const;
  // Each sync takes this long (outside the disk's lock), as a device's flush does: lets writers
  // overlap a round in progress (group commit tests).
  void SetSyncDelay(std::chrono::microseconds delay);

 private:
  struct Pending {
    uint64_t offset;
    std::vector<uint8_t> data;
  };
  void CrashLocked();
  Status CountOpLocked();

  mutable std::mutex mu_;
  const uint64_t size_;
  std::vector<uint8_t> durable_;
  std::vector<Pending> unsynced_;
  std::mt19937_64 rng_;
  uint64_t crash_after_ = 0;    // 0: not armed
  uint64_t crash_at_sync_ = 0;  // 0: not armed
  std::function<Fate(uint64_t, uint64_t)> policy_;
  bool crashed_ = false;
  uint64_t syncs_ = 0;
  uint64_t writes_ = 0;
  std::chrono::microseconds sync_delay_{0};
};

class SimEnv final : public env::Env {
 public:
  // Registers a disk under `path` (shared by every File opened on it).
  std::shared_ptr<SimDisk> AddDisk(const std::string& path, uint64_t size, uint64_t seed);
  Result<std::unique_ptr<env::File>> OpenFile(const std::string& path,
                                              const env::OpenOptions& options) override;
  const env::Clock& clock() const override { return env::Env::Default().clock(); }

 private:
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<SimDisk>> disks_;
};

}  // namespace spindle::server::jdisk
