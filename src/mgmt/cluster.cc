#include "mgmt/cluster.h"

#include <random>

#include "common/assert.h"
#include "common/log.h"

namespace spindle::mgmt {
namespace {

std::string RandomClusterId() {
  std::random_device rd;
  std::uniform_int_distribution<int64_t> dist(36 * 36, 36 * 36 * 36 - 1);
  return Base36(dist(rd)) + "." + Base36(dist(rd));
}

// Marks a server down: its disks leave at `generation` (the last one they were seen in).
void MarkServerDown(State& s, ServerRecord& server, int64_t generation) {
  server.up = false;
  for (uint32_t d : server.disks) {
    auto it = s.disks.find(d);
    if (it != s.disks.end() && it->second.generationLeft < 0) {
      it->second.generationLeft = generation;
      it->second.recovering = false;
    }
  }
}

}  // namespace

Result<std::unique_ptr<Cluster>> Cluster::Open(std::unique_ptr<StateStore> store,
                                               ClusterOptions options) {
  std::unique_ptr<Cluster> c(new Cluster(std::move(store), std::move(options)));
  SP_ASSIGN_OR_RETURN(StoreSnapshot snap, c->store_->Load());
  SP_ASSIGN_OR_RETURN(c->state_, FromSnapshot(snap));
  c->working_ = c->state_;
  std::string want = c->options_.cluster_id;
  if (want.empty()) want = c->state_.counters.clusterId;
  if (want.empty()) want = RandomClusterId();
  if (want != c->state_.counters.clusterId) {
    SP_RETURN_IF_ERROR(c->Mutate([&](State& s) {
                          s.counters.clusterId = want;
                          return Status::Ok();
                        }).status());
  }
  // Services that were up get one heartbeat timeout of grace after a mgmt restart.
  auto now = std::chrono::steady_clock::now();
  for (const auto& [id, s] : c->state_.servers) {
    if (s.up) c->runtime_.serverHeard[id] = now;
  }
  for (const auto& [id, cl] : c->state_.clients) {
    if (cl.up) c->runtime_.clientHeard[id] = now;
  }
  SP_LOG_INFO("mgmt state loaded: generation {}, cluster id {}, {} volumes", c->state_.generation,
              c->state_.counters.clusterId, c->state_.volumes.size());
  return c;
}

Cluster::~Cluster() {
  Stop();
}

Result<int64_t> Cluster::Mutate(const std::function<Status(State&)>& fn) {
  std::unique_lock<std::mutex> lock(mu_);
  State next = working_;
  SP_RETURN_IF_ERROR(fn(next));
  std::vector<EntityChange> changes = DiffStates(working_, next);
  if (!changes.empty()) {
    next.generation = working_.generation + 1;
    working_ = std::move(next);
    for (EntityChange& ch : changes) pending_[ch.key] = std::move(ch.json);
  }
  const int64_t mine = working_.generation;
  const uint64_t epoch = epoch_;
  for (;;) {
    if (epoch_ != epoch) {
      // A commit failed since: ours made it only if it was durable before that failure.
      if (mine <= durable_at_failure_[epoch]) return mine;
      return last_failure_;
    }
    if (state_.generation >= mine) return mine;
    if (!committing_) {
      CommitPendingLocked(lock);
    } else {
      durable_.wait(lock);
    }
  }
}

Result<int64_t> Cluster::MutateWithRuntime(const std::function<Status(State&, Runtime&)>& fn) {
  // Mutate runs fn with mu_ held, so runtime_ may be changed there.
  return Mutate([&](State& s) { return fn(s, runtime_); });
}

void Cluster::CommitPendingLocked(std::unique_lock<std::mutex>& lock) {
  committing_ = true;
  std::vector<EntityChange> changes;
  changes.reserve(pending_.size());
  for (auto& [key, json] : pending_) changes.push_back({key, std::move(json)});
  pending_.clear();
  State snapshot = working_;
  const int64_t from = state_.generation;
  lock.unlock();
  Status st = store_->Commit(from, snapshot.generation, changes);
  lock.lock();
  committing_ = false;
  if (st.ok()) {
    state_ = std::move(snapshot);
    changed_.notify_all();
    runtime_changed_.notify_all();
  } else {
    SP_LOG_ERROR("state commit of generations {}..{} failed: {}", from + 1, snapshot.generation,
                 st.ToString());
    durable_at_failure_[epoch_] = state_.generation;
    ++epoch_;
    last_failure_ = st;
    working_ = state_;
    pending_.clear();
  }
  durable_.notify_all();
}

void Cluster::UpdateRuntime(const std::function<void(Runtime&)>& fn) {
  std::lock_guard<std::mutex> lock(mu_);
  fn(runtime_);
  runtime_changed_.notify_all();
}

int64_t Cluster::generation() const {
  std::lock_guard<std::mutex> lock(mu_);
  return state_.generation;
}

int64_t Cluster::WaitForChange(int64_t since, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait_for(lock, timeout, [&] { return state_.generation > since || stopping_; });
  return state_.generation;
}

Status Cluster::CheckLiveness(std::chrono::steady_clock::time_point now) {
  auto stale = [&](const auto& heard, uint32_t id) {
    auto it = heard.find(id);
    return it == heard.end() || now - it->second > options_.heartbeat_timeout;
  };
  bool any = Read([&](const State& s, const Runtime& rt) {
    bool found = false;
    for (const auto& [id, sv] : s.servers) found |= sv.up && stale(rt.serverHeard, id);
    for (const auto& [id, c] : s.clients) found |= c.up && stale(rt.clientHeard, id);
    return found;
  });
  if (!any) return Status::Ok();
  // fn runs under the lock, so runtime_ may be read inside it.
  return Mutate([&](State& s) {
           int64_t gen = s.generation;
           for (auto& [id, server] : s.servers) {
             if (server.up && stale(runtime_.serverHeard, id)) {
               SP_LOG_WARN("server {} missed its heartbeats: down", id);
               MarkServerDown(s, server, gen);
             }
           }
           for (auto& [id, client] : s.clients) {
             if (client.up && stale(runtime_.clientHeard, id)) {
               SP_LOG_WARN("client {} missed its heartbeats: down", id);
               client.up = false;
             }
           }
           return Status::Ok();
         })
      .status();
}

void Cluster::AddPeriodicTask(std::chrono::milliseconds interval, std::function<void()> fn) {
  SP_ASSERT(!liveness_.joinable());
  periodic_.push_back({interval, std::move(fn)});
}

void Cluster::StartLivenessThread() {
  liveness_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      changed_.wait_for(lock, options_.liveness_check_interval);
      if (stopping_) break;
      lock.unlock();
      Status st = CheckLiveness(std::chrono::steady_clock::now());
      if (!st.ok()) SP_LOG_ERROR("liveness change failed: {}", st.ToString());
      for (PeriodicTask& t : periodic_) {
        auto now = std::chrono::steady_clock::now();
        if (now - t.last_run < t.interval) continue;
        t.last_run = now;
        t.fn();
      }
      lock.lock();
    }
  });
}

void Cluster::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
  runtime_changed_.notify_all();
  if (liveness_.joinable()) liveness_.join();
}

}  // namespace spindle::mgmt
