#include "server/registrar.h"

#include <algorithm>

#include "common/log.h"
#include "common/units.h"

namespace spindle::server {

Registrar::Registrar(net::ApiEndpoint endpoint, RegistrationInfo info,
                     std::vector<const disk::DiskStore*> disks)
    : endpoint_(std::move(endpoint)), info_(std::move(info)), disks_(std::move(disks)) {
  endpoint_.timeout = std::min(endpoint_.timeout, kHeartbeatCallTimeout);
}

Registrar::~Registrar() {
  Stop();
}

void Registrar::Start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { Run(); });
}

void Registrar::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

uint64_t Registrar::registrations() const {
  std::lock_guard lock(mu_);
  return registrations_;
}

nlohmann::json Registrar::Body() const {
  nlohmann::json disks = nlohmann::json::array();
  for (const disk::DiskStore* d : disks_) {
    disk::StoreStats s = d->Stats();
    disks.push_back({{"id", d->superblock().disk.value()},
                     {"device", d->path()},
                     {"ssd", false},
                     {"journaled", false},
                     {"sectorsCount", s.device_bytes / kSectorSize},
                     {"objectsCount", s.slots_total},
                     {"objectsAllocated", s.slots_used},
                     {"objectsOnDiskSize", uint64_t{s.slots_used} * kObjectSize},
                     {"storedSize", s.bytes_stored},
                     {"entriesCount", s.slots_total},
                     {"entriesAllocated", s.slots_used}});
  }
  return {{"type", "server"},
          {"id", info_.id.value()},
          {"nodeId", info_.node.value()},
          {"version", SPINDLE_VERSION},
          {"startTime", info_.start_unix_seconds},
          {"addr", info_.addr},
          {"port", info_.port},
          {"disks", std::move(disks)}};
}

void Registrar::Run() {
  net::ApiClient client(endpoint_);
  std::unique_lock lock(mu_);
  while (!stop_) {
    lock.unlock();
    auto wait = Beat(client);
    lock.lock();
    cv_.wait_for(lock, wait, [this] { return stop_; });
  }
}

std::chrono::milliseconds Registrar::Beat(net::ApiClient& client) {
  net::ApiResult r = client.Post("/spindle/1/ServiceRegister", Body());
  std::lock_guard lock(mu_);
  if (!r.ok()) {
    if (!failing_) {
      SP_LOG_WARN("register with mgmt at {}:{} failed ({}: {}); retrying every {} ms",
                  endpoint_.host, endpoint_.port, r.error().name, r.error().descr,
                  interval_.count());
    }
    failing_ = true;
    return interval_;
  }
  if (failing_ || registrations_ == 0) {
    SP_LOG_INFO("registered with mgmt at {}:{} (generation {})", endpoint_.host, endpoint_.port,
                r.reply().generation);
  }
  failing_ = false;
  ++registrations_;
  const auto& data = r.reply().data;
  if (data.is_object() && data.contains("heartbeatIntervalMs") &&
      data["heartbeatIntervalMs"].is_number_integer()) {
    interval_ = std::clamp(std::chrono::milliseconds(data["heartbeatIntervalMs"].get<int64_t>()),
                           kMinHeartbeatInterval, kMaxHeartbeatInterval);
  }
  return interval_;
}

}  // namespace spindle::server
