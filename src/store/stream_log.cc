#include "store/stream_log.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "store/segment_summary.h"

namespace ds {

std::string StreamLog::segment_path(uint64_t first_position) const {
  char name[48];
  std::snprintf(name, sizeof name, "/%020llu.seg", static_cast<unsigned long long>(first_position));
  return dir_ + name;
}

std::string StreamLog::summary_path(uint64_t first_position) const {
  std::string p = segment_path(first_position);
  return p.replace(p.size() - 4, 4, ".sum");
}

Status StreamLog::create_empty(Fs* fs, const std::string& dir, uint64_t base_position) {
  if (Status s = fs->create_dirs(dir); !s) return s;
  StreamLog log(fs, dir, base_position, Options{});
  std::unique_ptr<File> file;
  return fs->open(log.segment_path(base_position), &file);
}

Status StreamLog::open(Fs* fs, const std::string& dir, uint64_t base_position,
                       const Options& options, const FrameVisitor& visitor,
                       std::unique_ptr<StreamLog>* out, RecoveryStats* stats) {
  std::unique_ptr<StreamLog> log(new StreamLog(fs, dir, base_position, options));
  RecoveryStats local;
  if (stats == nullptr) stats = &local;
  if (Status s = fs->create_dirs(dir); !s) return s;
  std::vector<std::string> names;
  if (Status s = fs->list(dir, &names); !s) return s;
  std::vector<uint64_t> firsts;
  std::map<uint64_t, std::string> evicted;  // first position -> summary bytes (no segment file)
  for (const auto& n : names) {
    if (n.size() == 24 && n.ends_with(".seg")) firsts.push_back(std::stoull(n.substr(0, 20)));
  }
  for (const auto& n : names) {
    if (n.size() != 24 || !n.ends_with(".sum")) continue;
    uint64_t f = std::stoull(n.substr(0, 20));
    if (std::find(firsts.begin(), firsts.end(), f) == firsts.end()) {
      firsts.push_back(f);
      evicted[f];
    }
  }
  std::sort(firsts.begin(), firsts.end());
  for (uint64_t f : firsts) {
    std::unique_ptr<File> file;
    std::string path = log->segment_path(f);
    uint64_t size = 0;
    if (auto ev = evicted.find(f); ev != evicted.end()) {
      std::unique_ptr<File> sum;
      if (Status s = fs->open(log->summary_path(f), &sum); !s) return s;
      if (Status s = sum->size(&size); !s) return s;
      ev->second.resize(size);
      size_t got = 0;
      if (Status s = sum->pread(ev->second.data(), size, 0, &got); !s) return s;
      ev->second.resize(got);
      SegmentSummary summary;
      if (Status s = SegmentSummary::decode(ev->second, &summary); !s) return s;
      size = summary.size;
      if (Status s = fs->open_evicted(path, &file); !s) return s;
    } else {
      if (Status s = fs->open(path, &file); !s) return s;
      if (Status s = file->size(&size); !s) return s;
    }
    log->segments_.push_back(Segment{f, std::move(file), size, std::move(path)});
  }
  for (size_t i = 0; i < log->segments_.size(); ++i) {
    bool last = i + 1 == log->segments_.size();
    if (log->segments_[i].first_position != log->next_position()) {
      // A segment is missing or shorter than its successor says: that is damage (a roll syncs
      // a segment whole before the next one exists), never a torn write. Nothing is removed:
      // the later segments hold acknowledged events, and a position must never be reused.
      return Status::corruption(
          dir + ": damaged log: segment " + log->segments_[i].path + " starts at position " +
          std::to_string(log->segments_[i].first_position) + " but the log before it ends at " +
          std::to_string(log->next_position()) +
          " (a segment is missing or truncated); the stream is left as it is — restore its "
          "directory from a backup or the bucket");
    }
    auto ev = evicted.find(log->segments_[i].first_position);
    if (ev != evicted.end()) {
      if (Status s = log->recover_from_summary(i, ev->second, visitor, stats); !s) return s;
    } else if (Status s = log->recover_segment(i, last, visitor, stats); !s) {
      return s;
    }
  }
  // Appends never go to an evicted segment (the tier never evicts the active one).
  if (!log->segments_.empty() && evicted.count(log->segments_.back().first_position)) {
    if (Status s = log->add_segment(log->next_position()); !s) return s;
  }
  if (log->segments_.empty()) {
    if (Status s = log->add_segment(base_position); !s) return s;
  }
  *out = std::move(log);
  return Status::ok();
}

Status StreamLog::recover_segment(size_t seg_index, bool last, const FrameVisitor& visitor,
                                  RecoveryStats* stats) {
  Segment& seg = segments_[seg_index];
  std::string buf(seg.size, '\0');
  size_t got = 0;
  if (Status s = seg.file->pread(buf.data(), buf.size(), 0, &got); !s) return s;
  buf.resize(got);
  size_t pos = 0;
  DecodedFrame f;
  while (pos < buf.size()) {
    DecodeResult r = decode_frame(std::string_view(buf).substr(pos), &f);
    if (r != DecodeResult::kOk || f.meta.first_position != next_position()) break;
    for (auto [off, len] : f.messages) {
      index_.push_back(Loc{static_cast<uint32_t>(seg_index), len, pos + off});
      bytes_ += len;
    }
    visitor(f.meta, static_cast<uint32_t>(f.messages.size()));
    ++stats->frames;
    pos += f.total_size;
  }
  if (pos < seg.size && !last) {
    // A sealed segment was synced whole before the next one was created, so a frame that does
    // not decode here is damage, not a torn write: the frames after it, and the later segments,
    // hold acknowledged events. Refuse rather than truncate (which would also let new appends
    // reuse their positions).
    return Status::corruption(dir_ + ": damaged log: segment " + seg.path + " has a frame at byte " +
                              std::to_string(pos) + " of " + std::to_string(seg.size) +
                              " that does not decode, and later segments follow; the stream is "
                              "left as it is — restore its directory from a backup or the bucket");
  }
  if (pos < seg.size) {
    // Torn tail of the active segment: that frame was never acknowledged (acks follow
    // fdatasync), so drop it.
    stats->truncated_bytes += seg.size - pos;
    if (Status s = seg.file->truncate(pos); !s) return s;
    if (Status s = seg.file->datasync(); !s) return s;
    seg.size = pos;
  }
  return Status::ok();
}

Status StreamLog::recover_from_summary(size_t seg_index, const std::string& summary,
                                       const FrameVisitor& visitor, RecoveryStats* stats) {
  SegmentSummary sum;
  if (Status s = SegmentSummary::decode(summary, &sum); !s) return s;
  uint64_t pos = 0;
  for (const auto& f : sum.frames) {
    if (f.meta.first_position != next_position()) {
      return Status::corruption("segment summary does not continue the log");
    }
    for (auto [off, len] : f.messages) {
      index_.push_back(Loc{static_cast<uint32_t>(seg_index), len, pos + off});
      bytes_ += len;
    }
    visitor(f.meta, static_cast<uint32_t>(f.messages.size()));
    ++stats->frames;
    pos += f.total_size;
  }
  return Status::ok();
}

Status StreamLog::add_segment(uint64_t first_position) {
  std::unique_ptr<File> file;
  std::string path = segment_path(first_position);
  if (Status s = fs_->open(path, &file); !s) return s;
  if (Status s = file->truncate(0); !s) return s;
  if (Status s = fs_->sync_dir(dir_); !s) return s;
  segments_.push_back(Segment{first_position, std::move(file), 0, std::move(path)});
  return Status::ok();
}

StreamLog::Mark StreamLog::mark() const {
  return Mark{next_position(), segments_.size(), segments_.back().size};
}

Status StreamLog::rollback(const Mark& m) {
  while (segments_.size() > m.segments) {
    uint64_t first = segments_.back().first_position;
    segments_.pop_back();
    fs_->remove_all(segment_path(first));
  }
  Segment& seg = segments_.back();
  if (Status s = seg.file->truncate(m.active_size); !s) return s;
  seg.size = m.active_size;
  while (next_position() > m.next_position) {
    bytes_ -= index_.back().length;
    index_.pop_back();
  }
  return Status::ok();
}

Status StreamLog::append(FrameMeta meta, const std::vector<std::string_view>& messages,
                         Appended* appended) {
  if (segments_.back().size >= options_.segment_bytes) {
    // Roll: make the full segment durable first so that the group commit, which syncs only the
    // active file, covers every unsynced frame.
    if (Status s = segments_.back().file->datasync(); !s) return s;
    if (Status s = add_segment(next_position()); !s) return s;
  }
  meta.first_position = next_position();
  scratch_.clear();
  encode_frame(meta, messages, &scratch_);
  Segment& seg = segments_.back();
  if (Status s = seg.file->pwrite(scratch_.data(), scratch_.size(), seg.size); !s) {
    seg.file->truncate(seg.size);  // best effort: never leave a partial frame behind
    return s;
  }
  // Index the messages: their bytes follow the frame's metadata, so decode offsets from it.
  size_t at = kFrameHeaderSize + 1 + 8 + 4 + 8;
  if (meta.producer) at += 4 + meta.producer->id.size() + 16;
  if (meta.stream_seq) at += 4 + meta.stream_seq->size();
  uint32_t seg_index = static_cast<uint32_t>(segments_.size() - 1);
  for (auto m : messages) {
    at += 4;
    index_.push_back(Loc{seg_index, static_cast<uint32_t>(m.size()), seg.size + at});
    at += m.size();
    bytes_ += m.size();
  }
  if (appended != nullptr) *appended = Appended{seg.size, scratch_};
  seg.size += scratch_.size();
  return Status::ok();
}

std::shared_ptr<File> StreamLog::active_file() const { return segments_.back().file; }

uint32_t StreamLog::message_size(uint64_t position) const {
  return index_[position - base_].length;
}

Status StreamLog::read(uint64_t from, uint64_t to, size_t max_bytes,
                       std::vector<std::string>* out) const {
  MessageBatch batch;
  plan_read(from, to, max_bytes, &batch);
  if (Status s = batch.load(); !s) return s;
  out->reserve(out->size() + batch.size());
  for (size_t i = 0; i < batch.size(); ++i) out->emplace_back(batch[i]);
  return Status::ok();
}

}  // namespace ds

namespace ds {

void StreamLog::plan_read(uint64_t from, uint64_t to, size_t max_bytes, MessageBatch* out) const {
  to = std::min(to, next_position());
  if (from < base_) from = base_;
  size_t total = 0;
  uint64_t p = from;
  while (p < to) {
    const Loc& first = index_[p - base_];
    uint64_t q = p;
    uint64_t end = first.offset;
    size_t run_bytes = 0;
    while (q < to) {
      const Loc& l = index_[q - base_];
      if (l.segment != first.segment) break;
      if ((q > p || total > 0) && total + run_bytes + l.length > max_bytes) break;
      run_bytes += l.length;
      end = l.offset + l.length;
      ++q;
    }
    if (q == p) break;  // the next message alone would pass the budget
    size_t at = out->add_run(segments_[first.segment].file, first.offset, end - first.offset);
    out->reserve_messages(q - p);
    for (uint64_t i = p; i < q; ++i) {
      const Loc& l = index_[i - base_];
      out->add_message(at + (l.offset - first.offset), l.length);
    }
    total += run_bytes;
    p = q;
    if (total >= max_bytes) break;
  }
}

}  // namespace ds
