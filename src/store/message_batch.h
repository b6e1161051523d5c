// MessageBatch: a run of messages read from a log, held in one contiguous buffer (the raw bytes of
// whole runs of frames, as read from disk) plus the span of each message in it.
//
// Guarantees:
// - No allocation per message: the buffer grows geometrically and is kept across clear(), the
//   spans live in one vector. The buffer is never zero-filled.
// - Filling is two-phase so the log's lock is not held during I/O: the log adds runs and spans
//   under its lock (add_run/add_message, cheap), the caller then calls load() without any lock,
//   which does one pread per run. A run holds a shared reference to its file, so the read stays
//   valid if the log is unloaded, rolled or deleted meanwhile (durable bytes are never rewritten).
// - The views returned by operator[] stay valid until the batch is cleared, loaded again or
//   destroyed.
// Not thread-safe (one owner).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "store/fs.h"
#include "store/status.h"

namespace ds {

class MessageBatch {
 public:
  size_t size() const { return spans_.size(); }
  bool empty() const { return spans_.empty(); }
  // Message i (after load()).
  std::string_view operator[](size_t i) const {
    return std::string_view(buf_.get() + spans_[i].offset, spans_[i].length);
  }
  // Sum of the lengths of the messages (not counting frame overhead).
  size_t message_bytes() const { return message_bytes_; }
  // Forgets the messages; keeps the buffer for reuse.
  void clear();

  // Appends "[m0,m1,…]" (messages from `first` on) to *out with one reservation and one copy per
  // message.
  void append_json_array(std::string* out, size_t first = 0) const;
  // Appends the concatenation of the messages to *out (byte streams).
  void append_concatenated(std::string* out) const;

  // --- filling (the log) ---
  // Reserves `bytes` of buffer for the bytes at `file_offset` of `file`, to be read by load().
  // Returns the buffer offset at which they will land.
  size_t add_run(std::shared_ptr<File> file, uint64_t file_offset, size_t bytes);
  // Records a message at `buffer_offset` (inside a run added before).
  void add_message(size_t buffer_offset, uint32_t length) {
    spans_.push_back(Span{buffer_offset, length});
    message_bytes_ += length;
  }
  void reserve_messages(size_t n) { spans_.reserve(spans_.size() + n); }
  // Reads every run added since the last load(), one pread each. Call without the log's lock.
  Status load();

 private:
  struct Span {
    size_t offset;
    uint32_t length;
  };
  struct Run {
    std::shared_ptr<File> file;
    uint64_t file_offset;
    size_t buffer_offset;
    size_t bytes;
  };

  std::unique_ptr<char[]> buf_;
  size_t capacity_ = 0;
  size_t used_ = 0;    // bytes reserved by runs (loaded or pending)
  size_t loaded_ = 0;  // bytes holding data already read
  std::vector<Span> spans_;
  std::vector<Run> pending_;
  size_t message_bytes_ = 0;
};

}  // namespace ds
