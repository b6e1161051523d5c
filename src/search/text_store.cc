#include "search/text_store.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <set>

#include <spdlog/spdlog.h>

namespace ds {

namespace fs = std::filesystem;

namespace {

constexpr const char* kSuffix = ".seg";
// A builder that indexed fewer documents than this in its last batch is freed after the flush:
// its dictionary (stem cache) is only worth its memory for busy tenants.
constexpr size_t kKeepBuilderDocs = 1000;

// A segment's level: log base kMergeFactor of its document count.
double level(uint32_t docs) {
  return std::log(static_cast<double>(std::max<uint32_t>(docs, 1))) /
         std::log(static_cast<double>(TextStore::kMergeFactor));
}

}  // namespace

bool TextStore::pick_merge(const std::vector<std::shared_ptr<const TextSegment>>& segs,
                           size_t* first, uint64_t max_bytes) {
  // Segments of max_bytes or more are never merged: they split the list into ranges merged on
  // their own. In a range, levels from the oldest segment on: the run up to the newest segment
  // whose level is within 0.75 of the largest remaining level forms one level (smaller segments
  // in between belong to it); within a level, kMergeFactor segments in a row are merged when
  // they add up to at most max_bytes. The same rules as Lucene's LogMergePolicy (with its
  // maximum merge size), so that batches of mixed sizes (timer-cut, cut early for a waiting
  // search) are merged as well as uniform ones.
  const size_t n = segs.size();
  for (size_t lo = 0; lo < n;) {
    if (segs[lo]->bytes() >= max_bytes) {
      ++lo;
      continue;
    }
    size_t hi = lo;  // the range [lo, hi)
    while (hi < n && segs[hi]->bytes() < max_bytes) ++hi;
    for (size_t start = lo; start < hi;) {
      double max_level = 0;
      for (size_t i = start; i < hi; ++i) max_level = std::max(max_level, level(segs[i]->docs()));
      double bottom = max_level <= 0.75 ? -1 : max_level - 0.75;
      size_t upto = hi - 1;
      while (upto > start && level(segs[upto]->docs()) < bottom) --upto;
      for (size_t g = start; g + kMergeFactor <= upto + 1; g += kMergeFactor) {
        uint64_t bytes = 0;
        for (size_t i = g; i < g + kMergeFactor; ++i) bytes += segs[i]->bytes();
        if (bytes <= max_bytes) {
          *first = g;
          return true;
        }
      }
      start = upto + 1;
    }
    lo = hi;
  }
  return false;
}

std::vector<uint64_t> TextStore::parse_manifest(const std::string& manifest) {
  std::vector<uint64_t> out;
  const char* p = manifest.data();
  const char* end = p + manifest.size();
  while (p < end) {
    while (p < end && *p == ' ') ++p;
    uint64_t v = 0;
    auto r = std::from_chars(p, end, v);
    if (r.ec != std::errc()) break;
    out.push_back(v);
    p = r.ptr;
  }
  return out;
}

std::string TextStore::format_manifest(const std::vector<uint64_t>& numbers) {
  std::string out;
  for (uint64_t n : numbers) {
    if (!out.empty()) out.push_back(' ');
    out += std::to_string(n);
  }
  return out;
}

std::string TextStore::path_of(uint64_t number) const {
  return dir_ + "/" + std::to_string(number) + kSuffix;
}

Status TextStore::open(const std::string& manifest) {
  committed_ = parse_manifest(manifest);
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) return Status::io_error("cannot create " + dir_ + ": " + ec.message());
  std::set<uint64_t> listed(committed_.begin(), committed_.end());
  next_number_ = listed.empty() ? 1 : *listed.rbegin() + 1;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    std::string name = entry.path().filename().string();
    uint64_t n = 0;
    auto r = std::from_chars(name.data(), name.data() + name.size(), n);
    bool ours = r.ec == std::errc() && std::string_view(r.ptr) == kSuffix;
    if (ours) next_number_ = std::max(next_number_, n + 1);
    if (!ours || !listed.count(n)) {
      // A crash between writing a file and the commit that lists it (or removing one a commit
      // dropped), or a temporary file.
      fs::remove(entry.path(), ec);
    }
  }
  // Every listed segment is opened (and its checksum verified) now: a damaged or missing one
  // makes the caller rebuild the tenant's index, rather than fail searches later.
  std::vector<std::shared_ptr<const TextSegment>> all;
  if (Status s = segments(manifest, &all); !s) return s;
  for (const auto& seg : all) next_doc_ = std::max(next_doc_, seg->last_doc() + 1);
  return Status::ok();
}

uint32_t TextStore::add(uint32_t did, std::string_view text) {
  if (!builder_) builder_ = std::make_unique<SegmentBuilder>();
  next_doc_ = std::max(next_doc_, did + 1);
  return builder_->add(did, text);
}

void TextStore::discard() {
  if (builder_) builder_->clear();
}

Status TextStore::flush(std::string* manifest) {
  std::vector<uint64_t> list = committed_;
  if (pending()) {
    uint64_t n = next_number_++;
    size_t docs = builder_->docs();
    if (Status s = builder_->write(path_of(n), sync_); !s) {
      builder_->clear();
      return s;  // a finished merge stays for the next flush
    }
    if (docs < kKeepBuilderDocs) builder_.reset();
    list.push_back(n);
  }
  if (merge_done()) {
    wait_merge();
    std::unique_ptr<Merge> m = std::move(merge_);
    auto at = std::search(list.begin(), list.end(), m->inputs.begin(), m->inputs.end());
    if (m->status && at != list.end()) {
      // The inputs are still listed, in a row (only merges remove segments, one at a time): the
      // merged file takes their place.
      at = list.erase(at, at + static_cast<std::ptrdiff_t>(m->inputs.size()));
      list.insert(at, m->output);
    } else {
      std::error_code ec;
      fs::remove(path_of(m->output), ec);
    }
  }
  *manifest = format_manifest(list);
  return Status::ok();
}

void TextStore::start_merge(std::function<bool(uint32_t did)> keep) {
  if (merge_ || committed_.size() < kMergeFactor) return;
  std::vector<std::shared_ptr<const TextSegment>> segs;
  if (Status s = segments(format_manifest(committed_), &segs); !s) {
    spdlog::warn("text segments {}: cannot merge: {}", dir_, s.message());
    return;
  }
  size_t first = 0;
  if (!pick_merge(segs, &first)) return;
  const auto from = static_cast<std::ptrdiff_t>(first);
  const auto to = from + static_cast<std::ptrdiff_t>(kMergeFactor);
  auto m = std::make_unique<Merge>();
  m->inputs.assign(committed_.begin() + from, committed_.begin() + to);
  m->output = next_number_++;
  std::vector<std::shared_ptr<const TextSegment>> in(segs.begin() + from, segs.begin() + to);
  Merge* raw = m.get();
  const std::string path = path_of(m->output);
  const bool sync = sync_;
  m->thread = std::thread([raw, in = std::move(in), keep = std::move(keep), path, sync] {
    auto start = std::chrono::steady_clock::now();
    uint64_t docs = 0;
    for (const auto& seg : in) docs += seg->docs();
    Status s = merge_segments(in, keep, path, sync);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (s) {
      spdlog::debug("text segments: merged {} segments ({} documents) into {} in {:.3f} s",
                    in.size(), docs, path, secs);
    } else {
      spdlog::warn("text segments: merge into {} failed: {}", path, s.message());
    }
    std::lock_guard lk(raw->mu);
    raw->status = s;
    raw->done = true;
  });
  merge_ = std::move(m);
}

bool TextStore::merge_done() const {
  if (!merge_) return false;
  std::lock_guard lk(merge_->mu);
  return merge_->done;
}

void TextStore::wait_merge() {
  if (merge_ && merge_->thread.joinable()) merge_->thread.join();
}

TextStore::~TextStore() { wait_merge(); }

void TextStore::commit_unknown() {
  // Whether the list is in the database is not known: remove nothing (open() removes what no
  // commit lists), keep the committed state, drop the batch (the caller redoes it).
  discard();
}

void TextStore::committed(const std::string& manifest, bool ok) {
  std::vector<uint64_t> now = parse_manifest(manifest);
  const std::vector<uint64_t>& gone_from = ok ? committed_ : now;
  const std::set<uint64_t> keep_set(ok ? now.begin() : committed_.begin(),
                                    ok ? now.end() : committed_.end());
  std::error_code ec;
  for (uint64_t n : gone_from) {
    if (keep_set.count(n)) continue;
    // Readers that opened it keep their mapping; no reader opens it again: every search reads
    // the manifest of the latest commit (the revision gate keeps commits and searches apart).
    fs::remove(path_of(n), ec);
    if (ec) spdlog::warn("text segment {}: cannot remove: {}", path_of(n), ec.message());
  }
  {
    std::lock_guard lk(mu_);
    for (uint64_t n : gone_from) {
      if (!keep_set.count(n)) open_.erase(n);
    }
  }
  if (ok) {
    committed_ = std::move(now);
  } else {
    discard();
  }
}

Status TextStore::segments(const std::string& manifest,
                           std::vector<std::shared_ptr<const TextSegment>>* out) {
  out->clear();
  for (uint64_t n : parse_manifest(manifest)) {
    std::shared_ptr<const TextSegment> seg;
    {
      std::lock_guard lk(mu_);
      auto it = open_.find(n);
      if (it != open_.end()) seg = it->second;
    }
    if (!seg) {
      if (Status s = TextSegment::open(path_of(n), &seg); !s) return s;
      std::lock_guard lk(mu_);
      open_.emplace(n, seg);
    }
    out->push_back(std::move(seg));
  }
  return Status::ok();
}

}  // namespace ds
