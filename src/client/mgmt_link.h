// The client's link to spindle-mgmt (docs/formats/internal-api.md): registers and heartbeats
// (POST /spindle/1/ServiceRegister), long-polls its attachments (GET /spindle/1/ClientState),
// hands every new state to the io_context thread, and reports the applied generation
// (POST /spindle/1/ClientReport) and the volumes it holds for a group snapshot's cut
// (POST /spindle/1/ClientPaused).
//
// Thread: two threads of its own (heartbeat, poll), each with its own blocking ApiClient. The
// state is applied on the io_context thread through asio::post; the poll thread waits for that
// before it reports. RequestStop() may be called from any thread; Join() from the owner.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include <asio.hpp>

#include "client/state.h"
#include "common/ids.h"
#include "net/api_client.h"

namespace spindle::client {

struct MgmtLinkOptions {
  net::ApiEndpoint api;
  ClientId id;
  std::string nbd_socket;
  std::string nbd_host;
  uint16_t nbd_port = 0;
  // How long one ClientState long-poll may wait in mgmt (also bounds how long Join() takes).
  std::chrono::milliseconds poll_timeout{3000};
  std::chrono::milliseconds retry_delay{1000};
};

class MgmtLink {
 public:
  // Applies a state on the io thread and calls `done` (on the io thread) once it took effect,
  // with the globalIds it holds, drained, for the state's group-snapshot cut (if any); the
  // generation is reported applied, and the volumes held, only then.
  using ApplyFn =
      std::function<void(ClientState, std::function<void(std::vector<std::string> paused)> done)>;

  MgmtLink(MgmtLinkOptions options, asio::io_context& io, ApplyFn apply);
  ~MgmtLink();
  MgmtLink(const MgmtLink&) = delete;
  MgmtLink& operator=(const MgmtLink&) = delete;

  void Start();
  // Volumes (globalIds) in use on this node; sent with every heartbeat so mgmt can refuse a
  // detach while a volume is open. Any thread.
  void SetInUse(std::vector<std::string> global_ids);
  // Asks mgmt to mark `disk` down (a replica failed a write); calls done(generation of that
  // change) from the link's report thread, or done(error) after kReportDeadline of failed
  // attempts or on stop. Any thread.
  void ReportDiskFailed(DiskId disk, std::string reason, std::function<void(Result<int64_t>)> done);
  void RequestStop();
  void Join();
  int64_t applied_generation() const { return applied_generation_.load(); }

 private:
  void HeartbeatLoop();
  void ReportLoop();
  void PollLoop();
  bool PollOnce(net::ApiClient& api, int64_t& since);
  // The globalIds held for the state's cut (see ApplyFn).
  Result<std::vector<std::string>> ApplyOnIo(ClientState state);
  void ReportPaused(net::ApiClient& api, int64_t cut, const std::vector<std::string>& volumes);
  nlohmann::json RegisterBody() const;
  std::vector<std::string> InUseCopy() const;
  // Sleeps up to `d`; false when a stop was requested.
  bool Sleep(std::chrono::milliseconds d);
  bool stopping() const { return stop_.load(); }

  MgmtLinkOptions options_;
  asio::io_context& io_;
  ApplyFn apply_;
  int64_t start_time_ = 0;
  bool poll_failing_ = false;  // poll thread only: log transitions, not every retry
  int64_t cut_ = 0;            // poll thread only: the group-snapshot cut last applied
  std::atomic<bool> stop_{false};
  mutable std::mutex in_use_mu_;
  std::vector<std::string> in_use_;
  std::atomic<int64_t> applied_generation_{0};
  std::atomic<int64_t> heartbeat_interval_ms_{1000};
  std::mutex mu_;
  std::condition_variable cv_;
  struct PendingReport {
    DiskId disk;
    std::string reason;
    std::function<void(Result<int64_t>)> done;
  };
  std::deque<PendingReport> reports_;  // guarded by mu_
  std::thread report_thread_;
  std::thread heartbeat_thread_;
  std::thread poll_thread_;
};

}  // namespace spindle::client
