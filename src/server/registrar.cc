#include "server/registrar.h"

#include <algorithm>
#include <map>

#include "common/log.h"
#include "common/units.h"

namespace spindle::server {
namespace {

// At most this many per-object entries (~70 bytes each) go into one registration, keeping the
// body well under mgmt's 1 MiB limit; a disk whose objects do not fit sends none (mgmt then
// estimates one copy from the per-layer totals, which are always complete).
constexpr size_t kMaxReportedObjects = 8192;
// Bad blocks listed per disk in its "scrub" entry (the first ones in (layer, object) order).
constexpr size_t kMaxReportedBadBlocks = 64;

// Per-layer usage and per-object entries of one disk for the registration body; `budget` is
// what is left of kMaxReportedObjects.
void AddUsage(const jdisk::JStore& d, nlohmann::json& out, size_t& budget) {
  struct Layer {
    uint64_t objects = 0, stored = 0;
  };
  std::map<uint64_t, Layer> layers;
  nlohmann::json objects = nlohmann::json::array();
  std::vector<jdisk::ObjectEntry> entries = d.List();
  for (const jdisk::ObjectEntry& e : entries) {
    uint64_t stored = uint64_t{e.info.blocks_present} * kBlockSize;
    Layer& l = layers[e.layer.value()];
    ++l.objects;
    l.stored += stored;
    if (entries.size() <= budget) {
      objects.push_back({{"layer", e.layer.value()},
                         {"object", e.object.value()},
                         {"version", e.info.version},
                         {"state", static_cast<uint32_t>(e.info.state)},
                         {"storedBytes", stored}});
    }
  }
  nlohmann::json usage = nlohmann::json::array();
  for (const auto& [layer, l] : layers) {
    usage.push_back({{"layer", layer}, {"objects", l.objects}, {"storedBytes", l.stored}});
  }
  out["usage"] = std::move(usage);
  out["objectList"] = std::move(objects);
  if (entries.size() <= budget) budget -= entries.size();
}

// The disk's scrubber findings, when one runs: {"passes", "verifiedBlocks", "badBlocks":
// [[layer, object, block], ...], "badBlocksCount", "lastPassEnd", "bandwidth", "throttled"}.
void AddScrub(const jdisk::JStore& d, nlohmann::json& out) {
  std::optional<jdisk::ScrubStats> s = d.scrub_stats();
  if (!s) return;
  nlohmann::json bad = nlohmann::json::array();
  for (size_t i = 0; i < s->bad_blocks.size() && i < kMaxReportedBadBlocks; ++i) {
    const jdisk::BadBlock& b = s->bad_blocks[i];
    bad.push_back({b.layer.value(), b.object.value(), b.block});
  }
  out["scrub"] = {{"passes", s->passes},
                  {"verifiedBlocks", s->verified_blocks},
                  {"badBlocks", std::move(bad)},
                  {"badBlocksCount", s->bad_blocks.size()},
                  {"lastPassEnd", s->last_pass_end_unix_seconds},
                  {"bandwidth", s->bandwidth_bytes_per_s},
                  {"throttled", s->throttled}};
}

}  // namespace

Registrar::Registrar(net::ApiEndpoint endpoint, RegistrationInfo info,
                     std::vector<const jdisk::JStore*> disks)
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
  size_t object_budget = kMaxReportedObjects;
  for (const jdisk::JStore* d : disks_) {
    jdisk::StoreStats s = d->Stats();
    disks.push_back({{"id", d->superblock().disk.value()},
                     {"device", d->path()},
                     {"ssd", false},
                     {"journaled", true},
                     {"sectorsCount", s.device_bytes / kSectorSize},
                     // Thin: capacity and use in whole 32 MiB objects' worth of space.
                     {"objectsCount", s.data_bytes / kObjectSize},
                     {"objectsAllocated", (s.on_disk_bytes + kObjectSize - 1) / kObjectSize},
                     {"objectsOnDiskSize", s.on_disk_bytes},
                     {"storedSize", s.bytes_stored},
                     {"entriesCount", s.max_objects},
                     {"entriesAllocated", s.objects},
                     // Almost no free chunk left: mgmt keeps it down until space is freed.
                     {"full", s.on_disk_bytes + kFullMarginBytes >= s.data_bytes}});
    AddUsage(*d, disks.back(), object_budget);
    AddScrub(*d, disks.back());
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
  nlohmann::json body = Body();
  if (extra_) body.update(extra_());
  net::ApiResult r = client.Post("/spindle/1/ServiceRegister", body);
  if (r.ok() && on_reply_) on_reply_(r.reply().data);
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
