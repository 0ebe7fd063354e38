// ObjectStore: the asynchronous face of one DiskStore for the service. It enforces the
// per-object version order of DESIGN §5 and runs every blocking disk call on a thread pool.
//
// Version order: a write with version v applies when v == current + 1, one write per object
// at a time; v <= current is acknowledged again without change; v > current + 1 waits
// (OBJECT_WAITING_FOR_VERSION) until the missing versions arrive or `version_wait` passes,
// then fails with kUnavailable. At most kMaxWaitingWritesPerObject writes wait per object.
// Recovery: Export/Install take the same per-object turn as writes. With a gap handler set, a
// write that finds a gap (or the object outdated) calls it once per waiting episode, without
// holding the turn, and re-checks when it returns.
//
// Threads: owned by one io_context thread; call every method from coroutines on it. The pool
// threads only run DiskStore calls (which are thread-safe).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include <asio.hpp>

#include "common/bytes.h"
#include "common/status.h"
#include "server/disk_store/jstore.h"
#include "server/uring_reader.h"

namespace spindle::server {

inline constexpr size_t kMaxWaitingWritesPerObject = 64;
inline constexpr std::chrono::milliseconds kDefaultVersionWait{5000};

struct ReadResult {
  uint64_t version = 0;  // of the top layer
  IoBytes data;
  // crc32c of each 4 KiB of `data` when the read was whole blocks (checked against the
  // store's), else empty.
  std::vector<uint32_t> block_crcs;
  // Set instead of `data` when the bytes were read in place (JStore::ReadInPlace), which `keep`
  // keeps mapped.
  std::shared_ptr<const void> keep;
  std::span<const uint8_t> in_place;
  std::span<const uint8_t> bytes() const {
    return keep != nullptr ? in_place : std::span<const uint8_t>(data);
  }
};

class ObjectStore {
 public:
  ObjectStore(asio::io_context& io, asio::thread_pool& pool, std::unique_ptr<jdisk::JStore> store,
              std::chrono::milliseconds version_wait = kDefaultVersionWait);

  // REQUIRES: data (and crcs) stay valid until the returned awaitable completes. `crcs`: the
  // crc32c of each 4 KiB piece of data, already checked against it (the wire's), or empty.
  // Returns the object's version after the write. Errors as DiskStore::Write, plus kUnavailable
  // (waited too long for an earlier version) and kResourceExhausted (too many writes waiting).
  // `base`: the version the write follows (jdisk::kPreviousVersion: version - 1). A copy at
  // another version below `version` either missed writes (waits, then pulls) or holds writes
  // the line skipped (pulls): docs/decisions/0014.
  asio::awaitable<Result<uint64_t>> Write(LayerId layer, ObjectIndex object, uint64_t version,
                                          uint32_t offset, std::span<const uint8_t> data,
                                          std::span<const uint32_t> crcs = {},
                                          uint64_t base = jdisk::kPreviousVersion);
  // Versioned and ordered exactly like Write (one queue per object for both); see
  // JStore::Trim for what it does to the blocks.
  asio::awaitable<Result<uint64_t>> Trim(LayerId layer, ObjectIndex object, uint64_t version,
                                         uint32_t offset, uint32_t length,
                                         uint64_t base = jdisk::kPreviousVersion);
  // DiskStore::BlockStatus on the pool (it only reads memory, but takes slot locks that a
  // write holds during its I/O).
  asio::awaitable<Result<std::vector<bool>>> BlockStatus(std::vector<LayerId> chain,
                                                         ObjectIndex object, uint32_t offset,
                                                         uint32_t length);
  // Reads of a device go through `uring` when one is set and has room (on this thread, no
  // hand-off), else through the pool; reads of memory (tmpfs) are done here at once.
  // client_checks (proto::kReadClientChecks): a read in place is sent without checking the
  // stored crcs here (the client checks them); every other read is checked as usual. `chain`
  // must outlive the call (it is copied only for a read on the pool).
  asio::awaitable<Result<ReadResult>> Read(const std::vector<LayerId>& chain, ObjectIndex object,
                                           uint32_t offset, uint32_t length,
                                           bool client_checks = false);
  // Not owned; must outlive this store's reads. Set before use (nullptr: the pool reads).
  void set_uring(UringReader* uring) { uring_ = uring; }
  // JStore::Export in the object's turn (never interleaved with a write of it), on the pool.
  asio::awaitable<Result<jdisk::ObjectImage>> Export(LayerId layer, ObjectIndex object);
  // JStore::Install in the object's turn, on the pool; wakes writes waiting for a version.
  // An image older than the object's version in that turn (writes applied since the caller
  // chose it) is not installed: Ok without change (Info tells the version). Same version: a
  // repair, installed.
  asio::awaitable<Status> Install(LayerId layer, ObjectIndex object, jdisk::ObjectImage image);

  // Called when a write/trim of version v finds the object at current < v - 1 (or kOutdated)
  // and no write of it is in progress: wanted_version = v - 1, the version the object must
  // reach for that write to apply. Called once per waiting episode (until no write waits on
  // the object any more), never while holding the object's turn, so it may call Install. Its
  // error is logged; the writes then keep waiting as without a handler. Set once, before use.
  using GapHandler =
      std::function<asio::awaitable<Status>(LayerId, ObjectIndex, uint64_t wanted_version)>;
  // `grace`: how long a write that found the gap waits for the missing version first (usually
  // it is only late, reordered on the way); the wait ends as soon as the version arrives.
  void SetGapHandler(GapHandler handler,
                     std::chrono::milliseconds grace = std::chrono::milliseconds(0)) {
    gap_handler_ = std::move(handler);
    gap_grace_ = grace;
  }

  jdisk::ObjectInfo Info(LayerId layer, ObjectIndex object) const {
    return store_->Info(layer, object);
  }
  jdisk::ObjectInfo Head(LayerId layer, ObjectIndex object) const {
    return store_->Head(layer, object);
  }

  DiskId disk() const { return store_->superblock().disk; }
  // Thread-safe (for the heartbeat thread).
  const jdisk::JStore& store() const { return *store_; }
  jdisk::JStore& mutable_store() { return *store_; }  // tests: Checkpoint, corruption

 private:
  using Key = std::pair<uint64_t, uint32_t>;
  struct Queue {
    bool busy = false;         // a write/export/install of it is on the pool
    bool gap_running = false;  // the gap handler runs for it
    bool gap_handled = false;  // ... has run in this waiting episode
    struct Waiter {
      asio::steady_timer* timer;
      uint64_t version;  // of the waiting write; 0: an export or install
      uint64_t base;     // the version the waiting write follows
    };
    std::vector<Waiter> waiters;  // writes waiting for their turn
  };
  // A write or a trim, run on the pool when its turn comes.
  struct Mutation {
    uint32_t offset = 0;
    std::span<const uint8_t> data;  // empty: a trim of trim_length bytes
    uint32_t trim_length = 0;
    std::span<const uint32_t> crcs;  // of data's 4 KiB pieces, checked; may be empty
    uint64_t base = 0;               // the version it follows (resolved: never kPreviousVersion)
  };
  asio::awaitable<Result<uint64_t>> Ordered(LayerId layer, ObjectIndex object, uint64_t version,
                                            Mutation m);
  asio::awaitable<Result<uint64_t>> Apply(LayerId layer, ObjectIndex object, uint64_t version,
                                          Mutation m);
  // Waits until the object's queue is not busy, then marks it busy (the caller's turn).
  asio::awaitable<Status> TakeTurn(LayerId layer, ObjectIndex object);
  void EndTurn(const Key& key);
  // One wait on `key` until woken or `deadline` by a write of `version` (0: not a write).
  // REQUIRES: fewer than the maximum wait.
  asio::awaitable<void> WaitOnQueue(const Key& key, std::chrono::steady_clock::time_point deadline,
                                    uint64_t version, uint64_t base);
  asio::awaitable<void> RunGapHandler(LayerId layer, ObjectIndex object, uint64_t version);
  void WakeWaiters(const Key& key);
  void DropIfIdle(const Key& key);
  struct IdleDropper {
    ObjectStore* self;
    Key key;
    ~IdleDropper() { self->DropIfIdle(key); }
  };

  // Read through uring_: nullopt when it had no room (the caller reads through the pool).
  asio::awaitable<std::optional<Result<ReadResult>>> ReadThroughRing(
      const std::vector<LayerId>& chain, ObjectIndex object, uint32_t offset, uint32_t length);

  asio::io_context& io_;
  asio::thread_pool& pool_;
  UringReader* uring_ = nullptr;
  std::unique_ptr<jdisk::JStore> store_;
  std::chrono::milliseconds version_wait_;
  std::map<Key, Queue> queues_;  // only objects with a write in progress or waiting
  GapHandler gap_handler_;
  std::chrono::milliseconds gap_grace_{0};
};

}  // namespace spindle::server
