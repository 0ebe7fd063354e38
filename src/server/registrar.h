// Registrar: registers this server with spindle-mgmt and keeps it alive there
// (POST /spindle/1/ServiceRegister, docs/formats/internal-api.md). The first call is sent at
// Start(), then one every heartbeatIntervalMs as mgmt's reply says. Failures are logged (once
// per change of state) and retried at the same interval; the data path never depends on it.
//
// Threads: one thread of its own, started by Start() and joined by Stop(); it only reads the
// DiskStores' thread-safe Stats().
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/ids.h"
#include "net/api_client.h"
#include "server/disk_store/jstore.h"

namespace spindle::server {

inline constexpr std::chrono::milliseconds kDefaultHeartbeatInterval{1000};
inline constexpr std::chrono::milliseconds kMinHeartbeatInterval{100};
inline constexpr std::chrono::milliseconds kMaxHeartbeatInterval{60000};
// A disk with less free data space than this reports itself full.
inline constexpr uint64_t kFullMarginBytes = 32 * 1024 * 1024;
// A heartbeat that takes longer than this is abandoned (and Stop() never waits longer).
inline constexpr std::chrono::milliseconds kHeartbeatCallTimeout{3000};

struct RegistrationInfo {
  ServerId id;
  NodeId node;
  std::string addr;
  uint16_t port = 0;
  int64_t start_unix_seconds = 0;
};

class Registrar {
 public:
  // disks: not owned; must outlive the Registrar.
  Registrar(net::ApiEndpoint endpoint, RegistrationInfo info,
            std::vector<const jdisk::JStore*> disks);
  ~Registrar();

  // extra(): merged into every heartbeat body; on_reply(data): called with every answer. Both
  // run on the registrar's thread. Set before Start().
  void set_hooks(std::function<nlohmann::json()> extra,
                 std::function<void(const nlohmann::json&)> on_reply) {
    extra_ = std::move(extra);
    on_reply_ = std::move(on_reply);
  }
  void Start();
  void Stop();
  // The ServiceRegister body with the disks' current statistics.
  nlohmann::json Body() const;
  // Successful registrations so far (for tests and status).
  uint64_t registrations() const;

 private:
  void Run();
  // One call; returns the interval to wait before the next.
  std::chrono::milliseconds Beat(net::ApiClient& client);

  net::ApiEndpoint endpoint_;
  std::function<nlohmann::json()> extra_;
  std::function<void(const nlohmann::json&)> on_reply_;
  const RegistrationInfo info_;
  const std::vector<const jdisk::JStore*> disks_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool failing_ = false;  // the last call failed (logged once per change)
  uint64_t registrations_ = 0;
  std::chrono::milliseconds interval_ = kDefaultHeartbeatInterval;
  std::thread thread_;
};

}  // namespace spindle::server
