// Fs: every file operation of the store goes through this interface, so tests can inject short
// writes, fsync failures and full disks (after LevelDB's Env).
//
// Guarantees of the POSIX implementation: pwrite writes all bytes or returns an error (partial
// writes are retried internally); datasync() returns ok only once fdatasync(2) succeeded; a file
// from open_direct_sync() returns from pwrite only once the bytes are on stable storage.
// File objects are safe to use from several threads (pread/pwrite/fdatasync are positional).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "store/status.h"

namespace ds {

class File {
 public:
  virtual ~File() = default;
  // Writes exactly n bytes at offset `off`.
  virtual Status pwrite(const void* data, size_t n, uint64_t off) = 0;
  // Reads up to n bytes at `off`; *got is the number read (short only at end of file).
  virtual Status pread(void* data, size_t n, uint64_t off, size_t* got) const = 0;
  // Makes every byte written so far durable (fdatasync).
  virtual Status datasync() = 0;
  virtual Status truncate(uint64_t size) = 0;
  virtual Status size(uint64_t* out) const = 0;
};

class Fs {
 public:
  virtual ~Fs() = default;
  // Opens (creating if missing) a file for reading and writing.
  virtual Status open(const std::string& path, std::unique_ptr<File>* out) = 0;
  // Opens (creating if missing) a file whose writes are durable when pwrite returns: O_DIRECT |
  // O_DSYNC, so no page-cache copy, no writeback and no separate fdatasync (datasync() still
  // works). The buffer address, offset and length of every pwrite must be multiples of
  // kDirectIoAlign. kUnavailable when the filesystem (or this Fs) cannot: use open() there.
  virtual Status open_direct_sync(const std::string& path, std::unique_ptr<File>* out) {
    (void)out;
    return Status::unavailable("no direct I/O through this Fs: " + path);
  }
  static constexpr size_t kDirectIoAlign = 4096;
  virtual Status create_dirs(const std::string& path) = 0;
  // Names (not paths) of the entries of a directory; missing directory = empty list.
  virtual Status list(const std::string& dir, std::vector<std::string>* names) = 0;
  virtual Status remove_all(const std::string& path) = 0;
  virtual Status rename(const std::string& from, const std::string& to) = 0;
  virtual bool exists(const std::string& path) = 0;
  // fsyncs a directory so that entries created in it survive a crash.
  virtual Status sync_dir(const std::string& path) = 0;
  // Opens a sealed segment whose file was evicted to the S3 tier (a `.sum` summary is beside it):
  // the File reads the bytes back from the bucket on demand (segment_cache.h). Without a tier:
  // kUnavailable.
  virtual Status open_evicted(const std::string& segment_path, std::unique_ptr<File>* out) {
    (void)out;
    return Status::unavailable(segment_path +
                               " is evicted to the S3 tier, which is not configured");
  }

  // The process-wide POSIX implementation.
  static Fs* posix();
};

}  // namespace ds
