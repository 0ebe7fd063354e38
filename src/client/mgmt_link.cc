#include "client/mgmt_link.h"

#include <future>

#include "common/log.h"

namespace spindle::client {

namespace {
constexpr int64_t kMinHeartbeatMs = 100;
constexpr int64_t kMaxHeartbeatMs = 60000;
constexpr std::chrono::milliseconds kHeartbeatHttpTimeout{5000};
constexpr std::chrono::milliseconds kApplyWaitStep{100};
// A failed replica is reported for this long (mgmt may be restarting) before the write fails.
constexpr std::chrono::milliseconds kReportDeadline{30000};
constexpr std::chrono::milliseconds kReportRetry{250};
}  // namespace

MgmtLink::MgmtLink(MgmtLinkOptions options, asio::io_context& io, ApplyFn apply)
    : options_(std::move(options)), io_(io), apply_(std::move(apply)) {
  start_time_ = std::chrono::duration_cast<std::chrono::seconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
}

MgmtLink::~MgmtLink() {
  RequestStop();
  Join();
}

void MgmtLink::Start() {
  heartbeat_thread_ = std::thread([this] { HeartbeatLoop(); });
  poll_thread_ = std::thread([this] { PollLoop(); });
  report_thread_ = std::thread([this] { ReportLoop(); });
}

void MgmtLink::ReportDiskFailed(DiskId disk, std::string reason,
                                std::function<void(Result<int64_t>)> done) {
  {
    std::lock_guard lock(mu_);
    if (!stop_) {
      reports_.push_back({disk, std::move(reason), std::move(done)});
      cv_.notify_all();
      return;
    }
  }
  done(Error(Code::kUnavailable, "client service stopping"));
}

void MgmtLink::ReportLoop() {
  net::ApiEndpoint ep = options_.api;
  ep.timeout = kHeartbeatHttpTimeout;
  net::ApiClient api(ep);
  const std::string path = fmt::format("/spindle/1/DiskFailed/{}", options_.id.value());
  while (true) {
    PendingReport r;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !reports_.empty(); });
      if (reports_.empty()) return;  // stopping with nothing left
      r = std::move(reports_.front());
      reports_.pop_front();
    }
    const auto deadline = std::chrono::steady_clock::now() + kReportDeadline;
    Result<int64_t> outcome = Error(Code::kUnavailable, "mgmt unreachable");
    while (!stopping()) {
      auto rep = api.Post(path, nlohmann::json{{"disk", r.disk.value()}, {"reason", r.reason}});
      if (rep.ok()) {
        outcome = rep.reply().generation;
        break;
      }
      outcome = rep.status();
      if (std::chrono::steady_clock::now() > deadline || !Sleep(kReportRetry)) break;
    }
    if (!outcome.ok()) {
      SP_LOG_ERROR("could not report disk {} failed to mgmt: {}", r.disk.value(),
                   outcome.status().ToString());
    }
    r.done(std::move(outcome));
  }
}

void MgmtLink::RequestStop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
}

void MgmtLink::Join() {
  if (heartbeat_thread_.joinable()) heartbeat_thread_.join();
  if (poll_thread_.joinable()) poll_thread_.join();
  if (report_thread_.joinable()) report_thread_.join();
}

bool MgmtLink::Sleep(std::chrono::milliseconds d) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, d, [this] { return stop_.load(); });
  return !stop_;
}

nlohmann::json MgmtLink::RegisterBody() const {
  return {{"type", "client"},
          {"id", options_.id.value()},
          {"nodeId", options_.id.value()},
          {"version", SPINDLE_VERSION},
          {"startTime", start_time_},
          {"appliedGeneration", applied_generation_.load()},
          {"openVolumes", InUseCopy()},
          {"nbd",
           {{"socket", options_.nbd_socket},
            {"host", options_.nbd_host},
            {"port", options_.nbd_port}}}};
}

void MgmtLink::SetInUse(std::vector<std::string> global_ids) {
  std::lock_guard lock(in_use_mu_);
  in_use_ = std::move(global_ids);
}

std::vector<std::string> MgmtLink::InUseCopy() const {
  std::lock_guard lock(in_use_mu_);
  return in_use_;
}

void MgmtLink::HeartbeatLoop() {
  net::ApiEndpoint ep = options_.api;
  ep.timeout = kHeartbeatHttpTimeout;
  net::ApiClient api(ep);
  bool failing = false;
  do {
    auto r = api.Post("/spindle/1/ServiceRegister", RegisterBody());
    if (!r.ok()) {
      if (!failing) SP_LOG_WARN("mgmt heartbeat failed: {}", r.status().ToString());
      failing = true;
      continue;
    }
    if (failing) SP_LOG_INFO("mgmt heartbeat ok again");
    failing = false;
    const auto& d = r.reply().data;
    if (d.is_object() && d.contains("heartbeatIntervalMs") &&
        d["heartbeatIntervalMs"].is_number_integer()) {
      heartbeat_interval_ms_ = std::clamp<int64_t>(d["heartbeatIntervalMs"].get<int64_t>(),
                                                   kMinHeartbeatMs, kMaxHeartbeatMs);
    }
  } while (Sleep(std::chrono::milliseconds(heartbeat_interval_ms_.load())));
}

Result<std::vector<std::string>> MgmtLink::ApplyOnIo(ClientState state) {
  auto done = std::make_shared<std::promise<std::vector<std::string>>>();
  auto future = done->get_future();
  asio::post(io_, [apply = apply_, state = std::move(state), done]() mutable {
    apply(std::move(state),
          [done](std::vector<std::string> paused) { done->set_value(std::move(paused)); });
  });
  // The io thread may be stopping and never run the handler: don't wait for it then.
  while (future.wait_for(kApplyWaitStep) != std::future_status::ready) {
    if (stopping()) return Error(Code::kUnavailable, "stopping");
  }
  return future.get();
}

void MgmtLink::ReportPaused(net::ApiClient& api, int64_t cut,
                            const std::vector<std::string>& volumes) {
  // One attempt: if it is lost, mgmt gives up on the cut and the writes go on.
  auto rep = api.Post(fmt::format("/spindle/1/ClientPaused/{}", options_.id.value()),
                      nlohmann::json{{"cut", cut}, {"volumes", volumes}});
  if (!rep.ok()) SP_LOG_WARN("mgmt ClientPaused (cut {}) failed: {}", cut, rep.status().ToString());
}

bool MgmtLink::PollOnce(net::ApiClient& api, int64_t& since) {
  const std::string path =
      fmt::format("/spindle/1/ClientState/{}?since={}&timeoutMs={}&cut={}", options_.id.value(),
                  since, options_.poll_timeout.count(), cut_);
  auto r = api.Get(path);
  if (!r.ok()) {
    if (!poll_failing_) SP_LOG_WARN("mgmt ClientState failed: {}", r.status().ToString());
    poll_failing_ = true;
    return false;
  }
  if (poll_failing_) SP_LOG_INFO("mgmt ClientState ok again");
  poll_failing_ = false;
  auto state = ParseClientState(r.reply().data);
  if (!state.ok()) {
    SP_LOG_ERROR("mgmt sent a bad ClientState: {}", state.status().ToString());
    return false;
  }
  const int64_t gen = state->generation;
  const int64_t cut = state->pause.cut;
  const bool same_gen = gen == since && since != 0;
  if (same_gen && cut == cut_) return true;  // the long-poll timed out: nothing new
  auto paused = ApplyOnIo(std::move(state).value());
  if (!paused.ok()) return false;
  cut_ = cut;
  if (cut != 0) ReportPaused(api, cut, *paused);
  if (same_gen) return true;  // only the cut changed
  applied_generation_ = gen;
  since = gen;
  auto rep = api.Post(fmt::format("/spindle/1/ClientReport/{}", options_.id.value()),
                      nlohmann::json{{"generation", gen}});
  if (!rep.ok()) SP_LOG_WARN("mgmt ClientReport failed: {}", rep.status().ToString());
  return true;
}

void MgmtLink::PollLoop() {
  net::ApiEndpoint ep = options_.api;
  ep.timeout = options_.poll_timeout + kHeartbeatHttpTimeout;
  net::ApiClient api(ep);
  int64_t since = 0;
  while (!stopping()) {
    if (!PollOnce(api, since) && !Sleep(options_.retry_delay)) break;
  }
}

}  // namespace spindle::client
