// Indexer: the thread that keeps the SearchIndex in step with the session logs.
//
// It follows every session's log in batches: reads events past the session's indexed position,
// adds them to the tenant's index and records the new position in the same Xapian transaction.
// Appends are noticed through the streams' live waiters (no message hook is taken); sessions
// created or deleted elsewhere are noticed by a periodic rescan of the SessionStore and, faster,
// through session_removed() and searches (reached()).
//
// All the work (reading a chunk of a log, extracting the event text, generating and adding the
// Xapian documents, committing) happens on this one thread. A helper thread that prepared the next
// chunk while this one added was tried and removed: it cost CPU and gained no wall-clock time (see
// docs/search.md, Performance).
//
// Guarantees:
// - The index is derived: on start() it opens what is on disk, drops documents of sessions that
//   no longer exist (or whose id now names a newer session), and indexes every event past the
//   recorded positions, in the background — start() returns at once.
// - reached() answers from committed state only: when it returns true, a search sees every
//   event below the given tails.
// - After session_removed() the session's documents are gone within one batch; documents of a
//   later session with the same id are never removed by it.
// Thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/session_store.h"
#include "search/index.h"

namespace ds {

class Indexer {
 public:
  struct Options {
    size_t batch_events = 20000;       // most events added between two commits
    double batch_seconds = 0.25;       // longest time spent adding before a commit (a search
                                       // waiting for sessions gets a commit as soon as they are in)
    double rescan_seconds = 2;         // how often to look for new and deleted sessions
  };
  struct Target {
    std::shared_ptr<Session> session;
    uint64_t tail = 0;  // events below this position must be searchable
  };
  struct Stats {
    uint64_t indexed_events = 0;   // events added since start (committed)
    uint64_t commits = 0;
    uint64_t lag_events = 0;       // known events not yet indexed (as of the last rescan/batch)
    bool caught_up = false;        // the start-up catch-up finished
    double catch_up_seconds = 0;   // how long the start-up catch-up took
    double catch_up_cpu_seconds = 0;  // CPU time the indexer thread spent on it
    uint64_t catch_up_events = 0;  // events indexed by it
  };

  Indexer(SessionStore* sessions, SearchIndex* index, Options options);
  Indexer(SessionStore* sessions, SearchIndex* index) : Indexer(sessions, index, Options()) {}
  ~Indexer();

  // Starts the thread (which opens the index and catches up).
  void start();
  // Finishes the current batch, commits and joins the thread.
  void stop();

  // True when every target session is indexed (and committed) up to its tail. Otherwise asks the
  // thread to index those sessions first, and returns false; callers poll.
  bool reached(const std::string& tenant, const std::vector<Target>& targets);

  // The session (this incarnation: catalog id) was deleted: remove its documents.
  void session_removed(const std::string& tenant, const std::string& id, int64_t catalog_id);

  Stats stats();

 private:
  struct Entry {
    std::shared_ptr<Session> session;
    int64_t catalog_id = 0;
    uint64_t next = 0;        // indexed (maybe uncommitted), indexer thread only
    uint64_t published = 0;   // committed; guarded by mu_
    uint64_t waiter_id = 0;   // registered live waiter (0 = none); indexer thread only
    uint64_t known_tail = 0;  // tail seen last time we read; for lag
  };
  struct Removal {
    std::string tenant, id;
    int64_t catalog_id;
  };
  struct Wake;  // shared with live-waiter callbacks
  // One read chunk of a session's log.
  struct Chunk {
    uint64_t from = 0;
    bool ok = false;  // false: the read failed (deleted or unreadable)
    uint64_t tail = 0;
    size_t count = 0;                   // events in the chunk
    std::vector<std::string> messages;  // raw, turned into documents one by one when added
  };
  // Reads the entry's session from e.next.
  static Chunk read_chunk(const Entry& e);

  static std::string key(const std::string& tenant, const std::string& id) {
    return tenant + '\0' + id;
  }
  void run();
  void rescan(std::map<std::string, std::map<std::string, SessionMark>>* marks);
  // Registers (or re-registers) the session; drops stale documents of an older incarnation.
  Entry* track(const std::shared_ptr<Session>& s, const SessionMark* mark);
  void untrack(const std::string& k, bool remove_docs);
  // Adds a chunk of the entry's session; true when it reached the tail (or reading/adding failed).
  bool add_chunk(Chunk&& c, Entry& e, size_t* events);
  void apply_removals();
  void commit_and_publish(const std::set<std::string>& touched);
  void watch(const std::string& k, Entry& e);

  SessionStore* sessions_;
  SearchIndex* index_;
  Options options_;
  std::shared_ptr<Wake> wake_;
  std::thread thread_;

  // Indexer-thread state.
  std::map<std::string, Entry> entries_;

  // Shared state.
  std::mutex mu_;
  // What reached() checks: tenant -> session id -> committed position and catalog id. Hash maps
  // keyed by tenant, then id: a cross-session search checks every session of the tenant (2,000 in
  // the benchmark) once or twice per request, so this lookup is on the query path.
  struct Published {
    uint64_t next = 0;    // committed next position
    int64_t catalog_id = 0;
  };
  std::unordered_map<std::string, std::unordered_map<std::string, Published>> published_;
  void set_published(const Entry& e, uint64_t next);  // caller holds mu_
  std::vector<Removal> removals_;
  std::map<std::string, std::shared_ptr<Session>> kicked_;  // sessions a search waits for
  Stats stats_;
};

}  // namespace ds
