#include "store/segment_cache.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <spdlog/spdlog.h>

namespace ds {

namespace {

int64_t now_ticks() {
  return std::chrono::steady_clock::now().time_since_epoch().count();
}

std::string summary_path_of(const std::string& segment_path) {
  return segment_path.substr(0, segment_path.size() - 4) + ".sum";
}

Status read_all(Fs* fs, const std::string& path, std::string* out) {
  std::unique_ptr<File> f;
  if (Status s = fs->open(path, &f); !s) return s;
  uint64_t size = 0;
  if (Status s = f->size(&size); !s) return s;
  out->resize(size);
  size_t got = 0;
  if (Status s = f->pread(out->data(), size, 0, &got); !s) return s;
  if (got != size) return Status::io_error("short read of " + path);
  return Status::ok();
}

// Writes `path` atomically and durably: temp file, fdatasync, rename, directory fsync.
Status write_durably(Fs* fs, const std::string& path, std::string_view data) {
  std::string tmp = path + ".tmp";
  {
    std::unique_ptr<File> f;
    if (Status s = fs->open(tmp, &f); !s) return s;
    if (Status s = f->truncate(0); !s) return s;
    if (Status s = f->pwrite(data.data(), data.size(), 0); !s) return s;
    if (Status s = f->datasync(); !s) return s;
  }
  if (Status s = fs->rename(tmp, path); !s) return s;
  return fs->sync_dir(std::filesystem::path(path).parent_path().string());
}

}  // namespace

struct SegmentCache::Slot {
  std::mutex mu;                   // serialises fetch and eviction of this segment
  std::atomic<int64_t> last_read{0};
  std::shared_ptr<File> fetched;   // the file rebuilt by a fetch (evicted-file readers use it)
};

class SegmentCache::TrackedFile : public File {
 public:
  TrackedFile(std::unique_ptr<File> f, std::shared_ptr<Slot> slot)
      : f_(std::move(f)), slot_(std::move(slot)) {}
  Status pwrite(const void* data, size_t n, uint64_t off) override {
    return f_->pwrite(data, n, off);
  }
  Status pread(void* data, size_t n, uint64_t off, size_t* got) const override {
    slot_->last_read.store(now_ticks(), std::memory_order_relaxed);
    return f_->pread(data, n, off, got);
  }
  Status datasync() override { return f_->datasync(); }
  Status truncate(uint64_t size) override { return f_->truncate(size); }
  Status size(uint64_t* out) const override { return f_->size(out); }

 private:
  std::unique_ptr<File> f_;
  std::shared_ptr<Slot> slot_;
};

class SegmentCache::EvictedFile : public File {
 public:
  EvictedFile(SegmentCache* cache, std::string path, std::shared_ptr<Slot> slot)
      : cache_(cache), path_(std::move(path)), slot_(std::move(slot)) {}
  Status pwrite(const void*, size_t, uint64_t) override {
    return Status::io_error("write to an evicted (sealed) segment");
  }
  Status pread(void* data, size_t n, uint64_t off, size_t* got) const override {
    slot_->last_read.store(now_ticks(), std::memory_order_relaxed);
    std::shared_ptr<File> f;
    {
      std::lock_guard lk(slot_->mu);
      if (!slot_->fetched) {
        if (Status s = cache_->fetch(slot_.get(), path_); !s) return s;
      }
      f = slot_->fetched;
    }
    return f->pread(data, n, off, got);
  }
  Status datasync() override { return Status::ok(); }  // nothing is ever written
  Status truncate(uint64_t) override {
    return Status::io_error("truncate of an evicted (sealed) segment");
  }
  Status size(uint64_t* out) const override {
    std::string bytes;
    if (Status s = read_all(cache_->base_, summary_path_of(path_), &bytes); !s) return s;
    SegmentSummary sum;
    if (Status s = SegmentSummary::decode(bytes, &sum); !s) return s;
    *out = sum.size;
    return Status::ok();
  }

 private:
  SegmentCache* cache_;
  std::string path_;
  std::shared_ptr<Slot> slot_;
};

SegmentCache::SegmentCache(Fs* base, uint64_t budget_bytes) : base_(base), budget_(budget_bytes) {}
SegmentCache::~SegmentCache() = default;

void SegmentCache::set_fetcher(Fetcher fetcher) {
  std::lock_guard lk(mu_);
  fetcher_ = std::move(fetcher);
}

std::shared_ptr<SegmentCache::Slot> SegmentCache::slot(const std::string& segment_path) {
  std::lock_guard lk(mu_);
  auto& s = slots_[segment_path];
  if (!s) s = std::make_shared<Slot>();
  return s;
}

Status SegmentCache::open(const std::string& path, std::unique_ptr<File>* out) {
  std::unique_ptr<File> f;
  if (Status s = base_->open(path, &f); !s) return s;
  if (path.ends_with(".seg")) {
    *out = std::make_unique<TrackedFile>(std::move(f), slot(path));
  } else {
    *out = std::move(f);
  }
  return Status::ok();
}

Status SegmentCache::open_evicted(const std::string& segment_path, std::unique_ptr<File>* out) {
  *out = std::make_unique<EvictedFile>(this, segment_path, slot(segment_path));
  return Status::ok();
}

Status SegmentCache::remove_all(const std::string& path) {
  Status s = base_->remove_all(path);
  std::lock_guard lk(mu_);
  for (auto it = slots_.lower_bound(path); it != slots_.end() && it->first.starts_with(path);) {
    it = slots_.erase(it);
  }
  return s;
}

Status SegmentCache::fetch(Slot* slot, const std::string& segment_path) {
  // Another log of the same stream (or an earlier run) may have put the file back already.
  if (base_->exists(segment_path)) {
    std::unique_ptr<File> f;
    if (Status s = base_->open(segment_path, &f); !s) return s;
    slot->fetched = std::move(f);
    return Status::ok();
  }
  Fetcher fetcher;
  {
    std::lock_guard lk(mu_);
    fetcher = fetcher_;
  }
  auto fail = [&](const Status& s) {
    fetch_errors_++;
    spdlog::warn("cannot fetch evicted segment {}: {}", segment_path, s.message());
    return Status::unavailable("segment is in the S3 bucket only and cannot be fetched now (" +
                               s.message() + "); retry later");
  };
  if (!fetcher) return fail(Status::unavailable("the S3 tier is not running"));
  std::string bytes;
  if (Status s = read_all(base_, summary_path_of(segment_path), &bytes); !s) return fail(s);
  SegmentSummary sum;
  if (Status s = SegmentSummary::decode(bytes, &sum); !s) return fail(s);
  std::vector<std::string> messages;
  if (Status s = fetcher(sum, &messages); !s) return fail(s);
  std::string segment;
  if (Status s = sum.rebuild(messages, &segment); !s) return fail(s);
  if (Status s = write_durably(base_, segment_path, segment); !s) return fail(s);
  std::unique_ptr<File> f;
  if (Status s = base_->open(segment_path, &f); !s) return fail(s);
  slot->fetched = std::move(f);
  fetches_++;
  fetched_bytes_ += segment.size();
  resident_bytes_ += segment.size();
  return Status::ok();
}

Status SegmentCache::evict(const std::string& segment_path, uint64_t first, const LogDir& dir) {
  std::shared_ptr<Slot> s = slot(segment_path);
  std::lock_guard lk(s->mu);
  if (!base_->exists(segment_path)) return Status::ok();
  std::string sum_path = summary_path_of(segment_path);
  if (!base_->exists(sum_path)) {
    std::string bytes;
    if (Status st = read_all(base_, segment_path, &bytes); !st) return st;
    SegmentSummary sum;
    if (Status st = SegmentSummary::from_segment(bytes, first, &sum); !st) return st;
    sum.bucket_prefix = dir.bucket_prefix;
    sum.encoding = dir.encoding;
    std::string enc;
    sum.encode(&enc);
    if (Status st = write_durably(base_, sum_path, enc); !st) return st;
  }
  s->fetched.reset();
  if (Status st = base_->remove_all(segment_path); !st) return st;
  evictions_++;
  return Status::ok();
}

Status SegmentCache::enforce(const std::vector<LogDir>& dirs) {
  struct Candidate {
    int64_t last_read;
    std::string path;
    uint64_t first;
    uint64_t size;
    const LogDir* dir;
  };
  std::vector<Candidate> candidates;
  uint64_t total = 0;
  for (const auto& d : dirs) {
    std::vector<std::string> names;
    if (!base_->list(d.dir, &names)) continue;
    std::vector<std::pair<uint64_t, bool>> firsts;  // (first position, resident)
    for (const auto& n : names) {
      if (n.size() == 28 && n.ends_with(".tmp")) {
        // Left by a crash during a fetch or an eviction (both hold the slot while writing it).
        std::string seg = d.dir + "/" + n.substr(0, 20) + ".seg";
        std::shared_ptr<Slot> sl = slot(seg);
        std::lock_guard lk(sl->mu);
        base_->remove_all(d.dir + "/" + n);
        continue;
      }
      if (n.size() != 24 ||
          !std::all_of(n.begin(), n.begin() + 20, [](char c) { return c >= '0' && c <= '9'; })) {
        continue;
      }
      if (n.ends_with(".seg")) firsts.emplace_back(std::stoull(n.substr(0, 20)), true);
      if (n.ends_with(".sum")) firsts.emplace_back(std::stoull(n.substr(0, 20)), false);
    }
    std::sort(firsts.begin(), firsts.end());
    // Unique first positions, resident if any entry is.
    std::vector<std::pair<uint64_t, bool>> segs;
    for (auto& [f, r] : firsts) {
      if (!segs.empty() && segs.back().first == f) {
        segs.back().second = segs.back().second || r;
      } else {
        segs.emplace_back(f, r);
      }
    }
    for (size_t i = 0; i < segs.size(); ++i) {
      if (!segs[i].second) continue;
      char name[32];
      std::snprintf(name, sizeof name, "/%020llu.seg",
                    static_cast<unsigned long long>(segs[i].first));
      std::string path = d.dir + name;
      std::error_code ec;
      uint64_t size = std::filesystem::file_size(path, ec);
      if (ec) continue;
      total += size;
      if (i + 1 == segs.size()) continue;  // the active segment
      uint64_t end = segs[i + 1].first;
      if (end <= segs[i].first || end >= d.uploaded_next) continue;
      int64_t last = 0;
      {
        std::lock_guard lk(mu_);
        if (auto it = slots_.find(path); it != slots_.end()) last = it->second->last_read.load();
      }
      candidates.push_back(Candidate{last, std::move(path), segs[i].first, size, &d});
    }
  }
  Status result;
  if (budget_ > 0 && total > budget_) {
    std::sort(candidates.begin(), candidates.end(),
              [](const Candidate& a, const Candidate& b) { return a.last_read < b.last_read; });
    for (const auto& c : candidates) {
      if (total <= budget_) break;
      if (Status s = evict(c.path, c.first, *c.dir); !s) {
        spdlog::warn("cannot evict {}: {}", c.path, s.message());
        result = s;
        continue;
      }
      total -= c.size;
    }
  }
  resident_bytes_ = total;
  return result;
}

SegmentCache::Stats SegmentCache::stats() const {
  Stats s;
  s.resident_bytes = resident_bytes_.load();
  s.evictions = evictions_.load();
  s.fetches = fetches_.load();
  s.fetch_errors = fetch_errors_.load();
  s.fetched_bytes = fetched_bytes_.load();
  return s;
}

}  // namespace ds
