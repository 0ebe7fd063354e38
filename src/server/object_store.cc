#include "server/object_store.h"

#include <algorithm>
#include <optional>

#include "common/log.h"
#include "server/offload.h"

namespace spindle::server {
namespace {

// Jobs run on the disk pool. Plain structs rather than lambdas: GCC 12 mishandles lambda
// captures of coroutine parameters (double destruction of a moved vector).
struct WriteJob {
  jdisk::JStore* store;
  LayerId layer;
  ObjectIndex object;
  uint64_t version;
  uint32_t offset;
  std::span<const uint8_t> data;
  uint32_t trim_length;  // data empty: trim
  std::span<const uint32_t> crcs;
  uint64_t base;
  Result<uint64_t> operator()() const {
    if (data.empty()) return store->Trim(layer, object, version, offset, trim_length, base);
    return store->Write(layer, object, version, offset, data, crcs, base);
  }
  jdisk::JStore::AsyncStart Start(jdisk::JStore::WriteDone done) const {
    if (data.empty()) {
      return store->TrimAsync(layer, object, version, offset, trim_length, base, std::move(done));
    }
    return store->WriteAsync(layer, object, version, offset, data, crcs, base, std::move(done));
  }
};

// A write or trim to a device: built on this thread and made durable by the store's committer
// (JStore::WriteAsync: no thread hand-off on the way in, one batched hand-back per round), or,
// when it needs the device or a checkpoint first, run on the pool. The io_context is kept
// alive until the result has been delivered.
asio::awaitable<Result<uint64_t>> DeviceWrite(asio::thread_pool& pool, WriteJob job) {
  auto initiate = [&pool](auto handler, WriteJob work) {
    auto guard = asio::make_work_guard(asio::get_associated_executor(handler));
    using State = std::pair<decltype(handler), decltype(guard)>;
    auto state = std::make_shared<State>(std::move(handler), std::move(guard));
    auto deliver = [state](Result<uint64_t> result) {
      auto ex = state->second.get_executor();
      asio::post(ex, [state, result = std::move(result)]() mutable {
        std::move(state->first)(std::move(result));
      });
    };
    jdisk::JStore::AsyncStart start = work.Start(deliver);
    switch (start.kind) {
      case jdisk::JStore::AsyncStart::kQueued:
        return;
      case jdisk::JStore::AsyncStart::kDone:
        deliver(std::move(start.result));
        return;
      case jdisk::JStore::AsyncStart::kBlocking:
        asio::post(pool, [work, deliver] { deliver(work()); });
        return;
    }
  };
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(Result<uint64_t>)>(
      std::move(initiate), asio::use_awaitable, std::move(job));
}

struct BlockStatusJob {
  jdisk::JStore* store;
  std::vector<LayerId> chain;
  ObjectIndex object;
  uint32_t offset;
  uint32_t length;
  Result<std::vector<bool>> operator()() const {
    return store->BlockStatus(chain, object, offset, length);
  }
};

// A read into a buffer of its own (JStore::Read, blocking on a device).
Result<ReadResult> ReadCopied(jdisk::JStore& store, std::span<const LayerId> chain,
                              ObjectIndex object, uint32_t offset, uint32_t length) {
  ReadResult r;
  r.version = store.Head(chain.front(), object).version;
  r.data.resize(length);
  Status s = store.Read(chain, object, offset, r.data, &r.block_crcs);
  if (!s.ok()) return s;
  return r;
}

// The same on the pool: owns its chain.
struct ReadJob {
  jdisk::JStore* store;
  std::vector<LayerId> chain;
  ObjectIndex object;
  uint32_t offset;
  uint32_t length;
  Result<ReadResult> operator()() const {
    return ReadCopied(*store, chain, object, offset, length);
  }
};

struct ExportJob {
  jdisk::JStore* store;
  LayerId layer;
  ObjectIndex object;
  Result<jdisk::ObjectImage> operator()() const { return store->Export(layer, object); }
};

struct InstallJob {
  jdisk::JStore* store;
  LayerId layer;
  ObjectIndex object;
  jdisk::ObjectImage image;
  Status operator()() const { return store->Install(layer, object, image); }
};

Status TooManyWaiting(size_t n, LayerId layer, ObjectIndex object) {
  return Error(Code::kResourceExhausted, "{} writes already wait on layer {} object {}", n,
               layer.value(), object.value());
}

}  // namespace

ObjectStore::ObjectStore(asio::io_context& io, asio::thread_pool& pool,
                         std::unique_ptr<jdisk::JStore> store,
                         std::chrono::milliseconds version_wait)
    : io_(io), pool_(pool), store_(std::move(store)), version_wait_(version_wait) {}

asio::awaitable<Result<uint64_t>> ObjectStore::Write(LayerId layer, ObjectIndex object,
                                                     uint64_t version, uint32_t offset,
                                                     std::span<const uint8_t> data,
                                                     std::span<const uint32_t> crcs,
                                                     uint64_t base) {
  if (data.empty()) co_return Error(Code::kInvalidArgument, "empty write");
  store_->NoteClientIo();
  co_return co_await Ordered(layer, object, version, Mutation{offset, data, 0, crcs, base});
}

asio::awaitable<Result<uint64_t>> ObjectStore::Trim(LayerId layer, ObjectIndex object,
                                                    uint64_t version, uint32_t offset,
                                                    uint32_t length, uint64_t base) {
  if (length == 0) co_return Error(Code::kInvalidArgument, "empty trim");
  store_->NoteClientIo();
  co_return co_await Ordered(layer, object, version, Mutation{offset, {}, length, {}, base});
}

asio::awaitable<Result<std::vector<bool>>> ObjectStore::BlockStatus(std::vector<LayerId> chain,
                                                                    ObjectIndex object,
                                                                    uint32_t offset,
                                                                    uint32_t length) {
  BlockStatusJob job{store_.get(), {}, object, offset, length};
  job.chain.swap(chain);
  co_return co_await Offload(pool_, std::move(job));
}

asio::awaitable<Result<uint64_t>> ObjectStore::Ordered(LayerId layer, ObjectIndex object,
                                                       uint64_t version, Mutation m) {
  if (version == 0) co_return Error(Code::kInvalidArgument, "version 0 is never written");
  if (m.base == jdisk::kPreviousVersion) m.base = version - 1;
  if (m.base >= version) {
    co_return Error(Code::kInvalidArgument, "version {} cannot follow version {}", version, m.base);
  }
  const Key key{layer.value(), object.value()};
  IdleDropper dropper{this, key};  // forgets the queue entry on every way out
  auto deadline = std::chrono::steady_clock::now() + version_wait_;
  std::optional<std::chrono::steady_clock::time_point> grace_end;
  for (;;) {
    const jdisk::ObjectInfo info = store_->Head(layer, object);
    const bool outdated = info.state == jdisk::ObjectState::kOutdated;
    const uint64_t current = info.version;
    if (!outdated && version <= current) co_return current;
    Queue& q = queues_[key];
    // Not at the base: either writes are missing here (current < base) or this copy holds
    // versions the writer's line skipped (base < current): waiting may close the first, only a
    // pull closes the second. The gap handler does both.
    const bool gap = outdated || current != m.base;
    if (!gap && !q.busy) {
      q.busy = true;
      auto result = co_await Apply(layer, object, version, m);
      EndTurn(key);
      co_return result;
    }
    // A write in progress may close the gap: the handler runs only when none is. Nor when the
    // missing version itself waits here: woken by the end of the previous turn, it takes the
    // next one (a write that arrives between that wake-up and its resumption must not start
    // the handler, whose grace period it would then sit out).
    const bool next_waits =
        !outdated && std::any_of(q.waiters.begin(), q.waiters.end(), [&](const Queue::Waiter& w) {
          return w.version != 0 && w.base == current;
        });
    if (gap && !q.busy && !q.gap_running && gap_handler_ && !q.gap_handled && !next_waits) {
      // The grace runs from when this write first found the gap; a write that closes it wakes
      // this one (WakeWaiters) long before.
      const auto now = std::chrono::steady_clock::now();
      if (!grace_end) grace_end = now + gap_grace_;
      if (now >= *grace_end) {
        co_await RunGapHandler(layer, object, version);
        continue;
      }
    }
    if (outdated && !q.busy && !q.gap_running) {
      co_return Error(Code::kFailedPrecondition, "layer {} object {}: object outdated",
                      layer.value(), object.value());
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      // Work on the object (a write, an install, the gap handler) is bounded: wait it out.
      if (!q.busy && !q.gap_running) {
        co_return Error(Code::kUnavailable,
                        "layer {} object {}: waited {} ms for version {} (have {})", layer.value(),
                        object.value(), version_wait_.count(), m.base, current);
      }
      deadline = std::chrono::steady_clock::now() + version_wait_;
    }
    if (q.waiters.size() >= kMaxWaitingWritesPerObject) {
      co_return TooManyWaiting(q.waiters.size(), layer, object);
    }
    co_await WaitOnQueue(key, grace_end ? std::min(deadline, *grace_end) : deadline, version,
                         m.base);
  }
}

asio::awaitable<void> ObjectStore::WaitOnQueue(const Key& key,
                                               std::chrono::steady_clock::time_point deadline,
                                               uint64_t version, uint64_t base) {
  asio::steady_timer timer(io_, deadline);
  queues_[key].waiters.push_back(Queue::Waiter{&timer, version, base});
  asio::error_code ec;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  // queues_ may have changed while suspended: look the entry up again.
  auto& waiters = queues_[key].waiters;
  std::erase_if(waiters, [&](const Queue::Waiter& w) { return w.timer == &timer; });
}

asio::awaitable<void> ObjectStore::RunGapHandler(LayerId layer, ObjectIndex object,
                                                 uint64_t version) {
  const Key key{layer.value(), object.value()};
  Queue& q = queues_[key];
  q.gap_running = true;
  q.gap_handled = true;
  GapHandler handler = gap_handler_;  // a copy outlives the call even if the handler is reset
  asio::awaitable<Status> call = handler(layer, object, version - 1);
  Status s = co_await std::move(call);
  if (!s.ok()) {
    SP_LOG_WARN("disk {} layer {} object {}: recovering version {} failed: {}", disk().value(),
                layer.value(), object.value(), version - 1, s.ToString());
  }
  queues_[key].gap_running = false;
  WakeWaiters(key);
}

asio::awaitable<Status> ObjectStore::TakeTurn(LayerId layer, ObjectIndex object) {
  const Key key{layer.value(), object.value()};
  for (;;) {
    Queue& q = queues_[key];
    if (!q.busy) {
      q.busy = true;
      co_return Status::Ok();
    }
    if (q.waiters.size() >= kMaxWaitingWritesPerObject) {
      co_return TooManyWaiting(q.waiters.size(), layer, object);
    }
    // The holder's work on the pool is bounded; the timer only bounds one wait.
    co_await WaitOnQueue(key, std::chrono::steady_clock::now() + version_wait_, 0, 0);
  }
}

void ObjectStore::EndTurn(const Key& key) {
  queues_[key].busy = false;
  WakeWaiters(key);
}

asio::awaitable<Result<jdisk::ObjectImage>> ObjectStore::Export(LayerId layer, ObjectIndex object) {
  const Key key{layer.value(), object.value()};
  IdleDropper dropper{this, key};
  Status turn = co_await TakeTurn(layer, object);
  if (!turn.ok()) co_return turn;
  auto result = co_await Offload(pool_, ExportJob{store_.get(), layer, object});
  EndTurn(key);
  co_return result;
}

asio::awaitable<Status> ObjectStore::Install(LayerId layer, ObjectIndex object,
                                             jdisk::ObjectImage image) {
  const Key key{layer.value(), object.value()};
  IdleDropper dropper{this, key};
  Status turn = co_await TakeTurn(layer, object);
  if (!turn.ok()) co_return turn;
  // Checked in the turn: the caller chose the image earlier (recovery pulls it from a peer),
  // and writes may have taken the object past it since. Installing it then would silently
  // undo acknowledged writes; the object already holds everything the image has.
  const jdisk::ObjectInfo info = store_->Head(layer, object);
  if (info.state != jdisk::ObjectState::kOutdated && info.version > image.version) {
    EndTurn(key);
    SP_LOG_INFO("disk {}: layer {} object {}: image of version {} not installed, already at {}",
                disk().value(), layer.value(), object.value(), image.version, info.version);
    co_return Status::Ok();
  }
  InstallJob job{store_.get(), layer, object, {}};
  job.image = std::move(image);
  Status result = co_await Offload(pool_, std::move(job));
  EndTurn(key);
  co_return result;
}

asio::awaitable<Result<uint64_t>> ObjectStore::Apply(LayerId layer, ObjectIndex object,
                                                     uint64_t version, Mutation m) {
  const WriteJob job{store_.get(), layer,         object, version, m.offset,
                     m.data,       m.trim_length, m.crcs, m.base};
  // A store in memory never waits for a device: its write (the journal round included) is a
  // few copies, cheaper here than the two thread hand-offs of the pool (each a wake-up).
  if (store_->in_memory()) co_return job();
  co_return co_await DeviceWrite(pool_, job);
}

void ObjectStore::WakeWaiters(const Key& key) {
  auto it = queues_.find(key);
  if (it == queues_.end()) return;
  for (const Queue::Waiter& w : it->second.waiters) w.timer->cancel();
}

void ObjectStore::DropIfIdle(const Key& key) {
  auto it = queues_.find(key);
  if (it != queues_.end() && !it->second.busy && !it->second.gap_running &&
      it->second.waiters.empty()) {
    queues_.erase(it);
  }
}

asio::awaitable<Result<ReadResult>> ObjectStore::Read(const std::vector<LayerId>& chain,
                                                      ObjectIndex object, uint32_t offset,
                                                      uint32_t length, bool client_checks) {
  if (chain.empty() || chain.size() > jdisk::JStore::kMaxChainLength) {
    co_return Error(Code::kInvalidArgument, "chain of {} layers (1..{})", chain.size(),
                    jdisk::JStore::kMaxChainLength);
  }
  if (length == 0 || length > kObjectSize) {
    co_return Error(Code::kInvalidArgument, "read length {} (1..{})", length, kObjectSize);
  }
  store_->NoteClientIo();
  // A read of memory cannot block: done here, it saves two thread hand-offs (each a context
  // switch, the largest cost of a small read). A device read goes through the ring when there
  // is one, else to the pool.
  if (store_->in_memory()) {
    jdisk::JStore::InPlaceRead in_place;
    Status s = store_->ReadInPlace(chain, object, offset, length, &in_place, !client_checks);
    if (!s.ok()) co_return s;
    if (in_place.bytes.empty()) co_return ReadCopied(*store_, chain, object, offset, length);
    ReadResult r;
    r.version = store_->Head(chain.front(), object).version;
    r.block_crcs = std::move(in_place.block_crcs);
    r.keep = std::move(in_place.keep);
    r.in_place = in_place.bytes;
    co_return r;
  }
  if (uring_ != nullptr && uring_->ok() && store_->file_handle() >= 0) {
    auto r = co_await ReadThroughRing(chain, object, offset, length);
    if (r.has_value()) co_return std::move(*r);
  }
  // (A local: GCC 12 destroys some temporaries of a co_await expression twice.)
  ReadJob job{store_.get(), chain, object, offset, length};
  co_return co_await Offload(pool_, std::move(job));
}

asio::awaitable<std::optional<Result<ReadResult>>> ObjectStore::ReadThroughRing(
    const std::vector<LayerId>& chain, ObjectIndex object, uint32_t offset, uint32_t length) {
  ReadResult r;
  r.version = store_->Head(chain.front(), object).version;
  r.data.resize(length);
  Status s;
  for (int attempt = 0; attempt < jdisk::JStore::kReadAttempts; ++attempt) {
    jdisk::JStore::ReadPlan plan;
    s = store_->PrepareRead(chain, object, offset, r.data, /*scratch=*/false, &plan);
    if (!s.ok()) co_return Result<ReadResult>(s);
    if (!plan.reads.empty()) {
      const int fd = store_->file_handle();
      const std::span<const env::IoOp> ops(plan.reads);
      Status io = co_await uring_->Read(fd, ops);
      if (io.code() == Code::kResourceExhausted) co_return std::nullopt;
      if (!io.ok()) co_return Result<ReadResult>(io);
    }
    s = store_->FinishRead(plan, r.data, &r.block_crcs);
    if (s.code() != Code::kCorruption) break;  // else resolve again, as JStore::Read does
  }
  if (!s.ok()) co_return Result<ReadResult>(s);
  co_return Result<ReadResult>(std::move(r));
}

}  // namespace spindle::server
