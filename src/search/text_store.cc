#include "search/text_store.h"

#include <algorithm>
#include <charconv>
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

unsigned size_class(uint32_t docs) {
  unsigned c = 0;
  for (uint64_t d = std::max<uint32_t>(docs, 1); d >= TextStore::kMergeFactor;
       d /= TextStore::kMergeFactor) {
    ++c;
  }
  return c;
}

}  // namespace

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
  return segments(manifest, &all);
}

uint32_t TextStore::add(uint32_t did, std::string_view text) {
  if (!builder_) builder_ = std::make_unique<SegmentBuilder>();
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
      return s;
    }
    if (docs < kKeepBuilderDocs) builder_.reset();
    list.push_back(n);
  }
  *manifest = format_manifest(list);
  return Status::ok();
}

Status TextStore::plan_merge(const std::function<bool(uint32_t did)>& keep,
                             std::string* manifest, bool* planned) {
  *planned = false;
  if (committed_.size() < kMergeFactor) return Status::ok();
  std::vector<std::shared_ptr<const TextSegment>> segs;
  if (Status s = segments(format_manifest(committed_), &segs); !s) return s;
  const size_t first = segs.size() - kMergeFactor;
  const unsigned cls = size_class(segs[first]->docs());
  for (size_t i = first + 1; i < segs.size(); ++i) {
    if (size_class(segs[i]->docs()) != cls) return Status::ok();
  }
  std::vector<std::shared_ptr<const TextSegment>> in(segs.begin() + static_cast<std::ptrdiff_t>(first),
                                                     segs.end());
  uint64_t n = next_number_++;
  if (Status s = merge_segments(in, keep, path_of(n), sync_); !s) return s;
  std::vector<uint64_t> list(committed_.begin(),
                             committed_.begin() + static_cast<std::ptrdiff_t>(first));
  list.push_back(n);
  *manifest = format_manifest(list);
  *planned = true;
  return Status::ok();
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
