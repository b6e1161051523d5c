#include "store/catalog.h"

#include <sqlite3.h>

namespace ds {
namespace {

Status sql_error(sqlite3* db, const std::string& what) {
  return Status::io_error("catalog " + what + ": " + sqlite3_errmsg(db));
}

// RAII statement.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) { sqlite3_prepare_v2(db, sql, -1, &s_, nullptr); }
  ~Stmt() { sqlite3_finalize(s_); }
  sqlite3_stmt* get() { return s_; }
  bool ok() const { return s_ != nullptr; }

 private:
  sqlite3_stmt* s_ = nullptr;
};

void bind_text(sqlite3_stmt* s, int i, const std::string& v) {
  sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}

std::string column_text(sqlite3_stmt* s, int i) {
  const unsigned char* t = sqlite3_column_text(s, i);
  return t ? std::string(reinterpret_cast<const char*>(t), sqlite3_column_bytes(s, i)) : "";
}

}  // namespace

Catalog::~Catalog() { sqlite3_close(db_); }

Status Catalog::open(const std::string& path, std::unique_ptr<Catalog>* out) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    Status s = sql_error(db, "open " + path);
    sqlite3_close(db);
    return s;
  }
  sqlite3_busy_timeout(db, 5000);
  std::unique_ptr<Catalog> c(new Catalog(db));
  Status s = c->exec(
      "PRAGMA journal_mode=WAL;"
      "PRAGMA synchronous=FULL;"
      "CREATE TABLE IF NOT EXISTS streams ("
      "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
      "  tenant TEXT NOT NULL, path TEXT NOT NULL, kind INTEGER NOT NULL,"
      "  content_type TEXT NOT NULL, ttl_seconds INTEGER, expires_at TEXT,"
      "  created_ms INTEGER NOT NULL, fork_source INTEGER, fork_offset INTEGER NOT NULL,"
      "  fork_request TEXT NOT NULL, soft_deleted INTEGER NOT NULL DEFAULT 0,"
      "  UNIQUE(tenant, path));");
  if (!s) return s;
  // Catalogs made by earlier versions lack the newer columns: add them (existing rows are
  // complete, and their TTLs count from now).
  for (const auto& [name, decl] : {std::pair<const char*, const char*>{"pending", "INTEGER NOT NULL DEFAULT 0"},
                                   {"last_access_ms", "INTEGER"}}) {
    bool has = false;
    {
      Stmt st(db, "SELECT 1 FROM pragma_table_info('streams') WHERE name=?");
      if (!st.ok()) return sql_error(db, "prepare");
      sqlite3_bind_text(st.get(), 1, name, -1, SQLITE_STATIC);
      has = sqlite3_step(st.get()) == SQLITE_ROW;
    }
    if (has) continue;
    s = c->exec(std::string("ALTER TABLE streams ADD COLUMN ") + name + " " + decl + ";");
    // Another process (e.g. `keys create`) may have added it since the check.
    if (!s && s.message().find("duplicate column") == std::string::npos) return s;
  }
  *out = std::move(c);
  return Status::ok();
}

Status Catalog::exec(const std::string& sql) {
  std::lock_guard lk(mu_);
  return exec_locked(sql);
}

Status Catalog::exec_locked(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string m = err ? err : "unknown";
    sqlite3_free(err);
    return Status::io_error("catalog: " + m);
  }
  return Status::ok();
}

Status Catalog::transaction(const std::function<Status()>& body) {
  std::lock_guard lk(mu_);
  if (Status s = exec_locked("BEGIN IMMEDIATE"); !s) return s;
  Status s = body();
  if (s) s = exec_locked("COMMIT");
  // A failed COMMIT may leave the transaction open (e.g. SQLITE_BUSY); roll back what remains.
  if (!s && !sqlite3_get_autocommit(db_)) exec_locked("ROLLBACK");
  return s;
}

Status Catalog::insert_stream(StreamRecord* r) {
  std::lock_guard lk(mu_);
  return insert_stream_locked(r);
}

Status Catalog::insert_stream_locked(StreamRecord* r) {
  Stmt st(db_,
          "INSERT INTO streams (tenant, path, kind, content_type, ttl_seconds, expires_at,"
          " created_ms, fork_source, fork_offset, fork_request, soft_deleted, pending,"
          " last_access_ms) VALUES (?,?,?,?,?,?,?,?,?,?,0,?,?)");
  if (!st.ok()) return sql_error(db_, "prepare");
  sqlite3_stmt* s = st.get();
  bind_text(s, 1, r->tenant);
  bind_text(s, 2, r->path);
  sqlite3_bind_int(s, 3, r->kind);
  bind_text(s, 4, r->content_type);
  if (r->ttl_seconds) sqlite3_bind_int64(s, 5, static_cast<int64_t>(*r->ttl_seconds));
  if (r->expires_at) bind_text(s, 6, *r->expires_at);
  sqlite3_bind_int64(s, 7, r->created_ms);
  if (r->fork_source) sqlite3_bind_int64(s, 8, *r->fork_source);
  sqlite3_bind_int64(s, 9, static_cast<int64_t>(r->fork_offset));
  bind_text(s, 10, r->fork_request);
  sqlite3_bind_int(s, 11, r->pending ? 1 : 0);
  if (r->last_access_ms) sqlite3_bind_int64(s, 12, *r->last_access_ms);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_CONSTRAINT) return Status::conflict("stream exists");
  if (rc != SQLITE_DONE) return sql_error(db_, "insert");
  r->id = sqlite3_last_insert_rowid(db_);
  return Status::ok();
}

Status Catalog::set_soft_deleted(int64_t id) {
  std::lock_guard lk(mu_);
  Stmt st(db_, "UPDATE streams SET soft_deleted=1 WHERE id=?");
  sqlite3_bind_int64(st.get(), 1, id);
  if (sqlite3_step(st.get()) != SQLITE_DONE) return sql_error(db_, "update");
  return Status::ok();
}

Status Catalog::clear_pending(int64_t id) {
  std::lock_guard lk(mu_);
  Stmt st(db_, "UPDATE streams SET pending=0 WHERE id=?");
  sqlite3_bind_int64(st.get(), 1, id);
  if (sqlite3_step(st.get()) != SQLITE_DONE) return sql_error(db_, "update");
  return Status::ok();
}

Status Catalog::set_last_access(const std::vector<std::pair<int64_t, int64_t>>& updates) {
  if (updates.empty()) return Status::ok();
  return transaction([&]() -> Status {
    Stmt st(db_, "UPDATE streams SET last_access_ms=? WHERE id=?");
    if (!st.ok()) return sql_error(db_, "prepare");
    for (const auto& [id, ms] : updates) {
      sqlite3_reset(st.get());
      sqlite3_bind_int64(st.get(), 1, ms);
      sqlite3_bind_int64(st.get(), 2, id);
      if (sqlite3_step(st.get()) != SQLITE_DONE) return sql_error(db_, "update");
    }
    return Status::ok();
  });
}

Status Catalog::delete_stream(int64_t id) {
  std::lock_guard lk(mu_);
  Stmt st(db_, "DELETE FROM streams WHERE id=?");
  sqlite3_bind_int64(st.get(), 1, id);
  if (sqlite3_step(st.get()) != SQLITE_DONE) return sql_error(db_, "delete");
  return Status::ok();
}

Status Catalog::for_each_stream(const std::function<void(const StreamRecord&)>& fn) {
  std::lock_guard lk(mu_);
  Stmt st(db_,
          "SELECT id, tenant, path, kind, content_type, ttl_seconds, expires_at, created_ms,"
          " fork_source, fork_offset, fork_request, soft_deleted, pending, last_access_ms FROM streams"
          " ORDER BY id");
  if (!st.ok()) return sql_error(db_, "prepare");
  sqlite3_stmt* s = st.get();
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    StreamRecord r;
    r.id = sqlite3_column_int64(s, 0);
    r.tenant = column_text(s, 1);
    r.path = column_text(s, 2);
    r.kind = sqlite3_column_int(s, 3);
    r.content_type = column_text(s, 4);
    if (sqlite3_column_type(s, 5) != SQLITE_NULL) r.ttl_seconds = sqlite3_column_int64(s, 5);
    if (sqlite3_column_type(s, 6) != SQLITE_NULL) r.expires_at = column_text(s, 6);
    r.created_ms = sqlite3_column_int64(s, 7);
    if (sqlite3_column_type(s, 8) != SQLITE_NULL) r.fork_source = sqlite3_column_int64(s, 8);
    r.fork_offset = static_cast<uint64_t>(sqlite3_column_int64(s, 9));
    r.fork_request = column_text(s, 10);
    r.soft_deleted = sqlite3_column_int(s, 11) != 0;
    r.pending = sqlite3_column_int(s, 12) != 0;
    if (sqlite3_column_type(s, 13) != SQLITE_NULL) r.last_access_ms = sqlite3_column_int64(s, 13);
    fn(r);
  }
  if (rc != SQLITE_DONE) return sql_error(db_, "scan");
  return Status::ok();
}

}  // namespace ds
