// GroupCommit: makes written frames durable with as few fdatasync calls as possible, and runs
// many of them at once.
//
// Callers write their frame (pwrite) and then submit() the file with a callback. A pool of sync
// workers takes, for one file at a time, every request queued for it so far (a "ticket") and
// fdatasyncs the file once for all of them. Different files are synced concurrently, and one file
// may have up to `max_syncs_per_file` syncs in flight (ext4/jbd2 merges concurrent flushes into
// one journal commit, so this multiplies the sync rate; measured in docs/architecture.md).
//
// Guarantees:
// - A callback runs only after an fdatasync of its file that started after submit() returned
//   succeeded, i.e. after every byte written to the file before submit() is durable.
// - Callbacks of one file run in submission order. If a sync of a file fails, that ticket's
//   callbacks and those of every later ticket of the file already in flight get the error (a
//   later sync's success cannot vouch for pages an earlier one failed to write).
// - Callbacks run on a worker thread: keep them short (post to an executor).
// - The destructor completes everything submitted before it.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "store/committer.h"
#include "store/fs.h"

namespace ds {

class GroupCommit : public Committer {
 public:

  struct Options {
    int workers = 16;
    int max_syncs_per_file = 4;
  };

  GroupCommit() : GroupCommit(Options{}) {}
  explicit GroupCommit(Options options);
  ~GroupCommit();
  GroupCommit(const GroupCommit&) = delete;
  GroupCommit& operator=(const GroupCommit&) = delete;

  void submit(std::shared_ptr<File> file, Callback done);
  // Committer: syncs w.file (the bytes are already in it).
  void commit(const Write& w, Callback done) override { submit(w.file, std::move(done)); }

  struct Stats {
    uint64_t batches = 0;   // tickets: groups of requests made durable by one sync
    uint64_t syncs = 0;     // fdatasync calls
    uint64_t requests = 0;  // callbacks completed
  };
  Stats stats() const;

 private:
  struct Ticket {
    std::vector<Callback> callbacks;
    bool done = false;
    Status status;
  };
  struct FileState {
    std::shared_ptr<File> file;
    std::vector<Callback> queued;
    std::deque<std::shared_ptr<Ticket>> tickets;  // in flight or done, in creation order
    int syncing = 0;
    bool poisoned = false;    // an earlier ticket failed; fail the rest in flight
    bool delivering = false;  // a worker is running this file's callbacks
    std::deque<std::pair<std::shared_ptr<Ticket>, Status>> outbox;
  };

  void run();
  // With mu_ held: a file with queued requests and a free sync slot, or nullptr.
  FileState* pick_locked();

  Options options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<File*, FileState> files_;
  std::deque<File*> ready_;  // files that had requests queued, in arrival order (may be stale)
  bool stopping_ = false;
  Stats stats_;
  std::vector<std::thread> threads_;
};

}  // namespace ds
