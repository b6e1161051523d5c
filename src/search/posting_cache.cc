#include "search/posting_cache.h"

#include <algorithm>
#include <cstring>

namespace ds {

size_t PostingCache::List::seek(size_t from, Xapian::docid did) const {
  if (from >= size_ || data_[from].did >= did) return from;
  // Gallop: find a step where the id is ≥ did, then binary-search the last step.
  size_t lo = from, step = 1;
  size_t hi = from + step;
  while (hi < size_ && data_[hi].did < did) {
    lo = hi;
    step *= 2;
    hi = from + step;
  }
  if (hi > size_) hi = size_;
  // data_[lo].did < did; the answer is in (lo, hi].
  const Posting* p = std::lower_bound(data_ + lo + 1, data_ + hi, did,
                                      [](const Posting& x, Xapian::docid d) { return x.did < d; });
  return static_cast<size_t>(p - data_);
}

std::optional<PostingCache::List> PostingCache::get(const Xapian::Database& db,
                                                    const std::string& term,
                                                    Xapian::doccount termfreq) {
  if (budget_->limit() == 0 || termfreq < min_termfreq_ ||
      static_cast<size_t>(termfreq) * sizeof(Posting) > budget_->limit()) {
    return std::nullopt;
  }
  std::lock_guard lk(mu_);
  std::string uuid = db.get_uuid();
  Xapian::docid last = db.get_lastdocid();
  Xapian::docid deleted = last - db.get_doccount();
  if (uuid != uuid_ || deleted > deleted_) {
    // A new database, or documents were deleted since the lists were read: start over.
    slots_.clear();
    sub_bytes_locked(bytes_);
    seen_.clear();
    uuid_ = std::move(uuid);
    deleted_ = deleted;
  } else if (deleted < deleted_) {
    return std::nullopt;  // an older handle: it still has documents the lists no longer hold
  }
  auto found = slots_.find(term);
  if (found == slots_.end()) {
    // Admission: a term is cached from its second request on, so that a stream of one-off
    // words does not pay for reading whole lists (and evicting useful ones) for nothing.
    if (seen_.insert(term).second) {
      if (seen_.size() > kMaxSeen) seen_.clear();
      return std::nullopt;
    }
    found = slots_.emplace(term, Slot{}).first;
  }
  Slot& s = found->second;
  s.used = ++clock_;
  if (last > s.upto) {
    // Read the postings added since into the slots past `size` (Lists handed out cannot see
    // them); a full array is replaced by a bigger copy (those Lists keep the old one). Published
    // only once complete, so a Xapian exception half-way leaves the slot as it was.
    Xapian::PostingIterator it = db.postlist_begin(term);
    Xapian::PostingIterator end = db.postlist_end(term);
    if (s.upto > 0) it.skip_to(s.upto + 1);
    size_t n = s.size;
    for (; it != end; ++it) {
      if (n == s.cap) {
        size_t cap = std::max<size_t>({64, s.cap + s.cap / 2, static_cast<size_t>(termfreq)});
        std::shared_ptr<Posting[]> bigger(new Posting[cap]);
        if (n > 0) std::memcpy(bigger.get(), s.data.get(), n * sizeof(Posting));
        add_bytes_locked((cap - s.cap) * sizeof(Posting));
        s.data = std::move(bigger);
        s.cap = cap;
      }
      s.data[n++] = Posting{*it, it.get_wdf()};
    }
    s.size = n;
    s.upto = last;
    evict_locked(term);
  }
  List l;
  l.owner_ = s.data;
  l.data_ = s.data.get();
  l.size_ = s.size;
  if (s.upto > last) {
    // An older handle (same deletions): only the postings it can see.
    l.size_ = static_cast<size_t>(
        std::upper_bound(l.data_, l.data_ + l.size_, last,
                         [](Xapian::docid d, const Posting& x) { return d < x.did; }) -
        l.data_);
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
    sub_bytes_locked(victim->second.cap * sizeof(Posting));
    slots_.erase(victim);
  }
}

size_t PostingCache::bytes() const {
  std::lock_guard lk(mu_);
  return bytes_;
}

}  // namespace ds
