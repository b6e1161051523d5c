#include "search/text_view.h"

#include <xapian.h>

#include <algorithm>

#include "search/posting_cache.h"

namespace ds {

size_t PostingList::seek(size_t from, uint32_t did) const {
  if (from >= size || data[from].did >= did) return from;
  // Gallop: data[lo].did < did; widen until data[hi].did >= did or the end.
  size_t lo = from, step = 1, hi = from + 1;
  while (hi < size && data[hi].did < did) {
    lo = hi;
    step *= 2;
    hi = lo + step;
  }
  hi = std::min(hi, size);
  const TextPosting* p = std::lower_bound(
      data + lo + 1, data + hi, did, [](const TextPosting& x, uint32_t d) { return x.did < d; });
  return static_cast<size_t>(p - data);
}

void TextView::decode(const std::string& term, uint32_t above,
                      const std::function<void(const TextPosting&)>& f) const {
  for (const auto& seg : segments_) {
    if (seg->last_doc() <= above) continue;
    TextSegment::Postings p;
    if (!seg->postings(term, &p)) continue;
    while (p.next()) {
      uint32_t did = p.doc();
      if (did <= above || !live(did)) continue;
      f(TextPosting{did, p.wdf()});
    }
    if (p.error()) {
      // Segments are checked whole when opened; this is not expected. The search fails (500)
      // rather than answer from part of a list.
      throw Xapian::DatabaseCorruptError("text segment: cannot decode the postings of " + term);
    }
  }
}

uint64_t TextView::df_bound(const std::string& term) const {
  uint64_t n = 0;
  for (const auto& seg : segments_) {
    TextSegment::Postings p;
    if (seg->postings(term, &p)) n += p.df();
  }
  return n;
}

PostingList TextView::postings(const std::string& term) const {
  std::lock_guard lk(mu_);
  auto found = lists_.find(term);
  if (found != lists_.end()) return found->second;
  std::optional<PostingList> cached;
  if (cache_ != nullptr) cached = cache_->get(*this, term);
  PostingList l;
  if (cached) {
    l = std::move(*cached);
  } else {
    auto list = std::make_shared<std::vector<TextPosting>>();
    uint32_t max_wdf = 0;
    decode(term, 0, [&](const TextPosting& p) {
      list->push_back(p);
      max_wdf = std::max(max_wdf, p.wdf);
    });
    l.data = list->data();
    l.size = list->size();
    l.max_wdf = max_wdf;
    l.owner = std::move(list);
  }
  lists_.emplace(term, l);
  return l;
}

}  // namespace ds
