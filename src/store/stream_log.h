// StreamLog: the append-only on-disk log of one stream — a directory of segment files holding
// checksummed frames (see frame.h), plus an in-memory index from position to bytes.
//
// Guarantees:
// - append() writes one whole frame with one pwrite at the tail of the active segment. It is NOT
//   durable on return: the caller must have the file returned by active_file() synced (group
//   commit) before acknowledging. Until then readers must not be shown the new positions; the
//   caller tracks the durable position.
// - open() replays every intact frame in order and truncates a torn tail of the active (last)
//   segment, so a frame is either entirely present after a crash or entirely absent. Damage
//   anywhere else — a frame that does not decode in a sealed segment, a missing or truncated
//   segment before the last — is kCorruption: open() fails and changes nothing on disk, since
//   later frames hold acknowledged events whose positions must never be reused.
// - A sealed segment may be evicted to the S3 tier (segment_cache.h): its file is replaced by a
//   summary (segment_summary.h). open() recovers such a segment from the summary, with the same
//   index and frame metadata, and reads it through Fs::open_evicted (fetched on demand).
// - Not thread-safe: the owning Stream serialises calls with its own mutex.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "store/frame.h"
#include "store/fs.h"
#include "store/message_batch.h"
#include "store/status.h"

namespace ds {

class StreamLog {
 public:
  struct Options {
    uint64_t segment_bytes = 64ull << 20;  // roll to a new segment past this size
  };
  // Called once per intact frame during open(), in log order.
  using FrameVisitor = std::function<void(const FrameMeta& meta, uint32_t message_count)>;

  struct RecoveryStats {
    uint64_t frames = 0;
    uint64_t truncated_bytes = 0;  // torn/corrupt tail removed
  };

  // Opens the log in `dir` (created if missing). Positions start at `base_position` (non-zero for
  // forks, whose earlier positions live in the source).
  static Status open(Fs* fs, const std::string& dir, uint64_t base_position,
                     const Options& options, const FrameVisitor& visitor,
                     std::unique_ptr<StreamLog>* out, RecoveryStats* stats);

  // Creates `dir` and the log's first, empty segment file without syncing anything (the caller
  // makes them durable: Fs::sync_dir of `dir`, then of its parent). open() then finds an empty log
  // starting at `base_position` and needs no sync of its own.
  static Status create_empty(Fs* fs, const std::string& dir, uint64_t base_position);

  // A point the log can be rolled back to (after a failed sync).
  struct Mark {
    uint64_t next_position;
    size_t segments;
    uint64_t active_size;
  };
  Mark mark() const;
  // Discards everything appended after `m` (in memory and on disk).
  Status rollback(const Mark& m);

  // Where append() put its frame: valid until the next call on this log.
  struct Appended {
    uint64_t offset = 0;     // in active_file()
    std::string_view frame;  // the bytes written
  };
  // Writes one frame holding `messages`; meta.first_position is set by the log.
  Status append(FrameMeta meta, const std::vector<std::string_view>& messages,
                Appended* appended = nullptr);
  // The file holding the most recent frame, and its path. Every frame of earlier segments is
  // durable (a roll syncs the full segment), so committing the frames written to this file makes
  // every append so far durable.
  std::shared_ptr<File> active_file() const;
  const std::string& active_path() const { return segments_.back().path; }

  uint64_t base_position() const { return base_; }
  uint64_t next_position() const { return base_ + index_.size(); }
  uint64_t bytes() const { return bytes_; }

  // Appends to *out the messages at positions [from, to) in order, stopping once `max_bytes`
  // would be exceeded (but always at least one message when the range is non-empty).
  Status read(uint64_t from, uint64_t to, size_t max_bytes, std::vector<std::string>* out) const;
  // The same selection as read() (same budget rule), but only planned: each run of messages in
  // one segment becomes one run of *out (one pread when out->load() is called, which the caller
  // does after releasing its lock). Cost under the lock: one span per message, no I/O.
  void plan_read(uint64_t from, uint64_t to, size_t max_bytes, MessageBatch* out) const;
  // Length of the message at `position`.
  uint32_t message_size(uint64_t position) const;

 private:
  struct Segment {
    uint64_t first_position;
    std::shared_ptr<File> file;
    uint64_t size;
    std::string path;
  };
  struct Loc {
    uint32_t segment;
    uint32_t length;
    uint64_t offset;
  };

  StreamLog(Fs* fs, std::string dir, uint64_t base, Options o)
      : fs_(fs), dir_(std::move(dir)), base_(base), options_(o) {}
  Status recover_segment(size_t seg_index, bool last, const FrameVisitor& visitor,
                         RecoveryStats* stats);
  Status recover_from_summary(size_t seg_index, const std::string& summary,
                              const FrameVisitor& visitor, RecoveryStats* stats);
  Status add_segment(uint64_t first_position);
  std::string segment_path(uint64_t first_position) const;
  std::string summary_path(uint64_t first_position) const;

  Fs* fs_;
  std::string dir_;
  uint64_t base_;
  Options options_;
  std::vector<Segment> segments_;
  std::vector<Loc> index_;
  uint64_t bytes_ = 0;
  std::string scratch_;
};

}  // namespace ds
