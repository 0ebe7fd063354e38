#include "mgmt/sqlite_store.h"

#include <sqlite3.h>

namespace spindle::mgmt {
namespace {

// Finalizes a prepared statement on every path.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr); }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() { return stmt_; }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

std::string Text(sqlite3_stmt* s, int col) {
  const unsigned char* p = sqlite3_column_text(s, col);
  return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p));
}

}  // namespace

Result<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return Error(Code::kIoError, "cannot open state database {}: {}", path, msg);
  }
  std::unique_ptr<SqliteStore> store(new SqliteStore(db));
  SP_RETURN_IF_ERROR(store->Exec("PRAGMA journal_mode=WAL"));
  SP_RETURN_IF_ERROR(store->Exec("PRAGMA synchronous=FULL"));
  SP_RETURN_IF_ERROR(
      store->Exec("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                  "CREATE TABLE IF NOT EXISTS entities(kind TEXT NOT NULL, key TEXT NOT NULL,"
                  " json TEXT NOT NULL, PRIMARY KEY(kind, key));"
                  "INSERT OR IGNORE INTO meta(key, value) VALUES('generation', '0');"));
  return store;
}

SqliteStore::~SqliteStore() {
  sqlite3_close(db_);
}

Status SqliteStore::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return Error(Code::kIoError, "sqlite: {}", msg);
  }
  return Status::Ok();
}

Result<int64_t> SqliteStore::ReadGeneration() {
  Stmt s(db_, "SELECT value FROM meta WHERE key='generation'");
  if (!s.ok() || sqlite3_step(s.get()) != SQLITE_ROW) {
    return Error(Code::kIoError, "sqlite: cannot read generation: {}", sqlite3_errmsg(db_));
  }
  std::string v = Text(s.get(), 0);
  char* end = nullptr;
  long long g = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || g < 0) {
    return Error(Code::kCorruption, "state database: bad generation '{}'", v);
  }
  return static_cast<int64_t>(g);
}

Result<StoreSnapshot> SqliteStore::Load() {
  StoreSnapshot snap;
  SP_ASSIGN_OR_RETURN(snap.generation, ReadGeneration());
  Stmt s(db_, "SELECT kind, key, json FROM entities");
  if (!s.ok()) return Error(Code::kIoError, "sqlite: {}", sqlite3_errmsg(db_));
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    snap.entities[{Text(s.get(), 0), Text(s.get(), 1)}] = Text(s.get(), 2);
  }
  if (rc != SQLITE_DONE) return Error(Code::kIoError, "sqlite: {}", sqlite3_errmsg(db_));
  return snap;
}

Status SqliteStore::WriteChanges(int64_t new_generation, const std::vector<EntityChange>& changes) {
  Stmt put(db_, "INSERT OR REPLACE INTO entities(kind, key, json) VALUES(?, ?, ?)");
  Stmt del(db_, "DELETE FROM entities WHERE kind=? AND key=?");
  Stmt gen(db_, "UPDATE meta SET value=? WHERE key='generation'");
  if (!put.ok() || !del.ok() || !gen.ok()) {
    return Error(Code::kIoError, "sqlite: {}", sqlite3_errmsg(db_));
  }
  for (const EntityChange& c : changes) {
    sqlite3_stmt* st = c.json ? put.get() : del.get();
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, c.key.first.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, c.key.second.c_str(), -1, SQLITE_TRANSIENT);
    if (c.json) sqlite3_bind_text(st, 3, c.json->c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_DONE) {
      return Error(Code::kIoError, "sqlite: {}", sqlite3_errmsg(db_));
    }
  }
  std::string g = std::to_string(new_generation);
  sqlite3_bind_text(gen.get(), 1, g.c_str(), -1, SQLITE_TRANSIENT);
  if (sqlite3_step(gen.get()) != SQLITE_DONE) {
    return Error(Code::kIoError, "sqlite: {}", sqlite3_errmsg(db_));
  }
  return Status::Ok();
}

Status SqliteStore::Commit(int64_t expected_generation, int64_t new_generation,
                           const std::vector<EntityChange>& changes) {
  if (new_generation <= expected_generation) {
    return Error(Code::kInternal, "commit must move the generation up");
  }
  SP_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  Result<int64_t> stored = ReadGeneration();
  Status st = stored.ok() ? Status::Ok() : stored.status();
  if (st.ok() && *stored != expected_generation) {
    st = Error(Code::kAborted, "state store generation is {}, expected {}", *stored,
               expected_generation);
  }
  if (st.ok()) st = WriteChanges(new_generation, changes);
  if (st.ok()) st = Exec("COMMIT");
  if (!st.ok()) {
    (void)Exec("ROLLBACK");
    return st;
  }
  return Status::Ok();
}

}  // namespace spindle::mgmt
