// Cluster: the state spindle-mgmt owns, its store, its generation, and liveness. Thread-safe:
// every method takes the one mutex; HTTP handler threads and the liveness thread share it.
// A change is validated and applied to a copy of State, then the entities that differ are
// committed to the store in one transaction that moves the generation up by exactly one; only
// then does the copy replace the live state and waiters wake. A failed change leaves nothing
// changed, in memory or on disk.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

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

  // Runs fn on a copy of the state. If fn fails nothing changes and its Status is returned;
  // if the copy differs from the live state it is committed as generation+1. Returns the
  // generation after the change. fn must not block.
  Result<int64_t> Mutate(const std::function<Status(State&)>& fn);

  // Runs fn(state, runtime) under the lock and returns its result. fn must not block.
  template <typename F>
  auto Read(F&& fn) const {
    std::lock_guard<std::mutex> lock(mu_);
    return fn(static_cast<const State&>(state_), static_cast<const Runtime&>(runtime_));
  }
  // Runs fn(runtime) under the lock (for heartbeat times and usage counters).
  void UpdateRuntime(const std::function<void(Runtime&)>& fn);

  int64_t generation() const;
  // Blocks until the generation exceeds `since` or `timeout` passes; returns the generation.
  int64_t WaitForChange(int64_t since, std::chrono::milliseconds timeout);
  // Marks servers and clients not heard for heartbeat_timeout down (one change for all).
  Status CheckLiveness(std::chrono::steady_clock::time_point now);
  // Starts / stops the thread that calls CheckLiveness periodically.
  void StartLivenessThread();
  void Stop();

  const ClusterOptions& options() const { return options_; }

 private:
  Cluster(std::unique_ptr<StateStore> store, ClusterOptions options)
      : store_(std::move(store)), options_(std::move(options)) {}
  Result<int64_t> MutateLocked(const std::function<Status(State&)>& fn);

  std::unique_ptr<StateStore> store_;
  const ClusterOptions options_;
  mutable std::mutex mu_;
  std::condition_variable changed_;
  State state_;
  std::map<EntityKey, std::string> persisted_;  // state_ as stored
  Runtime runtime_;
  std::thread liveness_;
  bool stopping_ = false;
};

}  // namespace spindle::mgmt
