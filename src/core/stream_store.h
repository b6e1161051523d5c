// StreamStore: the registry of all streams — names to Stream objects, creation (including forks),
// deletion (soft and cascading), expiry, and start-up recovery from the catalog and the logs.
//
// Guarantees:
// - A create is acknowledged only once its catalog row is committed and any initial data is
//   durable; a delete only once the catalog no longer names the stream.
// - A stream created with initial data (its body, a fork's inherited part of a message, or
//   Stream-Closed) appears whole or not at all: it is visible to find() and to other creates only
//   once that data is durable, and its catalog row stays marked pending until then. A create of
//   the same path meanwhile waits for the first to finish, then is decided against its result;
//   a row still pending at start-up (the server stopped in between: not acknowledged) is
//   dropped with its log.
// - Names are scoped by tenant: (tenant, path) pairs never collide across tenants.
// - Expired streams (TTL or Expires-At passed) are deleted when next looked up, or by the
//   sweeper within about a second (kExpiryPassMs) if nobody looks, and then behave as absent (or
//   as soft-deleted when forks still need their data).
// - A sliding TTL survives a clean restart: the sweeper persists each such stream's last access
//   time when it changed (once per pass, one catalog transaction), stop() writes the rest and
//   marks the stop clean, and the next open() resumes every TTL from it. After a crash the
//   persisted times may be old, so TTLs count from the restart (never earlier than allowed).
// - A stream with a live reader waiting (long-poll, SSE) does not expire by TTL (Expires-At
//   still applies).
// Thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <thread>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "core/stream.h"
#include "store/catalog.h"
#include "store/committer.h"

namespace ds {

struct CreateSpec {
  std::string tenant;
  std::string path;
  int kind = 0;
  std::string content_type;
  std::optional<uint64_t> ttl_seconds;
  std::optional<std::string> expires_at;
  bool closed = false;
  std::vector<std::string> messages;  // initial content
  // Fork
  std::optional<std::string> forked_from;
  std::optional<uint64_t> fork_offset;  // default: the source's tail
  uint64_t fork_sub_offset = 0;
  bool json_mode = false;  // how sub-offsets are counted: messages (json) or bytes
};

struct CreateOutcome {
  Status status;        // kNotFound (fork source), kConflict, kInvalid, kGone, I/O errors
  bool created = false;  // false: an identical stream existed (idempotent 200)
  std::shared_ptr<Stream> stream;
  uint64_t next_position = 0;
  bool closed = false;
};

class StreamStore {
 public:
  struct Options {
    std::string data_dir;
    Fs* fs = nullptr;
    StreamLog::Options log;
    // Most stream logs kept open at once; beyond it the least recently used idle ones are closed
    // (and reopened on their next use). 0 = no limit.
    int64_t max_open_logs = 0;
  };
  StreamStore(Options options, Catalog* catalog, Committer* commit);
  ~StreamStore();  // stop(), and stops the log sweeper

  // Finishes the creates whose initial data is durable (their callbacks run) and answers creates
  // queued behind them with kUnavailable. Call after the committer has delivered everything
  // (its callbacks finish creates here) and while their callbacks' executors still exist; no
  // create may start afterwards. Idempotent.
  void stop();

  // Starts deleting expired streams in the background (expiry_pass). Call once start-up work
  // that creates streams from elsewhere (the S3 restore) is done: until then only lookups expire.
  void start_expiry() { expiry_started_ = true; }

  // Loads every stream named in the catalog (logs open lazily), finishes interrupted deletions and
  // removes log directories the catalog does not name.
  Status open();

  // kNotFound when absent or expired, kGone when soft-deleted.
  Status find(const std::string& tenant, const std::string& path, std::shared_ptr<Stream>* out);

  void create(CreateSpec spec, std::function<void(CreateOutcome)> done);

  // Batched creation for callers that insert the stream rows in their own catalog transaction
  // (session creation): create_log_dirs() creates the log directory and first, empty segment of
  // each stream in `ids` and makes them durable before returning ok (all are created first, then
  // each directory and streams/ are fsynced, so one filesystem journal commit covers the batch);
  // on failure it removes what it created. remove_log_dirs() undoes it when the transaction is
  // rolled back. Once the rows are committed, adopt() registers each stream (its log opens
  // lazily, on first use).
  Status create_log_dirs(const std::vector<int64_t>& ids);
  void remove_log_dirs(const std::vector<int64_t>& ids);
  std::shared_ptr<Stream> adopt(const StreamRecord& r);

  // kNotFound when absent; kGone when already soft-deleted.
  Status remove(const std::string& tenant, const std::string& path);

  size_t size();
  // The tenant's Durable Streams streams (not sessions) that are not soft-deleted, by path.
  // Walks every stream: for rare callers (subscription creation and start-up).
  std::vector<std::pair<std::string, std::shared_ptr<Stream>>> list(const std::string& tenant);
  // Wakes every live reader of every stream (shutdown).
  void wake_all();

  // Closes the least recently used idle logs until at most `target` are open. Returns how many
  // were closed. Called by the sweeper thread; public for tests.
  size_t close_idle_logs(int64_t target);

 private:
  static std::string key(const std::string& tenant, const std::string& path) {
    return tenant + '\0' + path;
  }
  std::string stream_dir(int64_t id) const;
  std::shared_ptr<Stream> make_stream(const StreamRecord& r, std::shared_ptr<Stream> source);
  // With mu_ held: deletes `s` for good, cascading to soft-deleted sources without forks.
  void hard_delete_locked(std::shared_ptr<Stream> s);  // by value: callers pass map entries
  // With mu_ held: applies expiry to the entry at `k`; true if it is now absent.
  bool expire_locked(const std::string& k, std::shared_ptr<Stream> s);

  Options options_;
  Catalog* catalog_;
  Committer* commit_;
  std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<Stream>> streams_;
  std::unordered_map<int64_t, std::shared_ptr<Stream>> by_id_;
  // Paths whose create is writing its initial data, with the creates of the same path that
  // arrived meanwhile (run again once it has finished).
  std::unordered_map<std::string, std::vector<std::function<void()>>> creating_;

  // The last step of a create with initial data, once the append has finished: clears the
  // pending mark (a catalog commit, so not on the committer's thread: on finisher_), then
  // publishes the stream or undoes the create.
  void finish_create(std::string k, std::shared_ptr<Stream> stream, AppendResult r,
                     CreateOutcome out, std::function<void(CreateOutcome)> done);
  void post_finish(std::function<void()> task);
  bool stopping();
  void run_finisher();
  std::mutex finish_mu_;
  std::condition_variable finish_cv_;
  std::deque<std::function<void()>> finish_tasks_;
  bool finish_stop_ = false;
  std::thread finisher_;

  static constexpr int64_t kExpiryPassMs = 1000;
  // Registers a loaded or created stream under its name (with mu_ held).
  void publish_locked(const std::string& k, const std::shared_ptr<Stream>& s);
  // Deletes expired streams (when `expire`) and persists changed sliding-TTL access times.
  bool expiry_pass(bool expire);  // false if the access times could not be written
  bool stopped_ = false;
  std::atomic<bool> expiry_started_{false};
  bool clean_start_ = false;  // open() found the marker of a clean stop (kCleanStopFile)
  std::unordered_set<int64_t> expiring_;                // ids of streams with a TTL or Expires-At
  std::unordered_map<int64_t, int64_t> persisted_access_;  // id -> last_access_ms in the catalog

  void sweep();
  std::mutex sweep_mu_;
  std::condition_variable sweep_cv_;
  bool sweep_stop_ = false;
  std::thread sweeper_;
};

}  // namespace ds
