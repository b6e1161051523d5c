#include "store/journal.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "store/journal_format.h"

namespace ds {

Journal::Journal(Fs* fs, std::string dir, std::string root, Options options)
    : fs_(fs), dir_(std::move(dir)), root_(std::move(root)), options_(options) {}

std::string Journal::file_path(uint64_t generation) const {
  char name[32];
  std::snprintf(name, sizeof name, "/%020llu.wal", static_cast<unsigned long long>(generation));
  return dir_ + name;
}

Status Journal::discard_spares(Fs* fs, const std::string& dir) {
  if (Status s = fs->remove_all(dir + "/spare.tmp"); !s) return s;
  return fs->remove_all(dir + "/spare");
}

Status Journal::open(Fs* fs, const std::string& dir, const std::string& root, Options options,
                     uint64_t after_generation, std::unique_ptr<Journal>* out) {
  if (Status s = fs->create_dirs(dir); !s) return s;
  if (options.max_syncs_in_flight < 1) options.max_syncs_in_flight = 1;
  std::unique_ptr<Journal> j(new Journal(fs, dir, root, options));
  j->generation_ = after_generation;
  if (!options.preallocate) {
    if (Status s = discard_spares(fs, dir); !s) return s;  // an earlier run's: only disk space
  } else if (Status s = fs->remove_all(j->spare_tmp_path()); !s) {
    return s;  // a spare is renamed into place only once whole: a `.tmp` one was cut short
  } else {
    // The first file starts as a spare too: one from an earlier run, else one made now (64 MiB
    // of zeros at most: ~45 ms here). The next is made in the background.
    // One of another length (an earlier --journal-file-bytes) is replaced.
    std::unique_ptr<File> f;
    uint64_t size = 0;
    j->spare_ready_ = fs->exists(j->spare_path()) && fs->open(j->spare_path(), &f) &&
                      f->size(&size) && size == j->spare_bytes();
    f.reset();
    if (!j->spare_ready_) j->spare_made_locked(j->make_spare(false, 0));
    j->want_spare_ = true;
  }
  if (Status s = j->rotate(); !s) return s;
  j->writer_ = std::thread([p = j.get()] { p->run_writer(); });
  // With one sync slot the writer syncs every batch itself (run_writer): no sync threads.
  int syncers = options.max_syncs_in_flight == 1 ? 0 : options.max_syncs_in_flight;
  for (int i = 0; i < syncers; ++i) {
    j->syncers_.emplace_back([p = j.get()] { p->run_syncer(); });
  }
  j->checkpointer_ = std::thread([p = j.get()] { p->run_checkpointer(); });
  *out = std::move(j);
  return Status::ok();
}

Journal::~Journal() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  room_cv_.notify_all();
  if (!writer_.joinable()) return;  // open() failed before starting the threads
  writer_.join();  // has written everything queued
  {
    std::lock_guard lk(mu_);
    syncers_stopping_ = true;
  }
  sync_cv_.notify_all();
  for (auto& t : syncers_) t.join();  // have synced and delivered everything written
  // Retire the last file too so that a clean shutdown leaves no journal behind.
  {
    std::lock_guard lk(mu_);
    if (file_) retired_.push_back(Retired{file_path(generation_), std::move(dirty_), attempted_});
    ckpt_stopping_ = true;
  }
  file_.reset();
  ckpt_cv_.notify_all();
  checkpointer_.join();
}

void Journal::commit(const Write& w, Callback done) {
  bool wake;
  {
    std::lock_guard lk(mu_);
    // Wake the writer only when this commit is what it waits for: the first queued since its
    // last batch while a sync slot is free. Otherwise it is awake already, or a finishing sync
    // will wake it — a wake-up per commit would cost a context switch per append for nothing.
    wake = pending_callbacks_.empty() && syncs_in_flight_ < options_.max_syncs_in_flight;
    if (!w.bytes.empty()) {
      std::string_view path = w.path;
      if (path.size() > root_.size() + 1 && path.starts_with(root_) && path[root_.size()] == '/') {
        path.remove_prefix(root_.size() + 1);
      }
      journal::encode_record(next_seq_++, w.offset, path, w.bytes, &pending_);
      pending_files_.push_back(w.file);
    }
    pending_callbacks_.push_back(std::move(done));
  }
  if (wake) cv_.notify_one();
}

Journal::Stats Journal::stats() const {
  std::lock_guard lk(mu_);
  Stats st = stats_;
  st.direct_io = direct_;  // assigned under mu_ (rotate)
  st.preallocated = preallocated_;
  return st;
}

namespace {
// An uninitialised buffer of `n` bytes aligned for direct I/O.
std::unique_ptr<char, void (*)(void*)> aligned_buffer(size_t n) {
  void* p = std::aligned_alloc(Fs::kDirectIoAlign, n);
  if (p == nullptr) throw std::bad_alloc();
  return {static_cast<char*>(p), std::free};
}
// `n` rounded up to a multiple of the direct-I/O block.
uint64_t align_up(uint64_t n) {
  return (n + Fs::kDirectIoAlign - 1) & ~uint64_t{Fs::kDirectIoAlign - 1};
}
}  // namespace

uint64_t Journal::spare_bytes() const {
  return std::min(align_up(options_.rotate_bytes), kMaxSpareBytes);
}

Status Journal::start_file(const std::string& path, uint64_t generation, bool from_spare,
                           std::unique_ptr<File>* out, bool* direct) {
  std::string header;
  journal::encode_header(generation, &header);
  *direct = false;
  // Claim the spare by renaming it first: from here on the name `path` is this thread's alone
  // (the checkpointer may publish the next spare meanwhile), and a crash leaves a zero-filled
  // journal file without a header, which replay skips.
  if (from_spare) {
    if (Status s = fs_->rename(spare_path(), path); !s) return s;
  }
  Status direct_error;
  if (options_.direct_io && !direct_unusable_) {
    std::unique_ptr<File> f;
    Status s = fs_->open_direct_sync(path, &f);
    if (s.code() == Status::Code::kUnavailable) {
      // The Fs or the filesystem has no direct I/O: the page cache from now on.
      spdlog::info("journal: writing through the page cache and fdatasync ({})", s.message());
      direct_unusable_ = true;
    } else {
      if (s && !from_spare) s = f->truncate(0);
      if (s) {
        // Its own buffer: block_ still holds the current file's last block until rotate() has
        // committed to the new file (a failed rotation goes on writing the current one).
        auto block = aligned_buffer(Fs::kDirectIoAlign);
        std::memset(block.get(), 0, Fs::kDirectIoAlign);
        std::memcpy(block.get(), header.data(), header.size());
        s = f->pwrite(block.get(), Fs::kDirectIoAlign, 0);  // durable on return (O_DSYNC)
      }
      if (s) {
        *out = std::move(f);
        *direct = true;
        return Status::ok();
      }
      direct_error = s;
      f.reset();
      if (!from_spare) fs_->remove_all(path);
    }
  }
  std::unique_ptr<File> f;
  Status s = fs_->open(path, &f);
  if (s && !from_spare) s = f->truncate(0);
  if (s) s = f->pwrite(header.data(), header.size(), 0);
  if (s) s = f->datasync();
  if (!s) return s;
  if (!direct_error.is_ok()) {
    // Direct I/O failed where the page cache works: the filesystem refuses it (e.g. a logical
    // block larger than the 4 KiB writes). A failure of both would be the disk's, not this.
    spdlog::warn("journal: direct I/O failed ({}); writing through the page cache and fdatasync",
                 direct_error.message());
    direct_unusable_ = true;
  }
  *out = std::move(f);
  return Status::ok();
}

Status Journal::write_direct(std::string_view bytes) {
  constexpr size_t kAlign = Fs::kDirectIoAlign;
  uint64_t block_start = size_ & ~static_cast<uint64_t>(kAlign - 1);
  size_t head = static_cast<size_t>(size_ - block_start);  // already in block_
  size_t used = head + bytes.size();
  size_t padded = align_up(used);
  if (padded > block_cap_) {
    size_t cap = std::max(padded, block_cap_ * 2);
    auto bigger = aligned_buffer(cap);
    if (head > 0) std::memcpy(bigger.get(), block_.get(), head);
    block_ = std::move(bigger);
    block_cap_ = cap;
  }
  std::memcpy(block_.get() + head, bytes.data(), bytes.size());
  std::memset(block_.get() + used, 0, padded - used);
  if (Status s = file_->pwrite(block_.get(), padded, block_start); !s) return s;
  // Keep the new last partial block at the start of the buffer for the next write.
  size_t whole = used & ~(kAlign - 1);
  if (whole > 0) std::memmove(block_.get(), block_.get() + whole, used - whole);
  return Status::ok();
}

Status Journal::rotate() {
  uint64_t gen = generation_ + 1;
  std::string path = file_path(gen);
  std::unique_ptr<File> f;
  bool direct = false;
  bool spare = false;
  {
    std::lock_guard lk(mu_);
    std::swap(spare, spare_ready_);
  }
  Status s;
  if (spare) {
    s = start_file(path, gen, true, &f, &direct);
    if (!s) {
      // Whatever of the spare reached `path` is truncated by the new file started below.
      spdlog::warn("journal: cannot use the spare file, starting an empty one: {}", s.message());
      f.reset();
      spare = false;
      std::lock_guard lk(mu_);
      want_spare_ = true;
      ckpt_cv_.notify_one();
    }
  }
  if (!spare) s = start_file(path, gen, false, &f, &direct);
  if (s) s = fs_->sync_dir(dir_);
  if (!s) {
    f.reset();
    fs_->remove_all(path);
    std::lock_guard lk(mu_);
    if (spare) {
      want_spare_ = true;  // the claimed spare went with it
      ckpt_cv_.notify_one();
    }
    return s;
  }
  std::unique_lock lk(mu_);
  if (file_) {
    // The checkpointer may fall behind a fast writer: keep at most two retired files queued so
    // that replay after a crash stays bounded.
    room_cv_.wait(lk, [&] { return retired_.size() < 2 || stopping_; });
    retired_.push_back(Retired{file_path(generation_), std::move(dirty_), attempted_});
    dirty_.clear();
    ckpt_cv_.notify_one();
  }
  stats_.rotations++;
  if (spare) stats_.spares_used++;
  broken_ = false;
  generation_ = gen;
  file_ = std::move(f);
  direct_ = direct;
  preallocated_ = spare;
  size_ = journal::kHeaderSize;
  attempted_ = size_;
  if (direct) {
    // The staging buffer now starts with the new file's first (partial) block: its header.
    if (block_cap_ < Fs::kDirectIoAlign) {
      block_ = aligned_buffer(Fs::kDirectIoAlign);
      block_cap_ = Fs::kDirectIoAlign;
    }
    std::string header;
    journal::encode_header(gen, &header);
    std::memcpy(block_.get(), header.data(), header.size());
  }
  opened_at_ = std::chrono::steady_clock::now();
  return Status::ok();
}

void Journal::run_writer() {
  std::string writing;
  std::vector<std::shared_ptr<File>> files;
  std::unique_lock lk(mu_);
  for (;;) {
    // Batch while the sync slots are busy: the longer a sync takes, the bigger the next batch.
    cv_.wait_for(lk, std::chrono::seconds(1), [&] {
      return stopping_ ||
             (!pending_callbacks_.empty() && syncs_in_flight_ < options_.max_syncs_in_flight);
    });
    auto age = std::chrono::steady_clock::now() - opened_at_;
    if (pending_callbacks_.empty() || syncs_in_flight_ >= options_.max_syncs_in_flight) {
      if (stopping_ && pending_callbacks_.empty()) return;
      if (stopping_) {
        cv_.wait(lk, [&] { return syncs_in_flight_ < options_.max_syncs_in_flight; });
        continue;
      }
      if (pending_callbacks_.empty() && size_ > journal::kHeaderSize &&
          age >= options_.rotate_interval) {
        // Idle: retire the file so that a restart has little to replay.
        lk.unlock();
        if (Status s = rotate(); !s) spdlog::warn("journal: cannot start a new file: {}", s.message());
        lk.lock();
      }
      continue;
    }
    auto ticket = std::make_shared<Ticket>();
    ticket->callbacks.swap(pending_callbacks_);
    writing.clear();
    writing.swap(pending_);
    files.swap(pending_files_);
    ticket->records = files.size();
    ticket->bytes = writing.size();
    bool broken = broken_;
    if (writing.empty()) {
      // Only barriers: done once every ticket before them is.
      ticket->generation = generation_;
      ticket->done = true;
      tickets_.push_back(std::move(ticket));
      deliver_locked(lk);
      continue;
    }
    tickets_.push_back(ticket);
    lk.unlock();

    Status s;
    // Also checkpoint once the file covers many segment files: each is held open until then.
    bool full = size_ > journal::kHeaderSize &&
                (size_ + writing.size() > options_.rotate_bytes || age >= options_.rotate_interval ||
                 dirty_.size() >= options_.max_dirty_files);
    if (broken || full) {
      Status rs = rotate();
      if (!rs) {
        if (broken) s = rs;  // never write after a torn or unsynced record
        else spdlog::warn("journal: cannot start a new file, continuing in the old: {}", rs.message());
      }
    }
    if (s) {
      for (auto& f : files) dirty_.emplace(f.get(), std::move(f));
      attempted_ = std::max(attempted_, size_ + writing.size());  // even if the write fails
      s = direct_ ? write_direct(writing) : file_->pwrite(writing.data(), writing.size(), size_);
      if (s) {
        size_ += writing.size();
      } else {
        // Whatever part of the batch reached the file (a short write on a full disk can hold
        // whole records) must not be replayed after a crash: its appends are answered as failed
        // and their streams roll them back. Cut it off, durably, before the failure is delivered.
        Status ts = file_->truncate(size_);
        if (ts) ts = file_->datasync();
        if (!ts) {
          spdlog::error("journal: cannot cut a failed write off {} ({}); a crash before its "
                        "checkpoint may replay appends that were answered as failed",
                        file_path(generation_), ts.message());
        }
      }
    }
    files.clear();

    lk.lock();
    ticket->generation = generation_;
    if (s && direct_) {
      // The O_DSYNC write returned: the batch is durable, there is nothing to sync.
      syncs_in_flight_++;
      finish_sync_locked(lk, ticket, Status::ok());
    } else if (s && syncs_in_flight_ == 0 &&
        (pending_callbacks_.empty() || options_.max_syncs_in_flight == 1)) {
      // Nothing else to write and no sync running: sync here rather than wake a sync thread
      // (one thread hand-off less on the path of every lightly loaded append). Commits that
      // arrive meanwhile are batched for the next write. With one sync slot the writer could
      // not write the next batch before this sync ends anyway, so it always syncs itself.
      syncs_in_flight_++;
      SyncJob job{file_, ticket};
      lk.unlock();
      Status ss = job.file->datasync();
      job.file.reset();
      lk.lock();
      finish_sync_locked(lk, job.ticket, ss);
    } else if (s) {
      sync_jobs_.push_back(SyncJob{file_, ticket});
      syncs_in_flight_++;
      sync_cv_.notify_one();
    } else {
      spdlog::error("journal: write of {} bytes failed: {}", writing.size(), s.message());
      broken_ = true;
      ticket->done = true;
      ticket->status = s;
      deliver_locked(lk);
    }
  }
}

void Journal::run_syncer() {
  std::unique_lock lk(mu_);
  for (;;) {
    sync_cv_.wait(lk, [&] { return syncers_stopping_ || !sync_jobs_.empty(); });
    if (sync_jobs_.empty()) return;  // stopping and drained
    SyncJob job = std::move(sync_jobs_.front());
    sync_jobs_.pop_front();
    lk.unlock();
    Status s = job.file->datasync();
    job.file.reset();
    lk.lock();
    finish_sync_locked(lk, job.ticket, s);
  }
}

void Journal::finish_sync_locked(std::unique_lock<std::mutex>& lk,
                                 const std::shared_ptr<Ticket>& ticket, const Status& s) {
  if (!s) {
    spdlog::error("journal: fdatasync failed: {}", s.message());
    broken_ = true;  // the writer starts a new file; delivery fails the rest of this one
  }
  ticket->done = true;
  ticket->status = s;
  syncs_in_flight_--;
  if (!pending_callbacks_.empty() || stopping_) cv_.notify_one();  // else commit() wakes it
  deliver_locked(lk);
}

void Journal::deliver_locked(std::unique_lock<std::mutex>& lk) {
  if (delivering_) return;  // that thread will also deliver what just finished
  delivering_ = true;
  while (!tickets_.empty() && tickets_.front()->done) {
    std::shared_ptr<Ticket> t = std::move(tickets_.front());
    tickets_.pop_front();
    if (t->status && t->generation == poisoned_generation_ && t->records > 0) {
      // A sync of this file failed: a later sync's success cannot vouch for its pages.
      t->status = Status::io_error("an earlier journal sync failed; retry");
    }
    if (!t->status && t->records > 0) poisoned_generation_ = t->generation;
    if (t->records > 0) {
      if (t->status) {
        stats_.syncs++;
        stats_.records += t->records;
        stats_.record_bytes += t->bytes;
      } else {
        stats_.failed_batches++;
      }
    }
    lk.unlock();
    for (auto& cb : t->callbacks) cb(t->status);
    lk.lock();
  }
  delivering_ = false;
}

void Journal::run_checkpointer() {
  std::unique_lock lk(mu_);
  for (;;) {
    ckpt_cv_.wait(lk, [&] {
      return ckpt_stopping_ || !retired_.empty() || (want_spare_ && !spare_ready_);
    });
    if (retired_.empty()) {
      if (ckpt_stopping_) return;  // stopping and drained
      // No retired file to recycle: a spare from scratch.
      want_spare_ = false;
      if (!spares_allowed_locked()) continue;
      lk.unlock();
      Status s = make_spare(false, 0);
      lk.lock();
      spare_made_locked(s);
      continue;
    }
    Retired& r = retired_.front();  // only this thread pops; push_back keeps references valid
    const uint64_t used = r.used;
    // A file that grew past a spare's length is not recycled (its zeroing would be longer than
    // making a spare from scratch); one is made from scratch instead.
    const bool recycle =
        options_.preallocate && !spare_ready_ && spares_allowed_locked() && used <= spare_bytes();
    if (options_.preallocate && !recycle && !spare_ready_) want_spare_ = true;
    lk.unlock();
    Status s;
    for (auto& [key, file] : r.segments) {
      if (s = file->datasync(); !s) break;
    }
    // Its records are all in synced segment files now: the file may go, or become the spare
    // (renamed out of replay's sight here, zeroed below once the checkpoint is done).
    bool recycled = s && recycle && fs_->rename(r.path, spare_tmp_path());
    if (s && !recycled) s = fs_->remove_all(r.path);
    if (s) s = fs_->sync_dir(dir_);
    lk.lock();
    if (s) {
      retired_.pop_front();
      stats_.checkpoints++;
      room_cv_.notify_all();
      if (recycled) {
        lk.unlock();
        Status ss = make_spare(true, used);
        lk.lock();
        spare_made_locked(ss);
      }
      continue;
    }
    stats_.checkpoint_failures++;
    spdlog::error("journal: checkpoint of {} failed (kept for replay, retrying): {}", r.path,
                  s.message());
    if (ckpt_cv_.wait_for(lk, std::chrono::seconds(1), [&] { return ckpt_stopping_; })) return;
  }
}

bool Journal::spares_allowed_locked() const {
  return std::chrono::steady_clock::now() >= no_spares_until_;
}

void Journal::spare_made_locked(const Status& s) {
  if (s) {
    spare_ready_ = true;
    want_spare_ = false;
    stats_.spares++;
    return;
  }
  // E.g. a disk without room for another file: retry later, not at every checkpoint.
  no_spares_until_ = std::chrono::steady_clock::now() + options_.spare_retry_delay;
  spdlog::warn("journal: cannot make a spare file, journal files grow as written for now: {}",
               s.message());
}

Status Journal::make_spare(bool recycled, uint64_t used) {
  constexpr size_t kChunk = 1 << 20;
  const std::string tmp = spare_tmp_path();
  const uint64_t target = spare_bytes();
  if (!zeros_) {
    zeros_ = aligned_buffer(kChunk);
    std::memset(zeros_.get(), 0, kChunk);
  }
  // Zero-fills `tmp` durably, with direct writes or through the page cache.
  auto fill = [&](bool direct) {
    std::unique_ptr<File> f;
    Status s = direct ? fs_->open_direct_sync(tmp, &f) : fs_->open(tmp, &f);
    if (s && !recycled) s = f->truncate(0);  // e.g. left by a checkpoint that failed after renaming
    uint64_t size = 0;
    if (s) s = f->size(&size);
    if (s && size > target) {  // one left by a longer setting
      s = f->truncate(target);
      size = target;
    }
    // A file that was a spare is zeros past what the writer wrote or tried to (its direct
    // blocks were padded with zeros); any other file is zero-filled to the full length.
    uint64_t end = recycled && size >= target ? align_up(used) : std::max(target, align_up(used));
    for (uint64_t at = 0; s && at < end; at += kChunk) {
      s = f->pwrite(zeros_.get(), static_cast<size_t>(std::min<uint64_t>(kChunk, end - at)), at);
    }
    if (s && !direct) s = f->datasync();  // direct writes are durable on return (O_DSYNC)
    return s;
  };
  Status s = options_.direct_io && !direct_unusable_.load(std::memory_order_relaxed)
                 ? fill(true)
                 : Status::unavailable("direct I/O off or unusable here");
  if (!s) s = fill(false);  // no direct I/O here, or it refused the writes
  if (s) s = fs_->rename(tmp, spare_path());
  if (s) s = fs_->sync_dir(dir_);
  if (!s) fs_->remove_all(tmp);
  return s;
}

}  // namespace ds
