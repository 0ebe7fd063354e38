#include "server/disk_store/sim_disk.h"

#include <algorithm>
#include <cstring>
#include <thread>

namespace spindle::server::jdisk {
namespace {

constexpr uint64_t kAlign = env::kDirectIoAlignment;
constexpr uint64_t kSector = 512;

Status CheckAligned(const std::string& path, uint64_t offset, const void* p, size_t len) {
  if (offset % kAlign == 0 && len % kAlign == 0 && reinterpret_cast<uintptr_t>(p) % kAlign == 0) {
    return Status::Ok();
  }
  return Error(Code::kInvalidArgument, "unaligned direct I/O on {}: offset {} length {}", path,
               offset, len);
}

class SimFile final : public env::File {
 public:
  SimFile(std::shared_ptr<SimDisk> disk, std::string path)
      : disk_(std::move(disk)), path_(std::move(path)) {}
  Result<size_t> PRead(uint64_t offset, std::span<uint8_t> buf) override {
    SP_RETURN_IF_ERROR(CheckAligned(path_, offset, buf.data(), buf.size()));
    return disk_->Read(offset, buf);
  }
  Status PWrite(uint64_t offset, std::span<const uint8_t> data) override {
    SP_RETURN_IF_ERROR(CheckAligned(path_, offset, data.data(), data.size()));
    return disk_->Write(offset, data);
  }
  Status DataSync() override { return disk_->Sync(); }
  Result<uint64_t> Size() override { return disk_->size(); }
  Status Truncate(uint64_t size) override {
    if (size == disk_->size()) return Status::Ok();
    return Error(Code::kInvalidArgument, "simulated disk {} has a fixed size", path_);
  }
  Status PunchHole(uint64_t, uint64_t) override {
    return Error(Code::kUnimplemented, "simulated disk cannot punch holes");
  }
  bool is_direct() const override { return true; }
  bool is_block_device() const override { return true; }
  const std::string& path() const override { return path_; }

 private:
  std::shared_ptr<SimDisk> disk_;
  std::string path_;
};

}  // namespace

SimDisk::SimDisk(uint64_t size, uint64_t seed) : size_(size), durable_(size, 0), rng_(seed) {}

Status SimDisk::CountOpLocked() {
  if (crashed_) return Error(Code::kIoError, "simulated disk crashed");
  if (crash_after_ > 0 && --crash_after_ == 0) {
    CrashLocked();
    return Error(Code::kIoError, "simulated disk crashed");
  }
  return Status::Ok();
}

Result<size_t> SimDisk::Read(uint64_t offset, std::span<uint8_t> buf) {
  std::lock_guard lock(mu_);
  if (crashed_) return Error(Code::kIoError, "simulated disk crashed");
  if (offset >= size_) return size_t{0};
  const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), size_ - offset));
  std::memcpy(buf.data(), durable_.data() + offset, n);
  for (const Pending& p : unsynced_) {  // later writes win: apply in order
    const uint64_t from = std::max(offset, p.offset);
    const uint64_t to = std::min(offset + n, p.offset + p.data.size());
    if (from < to)
      std::memcpy(buf.data() + (from - offset), p.data.data() + (from - p.offset), to - from);
  }
  return n;
}

Status SimDisk::Write(uint64_t offset, std::span<const uint8_t> data) {
  std::lock_guard lock(mu_);
  SP_RETURN_IF_ERROR(CountOpLocked());
  if (offset + data.size() > size_) return Error(Code::kResourceExhausted, "write past the end");
  ++writes_;
  unsynced_.push_back(Pending{offset, std::vector<uint8_t>(data.begin(), data.end())});
  return Status::Ok();
}

Status SimDisk::Sync() {
  std::chrono::microseconds delay{0};
  {
    std::lock_guard lock(mu_);
    delay = sync_delay_;
  }
  if (delay.count() > 0) std::this_thread::sleep_for(delay);
  std::lock_guard lock(mu_);
  SP_RETURN_IF_ERROR(CountOpLocked());
  if (crash_at_sync_ > 0 && --crash_at_sync_ == 0) {
    CrashLocked();
    return Error(Code::kIoError, "simulated disk crashed");
  }
  ++syncs_;
  for (const Pending& p : unsynced_) {
    std::memcpy(durable_.data() + p.offset, p.data.data(), p.data.size());
  }
  unsynced_.clear();
  return Status::Ok();
}

void SimDisk::CrashLocked() {
  crashed_ = true;
  crash_after_ = 0;
  crash_at_sync_ = 0;
  for (const Pending& p : unsynced_) {
    Fate fate = policy_ ? policy_(p.offset, p.data.size()) : Fate::kRandom;
    if (fate == Fate::kRandom) {
      constexpr Fate kFates[3] = {Fate::kDrop, Fate::kKeep, Fate::kTear};
      fate = kFates[rng_() % 3];
    }
    if (fate == Fate::kDrop) continue;
    for (uint64_t s = 0; s < p.data.size(); s += kSector) {
      if (fate == Fate::kTear && rng_() % 2 == 0) continue;
      std::memcpy(durable_.data() + p.offset + s, p.data.data() + s, kSector);
    }
  }
  unsynced_.clear();
}

void SimDisk::ArmCrash(uint64_t ops) {
  std::lock_guard lock(mu_);
  crash_after_ = ops;
}

void SimDisk::ArmCrashAtSync(uint64_t n) {
  std::lock_guard lock(mu_);
  crash_at_sync_ = n;
}

void SimDisk::SetCrashPolicy(std::function<Fate(uint64_t, uint64_t)> policy) {
  std::lock_guard lock(mu_);
  policy_ = std::move(policy);
}

void SimDisk::CrashNow() {
  std::lock_guard lock(mu_);
  if (!crashed_) CrashLocked();
}

bool SimDisk::crashed() const {
  std::lock_guard lock(mu_);
  return crashed_;
}

void SimDisk::Revive() {
  std::lock_guard lock(mu_);
  crashed_ = false;
  crash_after_ = 0;
  crash_at_sync_ = 0;
}

void SimDisk::FlipByte(uint64_t offset) {
  std::lock_guard lock(mu_);
  durable_[offset] ^= 0x5a;
}

void SimDisk::SetSyncDelay(std::chrono::microseconds delay) {
  std::lock_guard lock(mu_);
  sync_delay_ = delay;
}

uint64_t SimDisk::syncs() const {
  std::lock_guard lock(mu_);
  return syncs_;
}

uint64_t SimDisk::writes() const {
  std::lock_guard lock(mu_);
  return writes_;
}

std::shared_ptr<SimDisk> SimEnv::AddDisk(const std::string& path, uint64_t size, uint64_t seed) {
  std::lock_guard lock(mu_);
  auto disk = std::make_shared<SimDisk>(size, seed);
  disks_[path] = disk;
  return disk;
}

Result<std::unique_ptr<env::File>> SimEnv::OpenFile(const std::string& path,
                                                    const env::OpenOptions&) {
  std::lock_guard lock(mu_);
  auto it = disks_.find(path);
  if (it == disks_.end()) return Error(Code::kNotFound, "open {}: no such simulated disk", path);
  return std::unique_ptr<env::File>(new SimFile(it->second, path));
}

}  // namespace spindle::server::jdisk
