// Catalog: the SQLite (WAL) database of stream configuration and fork lineage.
//
// The catalog holds what is not in the logs: each stream's name, tenant, content type, TTL or
// expiry, fork source and fork point, and the soft-deleted flag. Every mutating call is one
// transaction committed with synchronous=FULL, so a call that returned ok survives a crash.
// Stream data, closure, producer and Stream-Seq state live in the log (see frame.h), never here.
// Thread-safe (one connection behind a mutex).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "store/status.h"

struct sqlite3;

namespace ds {

struct StreamRecord {
  int64_t id = 0;
  std::string tenant;
  std::string path;
  int kind = 0;  // 0 = Durable Streams stream, 1 = session
  std::string content_type;
  std::optional<uint64_t> ttl_seconds;
  std::optional<std::string> expires_at;  // RFC 3339, as given
  int64_t created_ms = 0;
  std::optional<int64_t> fork_source;     // id of the source stream
  uint64_t fork_offset = 0;               // first position owned by this stream
  std::string fork_request;               // "offset|sub" as requested, for idempotent re-create
  bool soft_deleted = false;
  // Created with initial data (or closed) that is not durable yet: the create was not
  // acknowledged, and a row still pending at start-up is dropped (StreamStore::open).
  bool pending = false;
  // Streams with a sliding TTL: the last read or write as last persisted (StreamStore writes it
  // about once a second, so a restart does not restart the TTL).
  std::optional<int64_t> last_access_ms;
};

class Catalog {
 public:
  ~Catalog();
  static Status open(const std::string& path, std::unique_ptr<Catalog>* out);

  // Inserts `r` and sets r->id. kConflict if (tenant, path) exists.
  Status insert_stream(StreamRecord* r);
  Status set_soft_deleted(int64_t id);
  Status clear_pending(int64_t id);
  // Sets last_access_ms of each (id, ms), in one transaction.
  Status set_last_access(const std::vector<std::pair<int64_t, int64_t>>& updates);
  Status delete_stream(int64_t id);
  // Calls `fn` for every stream row.
  Status for_each_stream(const std::function<void(const StreamRecord&)>& fn);

  // Runs arbitrary SQL (schema creation by other components, tests).
  Status exec(const std::string& sql);

  // Runs `body` as one write transaction (BEGIN IMMEDIATE … COMMIT, one WAL fsync) with the
  // catalog lock held throughout. Inside, use only the *_locked calls and db(). If `body` returns
  // an error or the commit fails, the transaction is rolled back: none of its writes is visible,
  // now or after a crash; a crash before the commit returned leaves all of them or none.
  Status transaction(const std::function<Status()>& body);
  // insert_stream / exec for use inside transaction() (the lock is already held).
  Status insert_stream_locked(StreamRecord* r);
  Status exec_locked(const std::string& sql);
  sqlite3* db() { return db_; }
  std::mutex& mutex() { return mu_; }

 private:
  explicit Catalog(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  std::mutex mu_;
};

}  // namespace ds
