// SqliteStore: the embedded StateStore, one SQLite file in WAL mode with synchronous=FULL, so
// a committed change survives a crash or power loss. Schema: meta(key, value) holds
// "generation"; entities(kind, key, json). Owned by one thread at a time (the Cluster lock).
#pragma once

#include <memory>
#include <string>

#include "mgmt/store.h"

struct sqlite3;

namespace spindle::mgmt {

class SqliteStore : public StateStore {
 public:
  // Opens or creates the database file (the directory must exist).
  static Result<std::unique_ptr<SqliteStore>> Open(const std::string& path);
  ~SqliteStore() override;

  Result<StoreSnapshot> Load() override;
  Status Commit(int64_t expected_generation, int64_t new_generation,
                const std::vector<EntityChange>& changes) override;

 private:
  explicit SqliteStore(sqlite3* db) : db_(db) {}
  Status Exec(const char* sql);
  Result<int64_t> ReadGeneration();
  Status WriteChanges(int64_t new_generation, const std::vector<EntityChange>& changes);

  sqlite3* db_;
};

}  // namespace spindle::mgmt
