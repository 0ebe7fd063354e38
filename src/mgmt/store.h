// The state store: where spindle-mgmt keeps the cluster configuration (DESIGN.md §6). A store
// holds entities (kind, key) → JSON text plus the generation counter. Every change is one
// atomic Commit that writes the changed entities and moves the generation from G to G+1; a
// Commit whose expected generation is not the stored one fails with kAborted (this is the
// compare-and-set the etcd implementation will do with a Txn). Implementations: SqliteStore.
// Not thread-safe: the owner (Cluster) serializes calls.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace spindle::mgmt {

using EntityKey = std::pair<std::string, std::string>;  // (kind, key)

struct StoreSnapshot {
  int64_t generation = 0;
  std::map<EntityKey, std::string> entities;
};

struct EntityChange {
  EntityKey key;
  std::optional<std::string> json;  // nullopt: delete
};

class StateStore {
 public:
  virtual ~StateStore() = default;
  // Reads everything (once, at start).
  virtual Result<StoreSnapshot> Load() = 0;
  // Atomically applies `changes` and sets the generation to new_generation (> expected). A
  // group commit passes the merged changes of new_generation - expected_generation changes.
  // Errors: kAborted when the stored generation is not expected_generation; kIoError when the
  // transaction could not be made durable (nothing changed then).
  virtual Status Commit(int64_t expected_generation, int64_t new_generation,
                        const std::vector<EntityChange>& changes) = 0;
};

}  // namespace spindle::mgmt
