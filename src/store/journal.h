// Journal: one shared write-ahead journal that makes appends to many streams durable with one
// fdatasync, instead of one fdatasync per stream file.
//
// An append writes its frame to the stream's segment file (page cache only) and then commit()s
// the same bytes here. One writer thread appends every record queued since its previous write to
// the current journal file with one pwrite and one fdatasync, then runs the callbacks. Segment
// files are synced only at checkpoints: when a journal file passes `rotate_bytes`, covers
// `max_dirty_files` segment files (each is held open until its checkpoint), or has records and is
// older than `rotate_interval`, the writer starts the next journal file and a checkpoint
// thread fdatasyncs every segment file the old one covers, then deletes it (or recycles it as
// the spare, below). Clean shutdown checkpoints everything, leaving no journal file behind.
//
// Files: `{dir}/{generation:020}.wal`, each a 32-byte header then records (journal_format.h).
//
// Recovery: replay() runs before any segment file is opened. It writes every intact record of
// every journal file, oldest first, into its segment file at its offset (only where the bytes
// differ), skips records whose segment file no longer exists (stream deleted), syncs what it
// wrote and removes the journal files. Within a file it stops at the first torn or corrupt
// record or sequence gap: a record is acknowledged only after everything before it in its file
// was synced, so nothing acknowledged lies past that point.
//
// Direct I/O (Options::direct_io, the default): where the filesystem allows, journal files are
// opened O_DIRECT | O_DSYNC and each batch is one aligned pwrite that returns once the batch is on
// stable storage — no page-cache copy, no writeback, no fdatasync call. A batch rarely fills a
// block, so the writer keeps the file's last partial block in its staging buffer and rewrites it
// whole, followed by the batch and zeros up to the next block boundary. The block's earlier bytes
// are rewritten unchanged (as page-cache writeback of a partly filled page also does), and replay
// reads the zero padding as the clean end of the file. Measured on this machine (ext4, virtio
// disk, one thread): 15–17 µs of CPU and ~60 µs per durable write, against 32–36 µs and ~80 µs for
// pwrite + fdatasync of the same bytes. If the Fs or filesystem has no direct I/O, or a direct
// file fails where a page-cache one works, this and every later file are written through the
// page cache and fdatasynced as below.
//
// Preallocated files (Options::preallocate, the server's default): a journal file that grows
// makes every durable write also write the file's size (on ext4 without a journal, a second
// synchronous device write per batch: the inode). So the checkpointer keeps one zero-filled,
// durable spare file, `{dir}/spare` (`rotate_bytes` long, rounded up to 4 KiB), and a
// rotation renames it to the new journal file's name, then writes the header, instead of
// creating an empty file: batches then overwrite blocks that exist, and each durable write is
// the data alone. Renaming first makes the name the writer's alone (the checkpointer may publish
// the next spare meanwhile); a crash right after it leaves a header-less file of zeros, which
// replay skips as it skips any file whose header was never synced.
// A retired file becomes the next spare once its checkpoint is done: renamed to
// `{dir}/spare.tmp`, zeroed over everything the writer wrote or tried to write (failed batches
// included; nothing of it can look like a record later), extended with zeros if it is shorter,
// then renamed to `spare`. When there is none to recycle (start-up, a file that grew longer
// than a spare, a spare that failed) a spare is written from scratch; open() makes the first one
// before it starts the first file (when no earlier run left one), so that file is a spare too.
// A spare is `rotate_bytes` long, at most kMaxSpareBytes (64 MiB): with larger files the rest
// grows as written. A spare is renamed to `spare` only once whole and durable; `spare.tmp` is deleted on open (and `spare` too when
// preallocation is off). After a failure to make one (e.g. no room on the disk), no spare is
// tried for `spare_retry_delay`, and journal files grow as written meanwhile.
// Costs: the journal directory holds up to one more spare-sized file; a journal file that
// started as a spare is that long on disk however little of it was used (an idle rotation too),
// and replay reads each whole; start-up writes a spare when there is none (~45 ms for 64 MiB); each journal byte is written twice (once as a zero), as PostgreSQL's zero-filled WAL
// segments are. Measured on this machine (ext4 without a journal, virtio disk, one thread,
// direct writes): 14.3 µs of CPU and 56.5 µs per durable write into a zero-filled file, against
// 17.5 µs and 66.4 µs when each write grows the file.
//
// Pipelining (page-cache files only; a direct write blocks the writer until it is durable):
// while up to `max_syncs_in_flight` fdatasyncs of the journal run (on sync threads),
// the writer keeps appending the next batches; ext4 merges concurrent flushes of a file. When a
// batch is written with no other sync running and nothing else queued, the writer syncs it itself
// instead of handing it to a sync thread. With one slot (the server's default) there are no sync
// threads: the writer writes a batch, syncs it, delivers, and takes everything queued meanwhile
// as the next batch — classic group commit, with no thread hand-off per batch.
//
// Guarantees (in addition to Committer's):
// - A callback runs only after an fdatasync of the journal file holding its record, started after
//   the record and every record submitted before it were written, succeeded — or, in direct
//   mode, after the O_DSYNC write holding its record succeeded and every earlier batch had. Callbacks run in
//   submission order on a sync thread or the writer thread.
// - A failed write or sync fails its batch and every later batch of the same journal file; the
//   writer then starts a new journal file before writing anything else (a sync that succeeds
//   after a failed one cannot vouch for the failed one's pages). While it cannot, commits fail
//   with that error.
// - A journal file is deleted only after every segment file it covers was synced; a failed
//   checkpoint keeps the journal file and is retried.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "store/committer.h"
#include "store/fs.h"
#include "store/status.h"

namespace ds {

class Journal : public Committer {
 public:
  struct Options {
    uint64_t rotate_bytes = 64ull << 20;
    std::chrono::milliseconds rotate_interval{30'000};
    int max_syncs_in_flight = 4;
    size_t max_dirty_files = 1024;  // checkpoint once a journal file covers this many files
    bool direct_io = true;          // O_DIRECT | O_DSYNC journal files where the Fs allows
    bool preallocate = false;       // start files from a zero-filled spare (see above)
    std::chrono::milliseconds spare_retry_delay{30'000};  // no spare attempts after a failed one
  };

  struct ReplayStats {
    uint64_t files = 0;
    uint64_t records = 0;         // intact records found
    uint64_t rewritten = 0;       // records whose bytes were missing or different on disk
    uint64_t skipped = 0;         // records of segment files that no longer exist
    uint64_t torn_bytes = 0;      // bytes past the last intact record (not counting zero
                                  // padding), all files
    uint64_t last_generation = 0;
  };

  // Replays and removes every journal file in `dir`. `root` is the directory record paths are
  // relative to (the data dir). Call before opening any segment file.
  static Status replay(Fs* fs, const std::string& dir, const std::string& root, ReplayStats* stats);

  // Deletes the spare files in `dir` (they hold no data): for a data dir whose journal is off.
  static Status discard_spares(Fs* fs, const std::string& dir);

  // Starts a journal in `dir` (created if missing) with generation `after_generation + 1`. The
  // directory must hold no journal files (replay() first).
  static Status open(Fs* fs, const std::string& dir, const std::string& root, Options options,
                     uint64_t after_generation, std::unique_ptr<Journal>* out);

  ~Journal() override;  // writes what is queued, checkpoints everything, removes the journal
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  void commit(const Write& w, Callback done) override;

  struct Stats {
    uint64_t records = 0;      // records made durable
    uint64_t record_bytes = 0;
    uint64_t syncs = 0;        // journal fdatasyncs (one per batch)
    uint64_t failed_batches = 0;
    uint64_t rotations = 0;
    uint64_t checkpoints = 0;  // journal files retired after syncing their segment files
    uint64_t checkpoint_failures = 0;
    bool direct_io = false;    // the current file is written with O_DIRECT | O_DSYNC
    uint64_t spares = 0;       // spare files made (zero-filled and ready)
    uint64_t spares_used = 0;  // rotations into a spare
    bool preallocated = false;  // the current file started as a spare
  };
  Stats stats() const;

 private:
  struct Retired {
    std::string path;
    std::unordered_map<File*, std::shared_ptr<File>> segments;
    uint64_t used = 0;  // bytes the writer wrote (or tried to) from its start
  };
  // One batch: the records (or barriers) taken by the writer at once, made durable by one sync.
  struct Ticket {
    uint64_t generation = 0;
    std::vector<Callback> callbacks;
    size_t records = 0;
    size_t bytes = 0;
    bool done = false;
    Status status;
  };
  struct SyncJob {
    std::shared_ptr<File> file;
    std::shared_ptr<Ticket> ticket;
  };

  Journal(Fs* fs, std::string dir, std::string root, Options options);
  void run_writer();
  void run_syncer();
  void run_checkpointer();
  // Writer thread only: starts the next journal file and hands the current one to the
  // checkpointer.
  Status rotate();
  // Writer thread only: opens `path` for the next file, direct if allowed, and writes its header
  // durably. With `from_spare` the spare is first renamed to `path` and used as it is (zeros, no
  // truncation); a failure is returned (the caller then starts a new file at `path`).
  Status start_file(const std::string& path, uint64_t generation, bool from_spare,
                    std::unique_ptr<File>* out, bool* direct);
  // Checkpointer thread only (and open() before the threads start): makes spare_tmp_path() — a
  // retired file renamed there (`recycled`; its first `used` bytes, rounded up to the block, are
  // zeroed) or a new file — zero-filled to spare_bytes() and durable, then renames it to
  // spare_path(). On failure removes spare_tmp_path().
  Status make_spare(bool recycled, uint64_t used);
  // With mu_ held: whether the checkpointer may try to make a spare now (not shortly after a
  // failure), and the bookkeeping after it tried.
  bool spares_allowed_locked() const;
  void spare_made_locked(const Status& s);
  std::string spare_path() const { return dir_ + "/spare"; }
  std::string spare_tmp_path() const { return dir_ + "/spare.tmp"; }
  // A spare's length: rotate_bytes rounded up to the block, at most kMaxSpareBytes.
  uint64_t spare_bytes() const;
  static constexpr uint64_t kMaxSpareBytes = 64ull << 20;
  // Writer thread only, direct mode: writes `bytes` at size_ through the staging buffer (the
  // caller advances size_).
  Status write_direct(std::string_view bytes);
  // With mu_ held: records the outcome of a ticket's sync (a sync thread's or the writer's own)
  // and delivers.
  void finish_sync_locked(std::unique_lock<std::mutex>& lk, const std::shared_ptr<Ticket>& ticket,
                          const Status& s);
  // With mu_ held (released while callbacks run): runs the callbacks of finished tickets in
  // order, one thread at a time.
  void deliver_locked(std::unique_lock<std::mutex>& lk);
  std::string file_path(uint64_t generation) const;

  Fs* fs_;
  const std::string dir_;
  const std::string root_;
  const Options options_;

  mutable std::mutex mu_;
  std::condition_variable cv_;       // writer: work queued (and a sync slot free) or stopping
  std::condition_variable sync_cv_;  // sync threads: a job queued or stopping
  std::condition_variable room_cv_;  // writer: the checkpointer freed a slot
  std::string pending_;              // encoded records not yet written
  std::vector<Callback> pending_callbacks_;
  std::vector<std::shared_ptr<File>> pending_files_;
  uint64_t next_seq_ = 1;
  bool stopping_ = false;
  Stats stats_;
  std::deque<std::shared_ptr<Ticket>> tickets_;  // written or barrier, in order, not delivered
  std::deque<SyncJob> sync_jobs_;
  int syncs_in_flight_ = 0;          // jobs queued or running
  bool syncers_stopping_ = false;
  uint64_t poisoned_generation_ = 0;  // a delivered ticket of this generation failed
  bool delivering_ = false;
  bool broken_ = false;  // a write or sync failed: rotate before writing again
  bool spare_ready_ = false;   // spare_path() is whole and durable
  bool want_spare_ = false;    // the checkpointer should make one from scratch
  std::chrono::steady_clock::time_point no_spares_until_;  // after a failed spare

  // Writer thread state.
  uint64_t generation_ = 0;
  std::shared_ptr<File> file_;
  uint64_t size_ = 0;
  uint64_t attempted_ = 0;  // end of the furthest write tried in file_, failed ones included
  bool direct_ = false;           // file_ is O_DIRECT | O_DSYNC (assigned under mu_)
  // A direct open or write failed: the page cache from now on (set by the writer, read by
  // make_spare on the checkpointer too).
  std::atomic<bool> direct_unusable_{false};
  bool preallocated_ = false;     // file_ started as a spare (assigned under mu_)
  // Direct mode: aligned staging buffer; its first size_ % kDirectIoAlign bytes are the file's
  // last partial block.
  std::unique_ptr<char, void (*)(void*)> block_{nullptr, std::free};
  size_t block_cap_ = 0;
  std::chrono::steady_clock::time_point opened_at_;
  std::unordered_map<File*, std::shared_ptr<File>> dirty_;  // segment files the file covers

  // Checkpointer.
  std::condition_variable ckpt_cv_;
  std::deque<Retired> retired_;  // guarded by mu_
  bool ckpt_stopping_ = false;
  std::unique_ptr<char, void (*)(void*)> zeros_{nullptr, std::free};  // make_spare()'s buffer

  std::thread writer_;
  std::vector<std::thread> syncers_;
  std::thread checkpointer_;
};

}  // namespace ds
