#include "store/message_batch.h"

#include <algorithm>
#include <cstring>

namespace ds {

void MessageBatch::clear() {
  spans_.clear();
  pending_.clear();
  used_ = loaded_ = 0;
  message_bytes_ = 0;
}

size_t MessageBatch::add_run(std::shared_ptr<File> file, uint64_t file_offset, size_t bytes) {
  size_t at = used_;
  pending_.push_back(Run{std::move(file), file_offset, at, bytes});
  used_ += bytes;
  return at;
}

Status MessageBatch::load() {
  if (used_ > capacity_) {
    size_t cap = std::max(used_, capacity_ * 2);
    auto grown = std::make_unique_for_overwrite<char[]>(cap);
    if (loaded_ > 0) std::memcpy(grown.get(), buf_.get(), loaded_);
    buf_ = std::move(grown);
    capacity_ = cap;
  }
  for (const Run& r : pending_) {
    size_t got = 0;
    if (Status s = r.file->pread(buf_.get() + r.buffer_offset, r.bytes, r.file_offset, &got); !s) {
      pending_.clear();
      return s;
    }
    if (got != r.bytes) {
      pending_.clear();
      return Status::corruption("segment shorter than its index");
    }
  }
  pending_.clear();
  loaded_ = used_;
  return Status::ok();
}

void MessageBatch::append_json_array(std::string* out, size_t first) const {
  size_t n = first < spans_.size() ? spans_.size() - first : 0;
  size_t bytes = 2 + (n > 0 ? n - 1 : 0);
  for (size_t i = first; i < spans_.size(); ++i) bytes += spans_[i].length;
  out->reserve(out->size() + bytes);
  out->push_back('[');
  for (size_t i = first; i < spans_.size(); ++i) {
    if (i > first) out->push_back(',');
    out->append(buf_.get() + spans_[i].offset, spans_[i].length);
  }
  out->push_back(']');
}

void MessageBatch::append_concatenated(std::string* out) const {
  out->reserve(out->size() + message_bytes_);
  for (const Span& s : spans_) out->append(buf_.get() + s.offset, s.length);
}

}  // namespace ds
