#include "search/posting_cache.h"

#include <algorithm>
#include <cstring>

namespace ds {

std::optional<PostingList> PostingCache::get(const TextView& view, const std::string& term) {
  if (budget_->limit() == 0) return std::nullopt;
  const uint64_t docs = view.df_bound(term);
  if (docs < min_docs_ || docs * sizeof(TextPosting) > budget_->limit()) return std::nullopt;
  std::lock_guard lk(mu_);
  const uint64_t table = view.lengths().table();
  if (table > table_) {
    // Documents were deleted (or the database recreated) since the lists were read: start over.
    slots_.clear();
    sub_bytes_locked(bytes_);
    seen_.clear();
    table_ = table;
  } else if (table < table_) {
    return std::nullopt;  // an older view: it still has documents the lists no longer hold
  }
  auto found = slots_.find(term);
  if (found == slots_.end()) {
    // Admission: a word is cached from its second request on, so that a stream of one-off
    // words does not pay for copying whole lists (and evicting useful ones) for nothing.
    if (seen_.insert(term).second) {
      if (seen_.size() > kMaxSeen) seen_.clear();
      return std::nullopt;
    }
    found = slots_.emplace(term, Slot{}).first;
  }
  Slot& s = found->second;
  s.used = ++clock_;
  const uint32_t last = view.lengths().limit();
  if (last > s.upto) {
    // Decode the postings added since into the slots past `size` (Lists handed out cannot see
    // them); a full array is replaced by a bigger copy (those Lists keep the old one). Published
    // only once complete, so an exception half-way leaves the slot as it was.
    size_t n = s.size;
    uint32_t max_wdf = s.max_wdf;
    auto data = s.data;
    size_t cap = s.cap;
    view.decode(term, s.upto, [&](const TextPosting& p) {
      if (n == cap) {
        size_t bigger_cap = std::max<size_t>({64, cap + cap / 2, static_cast<size_t>(docs)});
        std::shared_ptr<TextPosting[]> bigger(new TextPosting[bigger_cap]);
        if (n > 0) std::memcpy(bigger.get(), data.get(), n * sizeof(TextPosting));
        data = std::move(bigger);
        cap = bigger_cap;
      }
      data[n++] = p;
      max_wdf = std::max(max_wdf, p.wdf);
    });
    if (cap != s.cap) {
      add_bytes_locked((cap - s.cap) * sizeof(TextPosting));
      s.data = std::move(data);
      s.cap = cap;
    }
    s.size = n;
    s.max_wdf = max_wdf;
    s.upto = last;
    evict_locked(term);
  }
  PostingList l;
  l.owner = s.data;
  l.data = s.data.get();
  l.size = s.size;
  l.max_wdf = s.max_wdf;
  if (s.upto > last) {
    // An older view (same deletions): only the postings it can see.
    l.size = static_cast<size_t>(
        std::upper_bound(l.data, l.data + l.size, last,
                         [](uint32_t d, const TextPosting& x) { return d < x.did; }) -
        l.data);
  }
  return l;
}

PostingCache::~PostingCache() {
  std::lock_guard lk(mu_);
  sub_bytes_locked(bytes_);
}

void PostingCache::add_bytes_locked(size_t n) {
  bytes_ += n;
  budget_->used_.fetch_add(n, std::memory_order_relaxed);
}

void PostingCache::sub_bytes_locked(size_t n) {
  bytes_ -= n;
  budget_->used_.fetch_sub(n, std::memory_order_relaxed);
}

void PostingCache::evict_locked(const std::string& keep) {
  while (budget_->used() > budget_->limit() && slots_.size() > 1) {
    auto victim = slots_.end();
    for (auto it = slots_.begin(); it != slots_.end(); ++it) {
      if (it->first == keep) continue;
      if (victim == slots_.end() || it->second.used < victim->second.used) victim = it;
    }
    if (victim == slots_.end()) break;
    sub_bytes_locked(victim->second.cap * sizeof(TextPosting));
    slots_.erase(victim);
  }
}

size_t PostingCache::bytes() const {
  std::lock_guard lk(mu_);
  return bytes_;
}

}  // namespace ds
