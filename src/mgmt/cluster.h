// Cluster: the state spindle-mgmt owns, its store, its generation, and liveness. Thread-safe:
// every method takes the one mutex; HTTP handler threads and the liveness thread share it.
// A change is validated and applied to a copy of the latest (working) State and takes the next
// generation; the entities that differ are committed to the store. Changes that arrive while a
// commit is being made durable are committed together by the next one (group commit: one
// fsync for many changes, each still its own generation). A change returns only once durable;
// readers see only durable state. A failed change leaves nothing changed, in memory or on
// disk; a failed commit fails every change it carried and the ones queued behind it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "mgmt/state.h"
#include "mgmt/store.h"

namespace spindle::mgmt {

struct ClusterOptions {
  std::chrono::milliseconds heartbeat_timeout{5000};
  std::chrono::milliseconds liveness_check_interval{200};
  std::string cluster_id;    // SP_CLUSTER_ID "location.cluster"; empty: keep/derive one
  std::string cluster_name;  // SP_CLUSTER_NAME, accepted by RemoteCommand/<name>/
  uint32_t node_id = 0;      // SP_OURID of the node mgmt runs on
};

class Cluster {
 public:
  // Loads the state from `store`; on the first start fixes the cluster id (one change).
  static Result<std::unique_ptr<Cluster>> Open(std::unique_ptr<StateStore> store,
                                               ClusterOptions options);
  ~Cluster();

  // Runs fn on a copy of the working state. If fn fails nothing changes and its Status is
  // returned; if the copy differs it becomes the next generation. Returns that generation once
  // it is durable. fn must not block.
  Result<int64_t> Mutate(const std::function<Status(State&)>& fn);
  // As Mutate, but fn may also change the runtime, under the same lock and so atomically with
  // the state change it makes. Runtime changes stand even when fn fails or the commit does.
  Result<int64_t> MutateWithRuntime(const std::function<Status(State&, Runtime&)>& fn);

  // Runs fn(state, runtime) under the lock and returns its result. fn must not block.
  template <typename F>
  auto Read(F&& fn) const {
    std::lock_guard<std::mutex> lock(mu_);
    return fn(static_cast<const State&>(state_), static_cast<const Runtime&>(runtime_));
  }
  // Runs fn(runtime) under the lock (for heartbeat times and usage counters); wakes WaitUntil.
  void UpdateRuntime(const std::function<void(Runtime&)>& fn);
  // Blocks until pred(state, runtime) holds (true), `timeout` passes or the cluster stops
  // (false). pred runs under the lock on every runtime or state change.
  template <typename Pred>
  bool WaitUntil(Pred&& pred, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    runtime_changed_.wait_for(lock, timeout, [&] { return stopping_ || pred(state_, runtime_); });
    return !stopping_ && pred(state_, runtime_);
  }

  int64_t generation() const;
  // Blocks until the generation exceeds `since` or `timeout` passes; returns the generation.
  int64_t WaitForChange(int64_t since, std::chrono::milliseconds timeout);
  // Marks servers and clients not heard for heartbeat_timeout down (one change for all).
  Status CheckLiveness(std::chrono::steady_clock::time_point now);
  // Adds a task the liveness thread runs (after CheckLiveness, without the lock held) at most
  // once per `interval`. Only before StartLivenessThread.
  void AddPeriodicTask(std::chrono::milliseconds interval, std::function<void()> fn);
  // Starts / stops the thread that calls CheckLiveness and the periodic tasks.
  void StartLivenessThread();
  void Stop();

  const ClusterOptions& options() const { return options_; }

 private:
  Cluster(std::unique_ptr<StateStore> store, ClusterOptions options)
      : store_(std::move(store)), options_(std::move(options)) {}
  // Commits everything pending as one store transaction; called with the lock held, releases
  // it around the store call.
  void CommitPendingLocked(std::unique_lock<std::mutex>& lock);

  std::unique_ptr<StateStore> store_;
  const ClusterOptions options_;
  mutable std::mutex mu_;
  std::condition_variable changed_;          // durable generation moved
  std::condition_variable durable_;          // a commit finished (well or not)
  std::condition_variable runtime_changed_;  // runtime or durable state changed
  State state_;                              // durable; what readers see
  State working_;                            // state_ plus the changes not yet durable
  std::map<EntityKey, std::optional<std::string>> pending_;  // merged, not yet committed
  bool committing_ = false;
  uint64_t epoch_ = 0;                              // bumped by every failed commit
  std::map<uint64_t, int64_t> durable_at_failure_;  // epoch → durable generation when it failed
  Status last_failure_ = Status::Ok();
  Runtime runtime_;
  std::thread liveness_;
  bool stopping_ = false;
  struct PeriodicTask {
    std::chrono::milliseconds interval;
    std::function<void()> fn;
    std::chrono::steady_clock::time_point last_run{};
  };
  std::vector<PeriodicTask> periodic_;  // fixed once the liveness thread runs; used only by it
};

}  // namespace spindle::mgmt
