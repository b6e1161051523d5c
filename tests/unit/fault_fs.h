// FaultFs: a test-only Fs that forwards to a real one (POSIX by default) and injects faults.
//
//   FaultFs fs;
//   fs.short_write_next(10);                     // next pwrite keeps 10 bytes, then fails (crash)
//   fs.fail_next_write(FaultFs::eio());          // next pwrite writes nothing, fails with EIO
//   fs.fail_next_write(FaultFs::enospc());       // ... or with a full disk
//   fs.fail_next_write(FaultFs::eio(), "spare"); // ... only a file whose path contains "spare"
//   fs.fail_writes(FaultFs::eio(), "spare");     // every pwrite to such files, until clear_faults()
//   fs.fail_datasync(FaultFs::eio());            // every datasync fails until clear_faults()
//   fs.fail_next_datasync(FaultFs::eio());       // only the next datasync fails
//   fs.datasyncs();                              // how many datasync calls reached this Fs
//   fs.fail_next_sync_dir(FaultFs::eio());       // the next directory fsync fails
//   fs.dir_syncs();                              // how many sync_dir calls reached this Fs
//
// open_direct_sync() is forwarded only when constructed with `direct = true` (else the Fs has
// no direct I/O, so callers use their page-cache path). fail_next_write applies to direct files
// too; short_write_next does not simulate a torn direct write (the kept part is unaligned, so
// the real write fails and writes nothing).
//
// Write faults are one-shot; fail_datasync is sticky (and wins over fail_next_datasync). Files opened through a FaultFs share
// its fault state, so faults can be armed after the files were opened. Thread-safe.
#pragma once

#include <algorithm>
#include <atomic>
#include <memory>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "store/fs.h"

namespace ds::test {

class FaultFs final : public Fs {
 public:
  explicit FaultFs(Fs* base = Fs::posix(), bool direct = false)
      : base_(base), direct_(direct), state_(std::make_shared<State>()) {}

  static Status eio() { return Status::io_error("injected EIO"); }
  static Status enospc() { return Status::no_space("injected ENOSPC"); }

  // The next pwrite writes only its first `keep` bytes, then returns EIO.
  void short_write_next(size_t keep) {
    std::lock_guard lk(state_->mu);
    state_->write_error = eio();
    state_->write_keep = keep;
    state_->write_path.clear();
  }
  // The next pwrite writes nothing and returns `error`. With `path_contains`, the next pwrite
  // to a file whose path contains it.
  void fail_next_write(Status error, std::string path_contains = "") {
    std::lock_guard lk(state_->mu);
    state_->write_error = std::move(error);
    state_->write_keep = 0;
    state_->write_path = std::move(path_contains);
  }
  // Every pwrite to a file whose path contains `path_contains` writes nothing and returns `error`,
  // until clear_faults().
  void fail_writes(Status error, std::string path_contains) {
    std::lock_guard lk(state_->mu);
    state_->sticky_write_error = std::move(error);
    state_->sticky_write_path = std::move(path_contains);
  }
  // Every datasync returns `error` (without syncing) until clear_faults().
  void fail_datasync(Status error) {
    std::lock_guard lk(state_->mu);
    state_->sync_error = std::move(error);
  }
  // Only the next datasync returns `error` (like Linux, which reports a writeback error once).
  // With `path_contains`, only the next datasync of a file whose path contains it.
  void fail_next_datasync(Status error, std::string path_contains = "") {
    std::lock_guard lk(state_->mu);
    state_->next_sync_error = std::move(error);
    state_->next_sync_path = std::move(path_contains);
  }
  // The next sync_dir returns `error` without syncing.
  void fail_next_sync_dir(Status error) {
    std::lock_guard lk(state_->mu);
    state_->next_dir_sync_error = std::move(error);
  }
  int dir_syncs() const { return state_->dir_syncs.load(); }
  // Slow disk: every datasync blocks until release_datasyncs() (then syncs normally).
  void hold_datasyncs() {
    std::lock_guard lk(state_->mu);
    state_->hold = true;
  }
  void release_datasyncs() {
    {
      std::lock_guard lk(state_->mu);
      state_->hold = false;
    }
    state_->cv.notify_all();
  }
  // Number of datasyncs currently blocked by hold_datasyncs().
  int held_datasyncs() const { return state_->held.load(); }

  void clear_faults() {
    std::lock_guard lk(state_->mu);
    state_->write_error.reset();
    state_->sticky_write_error.reset();
    state_->sync_error.reset();
    state_->next_sync_error.reset();
    state_->next_dir_sync_error.reset();
  }
  int datasyncs() const { return state_->datasyncs.load(); }

  Status open(const std::string& path, std::unique_ptr<File>* out) override {
    std::unique_ptr<File> file;
    if (Status s = base_->open(path, &file); !s) return s;
    *out = std::make_unique<FaultFile>(std::move(file), state_, path);
    return Status::ok();
  }
  Status open_direct_sync(const std::string& path, std::unique_ptr<File>* out) override {
    if (!direct_) return Fs::open_direct_sync(path, out);
    std::unique_ptr<File> file;
    if (Status s = base_->open_direct_sync(path, &file); !s) return s;
    *out = std::make_unique<FaultFile>(std::move(file), state_, path);
    return Status::ok();
  }
  Status create_dirs(const std::string& path) override { return base_->create_dirs(path); }
  Status list(const std::string& dir, std::vector<std::string>* names) override {
    return base_->list(dir, names);
  }
  Status remove_all(const std::string& path) override { return base_->remove_all(path); }
  Status rename(const std::string& from, const std::string& to) override {
    return base_->rename(from, to);
  }
  bool exists(const std::string& path) override { return base_->exists(path); }
  Status sync_dir(const std::string& path) override {
    state_->dir_syncs++;
    std::optional<Status> error;
    {
      std::lock_guard lk(state_->mu);
      error.swap(state_->next_dir_sync_error);
    }
    if (error) return *error;
    return base_->sync_dir(path);
  }

 private:
  struct State {
    std::mutex mu;
    std::optional<Status> write_error;  // one-shot
    size_t write_keep = 0;
    std::string write_path;             // ... for files whose path contains this
    std::optional<Status> sticky_write_error;  // until clear_faults()
    std::string sticky_write_path;             // ... for files whose path contains this
    std::optional<Status> sync_error;   // sticky
    std::optional<Status> next_sync_error;  // one-shot
    std::string next_sync_path;             // ... for files whose path contains this
    std::atomic<int> datasyncs{0};
    std::optional<Status> next_dir_sync_error;  // one-shot
    std::atomic<int> dir_syncs{0};
    bool hold = false;
    std::condition_variable cv;
    std::atomic<int> held{0};
  };

  class FaultFile final : public File {
   public:
    FaultFile(std::unique_ptr<File> base, std::shared_ptr<State> state, std::string path)
        : base_(std::move(base)), state_(std::move(state)), path_(std::move(path)) {}

    Status pwrite(const void* data, size_t n, uint64_t off) override {
      std::optional<Status> error;
      size_t keep = 0;
      {
        std::lock_guard lk(state_->mu);
        if (state_->sticky_write_error &&
            path_.find(state_->sticky_write_path) != std::string::npos) {
          return *state_->sticky_write_error;
        }
        if (path_.find(state_->write_path) != std::string::npos) error.swap(state_->write_error);
        keep = state_->write_keep;
      }
      if (!error) return base_->pwrite(data, n, off);
      if (keep > 0) base_->pwrite(data, std::min(keep, n), off);
      return *error;
    }
    Status pread(void* data, size_t n, uint64_t off, size_t* got) const override {
      return base_->pread(data, n, off, got);
    }
    Status datasync() override {
      state_->datasyncs++;
      {
        std::unique_lock lk(state_->mu);
        if (state_->hold) {
          state_->held++;
          state_->cv.wait(lk, [&] { return !state_->hold; });
          state_->held--;
        }
        if (state_->sync_error) return *state_->sync_error;
        if (state_->next_sync_error && path_.find(state_->next_sync_path) != std::string::npos) {
          std::optional<Status> once;
          once.swap(state_->next_sync_error);
          return *once;
        }
      }
      return base_->datasync();
    }
    Status truncate(uint64_t size) override { return base_->truncate(size); }
    Status size(uint64_t* out) const override { return base_->size(out); }

   private:
    std::unique_ptr<File> base_;
    std::shared_ptr<State> state_;
    std::string path_;
  };

  Fs* base_;
  bool direct_;
  std::shared_ptr<State> state_;
};

}  // namespace ds::test
