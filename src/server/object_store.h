// ObjectStore: the asynchronous face of one DiskStore for the service. It enforces the
// per-object version order of DESIGN §5 and runs every blocking disk call on a thread pool.
//
// Version order: a write with version v applies when v == current + 1, one write per object
// at a time; v <= current is acknowledged again without change; v > current + 1 waits
// (OBJECT_WAITING_FOR_VERSION) until the missing versions arrive or `version_wait` passes,
// then fails with kUnavailable. At most kMaxWaitingWritesPerObject writes wait per object.
//
// Threads: owned by one io_context thread; call every method from coroutines on it. The pool
// threads only run DiskStore calls (which are thread-safe).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include <asio.hpp>

#include "common/status.h"
#include "server/disk_store/jstore.h"

namespace spindle::server {

inline constexpr size_t kMaxWaitingWritesPerObject = 64;
inline constexpr std::chrono::milliseconds kDefaultVersionWait{5000};

struct ReadResult {
  uint64_t version = 0;  // of the top layer
  std::vector<uint8_t> data;
};

class ObjectStore {
 public:
  ObjectStore(asio::io_context& io, asio::thread_pool& pool, std::unique_ptr<jdisk::JStore> store,
              std::chrono::milliseconds version_wait = kDefaultVersionWait);

  // REQUIRES: data stays valid until the returned awaitable completes. Returns the object's
  // version after the write. Errors as DiskStore::Write, plus kUnavailable (waited too long
  // for an earlier version) and kResourceExhausted (too many writes waiting).
  asio::awaitable<Result<uint64_t>> Write(LayerId layer, ObjectIndex object, uint64_t version,
                                          uint32_t offset, std::span<const uint8_t> data);
  // Versioned and ordered exactly like Write (one queue per object for both); see
  // JStore::Trim for what it does to the blocks.
  asio::awaitable<Result<uint64_t>> Trim(LayerId layer, ObjectIndex object, uint64_t version,
                                         uint32_t offset, uint32_t length);
  // DiskStore::BlockStatus on the pool (it only reads memory, but takes slot locks that a
  // write holds during its I/O).
  asio::awaitable<Result<std::vector<bool>>> BlockStatus(std::vector<LayerId> chain,
                                                         ObjectIndex object, uint32_t offset,
                                                         uint32_t length);
  asio::awaitable<Result<ReadResult>> Read(std::vector<LayerId> chain, ObjectIndex object,
                                           uint32_t offset, uint32_t length);
  jdisk::ObjectInfo Info(LayerId layer, ObjectIndex object) const {
    return store_->Info(layer, object);
  }

  DiskId disk() const { return store_->superblock().disk; }
  // Thread-safe (for the heartbeat thread).
  const jdisk::JStore& store() const { return *store_; }
  jdisk::JStore& mutable_store() { return *store_; }  // tests: Checkpoint, corruption

 private:
  using Key = std::pair<uint64_t, uint32_t>;
  struct Queue {
    bool busy = false;                         // a write of this object is on the pool
    std::vector<asio::steady_timer*> waiters;  // writes waiting for their turn
  };
  // A write or a trim, run on the pool when its turn comes.
  struct Mutation {
    uint32_t offset = 0;
    std::span<const uint8_t> data;  // empty: a trim of trim_length bytes
    uint32_t trim_length = 0;
  };
  asio::awaitable<Result<uint64_t>> Ordered(LayerId layer, ObjectIndex object, uint64_t version,
                                            Mutation m);
  asio::awaitable<Result<uint64_t>> ApplyOnPool(LayerId layer, ObjectIndex object, uint64_t version,
                                                Mutation m);
  void WakeWaiters(const Key& key);
  void DropIfIdle(const Key& key);
  struct IdleDropper {
    ObjectStore* self;
    Key key;
    ~IdleDropper() { self->DropIfIdle(key); }
  };

  asio::io_context& io_;
  asio::thread_pool& pool_;
  std::unique_ptr<jdisk::JStore> store_;
  std::chrono::milliseconds version_wait_;
  std::map<Key, Queue> queues_;  // only objects with a write in progress or waiting
};

}  // namespace spindle::server
