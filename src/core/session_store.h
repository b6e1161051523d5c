// SessionStore: agent sessions — a session record (the Anthropic session object's stored fields,
// kept in the catalog's `sessions` table) bound to a JSON-mode stream holding its events, plus
// state derived from the events (status, token usage, last activity) kept current in memory.
//
// Guarantees:
// - Session ids are unique per tenant; tenants never see each other's sessions.
// - Record changes (create, update, archive) are committed to the catalog before they return.
// - A session and its stream are created together: both catalog rows in one transaction, and the
//   stream's log directory made durable before that transaction commits. After a crash at any
//   point, a session exists with its stream or not at all (a stream row left without its session
//   by an interrupted delete is removed at open()).
// - Derived state reflects exactly the durable events (it is rebuilt from the log when a session
//   is first used after a restart).
// - Deleting a session removes its record and its log, and wakes its live readers.
// - A session created with `ttl_seconds` is deleted like that once it has gone that long
//   without a read or write of its events (a waiting live reader counts as one), within about a
//   second (start_expiry). Activity is kept in memory: after a restart TTLs count from the
//   restart, so a session never expires early.
// Thread-safe.
#pragma once

#include <boost/json/object.hpp>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/stream_store.h"
#include "store/catalog.h"

namespace ds {

// Derived from the session's events.
struct SessionSummary {
  std::string status = "idle";  // from the last session.status_* event
  uint64_t input_tokens = 0;    // sums over span.model_request_end model_usage
  uint64_t output_tokens = 0;
  uint64_t cache_read_input_tokens = 0;
  uint64_t cache_creation_input_tokens = 0;
  int64_t last_event_ms = 0;    // processed_at of the newest event
  uint64_t applied_next = 0;    // positions below this have been applied
};

class Session {
 public:
  Session(std::string tenant, std::string id, int64_t catalog_id, boost::json::object record,
          std::shared_ptr<Stream> stream)
      : tenant_(std::move(tenant)),
        id_(std::move(id)),
        catalog_id_(catalog_id),
        record_(std::move(record)),
        stream_(std::move(stream)) {}

  const std::string& tenant() const { return tenant_; }
  const std::string& id() const { return id_; }
  int64_t catalog_id() const { return catalog_id_; }
  const std::shared_ptr<Stream>& stream() const { return stream_; }

  // Copies, under the session's lock.
  boost::json::object record();
  SessionSummary summary();
  int64_t created_ms();

  // Applies one durable event to the summary (idempotent by position).
  void apply_event(uint64_t position, std::string_view event_json);

 private:
  friend class SessionStore;
  std::string tenant_;
  std::string id_;
  int64_t catalog_id_;
  std::mutex mu_;
  boost::json::object record_;
  SessionSummary summary_;
  std::shared_ptr<Stream> stream_;
};

struct SessionCreated {
  Status status;
  std::shared_ptr<Session> session;
};

class SessionStore {
 public:
  SessionStore(Catalog* catalog, StreamStore* streams);
  ~SessionStore();  // finishes the queued creations, then stops the commit thread

  // Loads every session record (their logs open lazily) and removes session streams whose
  // session row is gone (a delete interrupted between its two steps).
  Status open();

  // Creates a session with `record` (its fields as stored; created_at/updated_at are set here).
  // `done` runs once the session and its stream are durable (see the guarantees above), on the
  // store's commit thread: creations queued while a commit runs are committed together in the
  // next one (one catalog transaction and one filesystem journal commit for up to 256 of them).
  // kConflict if the id exists; a second create of an id still being created waits for the first
  // and then gets kConflict (or the first one's error).
  void create(const std::string& tenant, const std::string& id, boost::json::object record,
              std::function<void(SessionCreated)> done);
  // The same, blocking until done.
  Status create(const std::string& tenant, const std::string& id, boost::json::object record,
                std::shared_ptr<Session>* out);

  // Failure probe (tests): called inside the creation transaction at "between_rows" (stream row
  // inserted, session row not yet) and "before_commit" (log directories durable, rows not yet
  // committed); an error fails that creation (between_rows) or the whole batch (before_commit).
  // Set before the first create().
  void set_failure_probe(std::function<Status(std::string_view point)> probe) {
    probe_ = std::move(probe);
  }
  Status get(const std::string& tenant, const std::string& id, std::shared_ptr<Session>* out);
  // Replaces the stored record (after an update or archive); bumps updated_at.
  Status save(const std::shared_ptr<Session>& s, boost::json::object record);
  Status remove(const std::shared_ptr<Session>& s);
  // Every session of `tenant` (unordered).
  std::vector<std::shared_ptr<Session>> list(const std::string& tenant);
  // Every session of every tenant (unordered; used by the search indexer).
  std::vector<std::shared_ptr<Session>> list_all();
  // Number of sessions `tenant` holds.
  size_t count(const std::string& tenant);

  // Starts deleting sessions whose TTL ran out (checked every second); `expired` runs after each
  // such deletion (to drop its search documents). stop_expiry() joins the thread (idempotent;
  // the destructor calls it).
  void start_expiry(std::function<void(const std::shared_ptr<Session>&)> expired);
  void stop_expiry();

  // Stream path that holds a session's events (not reachable through /v1/stream).
  static std::string stream_path(const std::string& id) { return "\x01sessions/" + id; }

 private:
  static std::string key(const std::string& tenant, const std::string& id) {
    return tenant + '\0' + id;
  }
  Status attach_stream(const std::string& tenant, const std::string& id,
                       std::shared_ptr<Stream>* out);
  std::shared_ptr<Session> make_session(const std::string& tenant, const std::string& id,
                                        int64_t catalog_id, boost::json::object record,
                                        std::shared_ptr<Stream> stream);

  struct PendingCreate {
    std::string tenant;
    std::string id;
    std::string record_text;
    boost::json::object record;
    std::function<void(SessionCreated)> done;
    StreamRecord stream;  // filled in by the commit
    int64_t rowid = 0;
    Status status;
  };
  void commit_loop();
  void commit_batch(std::vector<PendingCreate>& batch);
  Status insert_session_row_locked(PendingCreate& c);
  Status remove_orphan_streams();

  Catalog* catalog_;
  StreamStore* streams_;
  std::function<Status(std::string_view)> probe_;
  std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<Session>> sessions_;
  std::unordered_map<std::string, size_t> per_tenant_;
  // Creations in flight (queued or committing), by key(): later creates of the same id wait here.
  std::unordered_map<std::string, std::vector<std::function<void(SessionCreated)>>> creating_;

  // Sessions with a TTL: key() -> milliseconds (guarded by mu_).
  std::unordered_map<std::string, int64_t> ttl_ms_;
  static std::optional<int64_t> ttl_of(const boost::json::object& record);
  void expiry_loop(std::function<void(const std::shared_ptr<Session>&)> expired);
  std::mutex expiry_mu_;
  std::condition_variable expiry_cv_;
  bool expiry_stop_ = false;
  std::thread expiry_;

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::vector<PendingCreate> queue_;
  bool stop_ = false;
  std::thread committer_;
};

}  // namespace ds
