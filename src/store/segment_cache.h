// SegmentCache: the local disk as a cache of the bucket. An Fs (wrapping the real one) under every
// stream log that evicts sealed segments already in the bucket when local segment data passes a
// byte budget (--cache-size), least recently read first, and fetches them back when read.
//
// Guarantees:
// - Only sealed segments every position of which is in the bucket, and which are followed by at
//   least one uploaded position (so a rollback can never make them active again), are evicted.
//   The active segment of a log is never evicted.
// - Eviction writes the segment's summary (segment_summary.h) durably (fsync + rename) before it
//   removes the segment file, so a crash leaves either the file or the summary (or both).
// - Reading an evicted segment fetches its messages from the bucket, rebuilds the file byte for
//   byte (checked against every frame's recorded checksum) and writes it back with fsync + rename
//   before serving the read. When the fetch fails (S3 unreachable, object missing or altered) the
//   read fails with kUnavailable; it never returns other bytes. Concurrent readers of one segment
//   share one fetch.
// - A log that has the segment file open keeps reading it after an eviction (the open descriptor
//   stays valid), so eviction never races with reads; the space is freed once the log closes.
// - The budget is enforced by enforce(), which the tier calls every flush interval: a fetch may
//   take the cache above its budget until the next pass.
// Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "store/fs.h"
#include "store/segment_summary.h"

namespace ds {

class SegmentCache : public Fs {
 public:
  // Reads positions [summary.first_position, summary.end_position()) back from the bucket.
  using Fetcher = std::function<Status(const SegmentSummary& summary,
                                       std::vector<std::string>* messages)>;

  // budget_bytes = 0: nothing is evicted (segments evicted earlier are still fetched on demand).
  SegmentCache(Fs* base, uint64_t budget_bytes);
  ~SegmentCache() override;

  void set_fetcher(Fetcher fetcher);
  uint64_t budget() const { return budget_; }

  // One stream log directory, as the tier knows it.
  struct LogDir {
    std::string dir;
    uint64_t uploaded_next = 0;  // positions below are in the bucket
    std::string bucket_prefix;   // the stream's key prefix (with trailing '/')
    BucketEncoding encoding = BucketEncoding::kSessionEvents;
  };
  // Measures the segment files of `dirs` and evicts until within budget (or nothing is eligible).
  Status enforce(const std::vector<LogDir>& dirs);

  struct Stats {
    uint64_t resident_bytes = 0;  // segment files on disk (as of the last pass, plus fetches)
    uint64_t evictions = 0;
    uint64_t fetches = 0;
    uint64_t fetch_errors = 0;
    uint64_t fetched_bytes = 0;   // segment bytes rebuilt from the bucket
  };
  Stats stats() const;

  // Fs: delegates to the base; segment files are tracked for recency of reads.
  Status open(const std::string& path, std::unique_ptr<File>* out) override;
  Status create_dirs(const std::string& path) override { return base_->create_dirs(path); }
  Status list(const std::string& dir, std::vector<std::string>* names) override {
    return base_->list(dir, names);
  }
  Status remove_all(const std::string& path) override;
  Status rename(const std::string& from, const std::string& to) override {
    return base_->rename(from, to);
  }
  bool exists(const std::string& path) override { return base_->exists(path); }
  Status sync_dir(const std::string& path) override { return base_->sync_dir(path); }
  Status open_evicted(const std::string& segment_path, std::unique_ptr<File>* out) override;

 private:
  struct Slot;
  class TrackedFile;
  class EvictedFile;
  friend class EvictedFile;

  std::shared_ptr<Slot> slot(const std::string& segment_path);
  Status fetch(Slot* slot, const std::string& segment_path);
  Status evict(const std::string& segment_path, uint64_t first, const LogDir& dir);

  Fs* base_;
  uint64_t budget_;
  mutable std::mutex mu_;  // guards slots_, fetcher_
  std::map<std::string, std::shared_ptr<Slot>> slots_;
  Fetcher fetcher_;
  std::atomic<uint64_t> resident_bytes_{0}, evictions_{0}, fetches_{0}, fetch_errors_{0},
      fetched_bytes_{0};
};

}  // namespace ds
