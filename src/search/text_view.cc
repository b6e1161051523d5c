#include "search/text_view.h"

#include <xapian.h>

#include <algorithm>
#include <string>

namespace ds {

std::shared_ptr<const TermPostings> TextView::postings(const std::string& term) const {
  std::lock_guard lk(mu_);
  auto& slot = decoded_[term];
  if (slot) return slot;
  auto decoded = std::make_shared<TermPostings>();
  std::vector<TextPosting>* out = &decoded->list;
  uint32_t max_wdf = 0;
  for (const auto& seg : segments_) {
    TextSegment::Postings p;
    if (!seg->postings(term, &p)) continue;
    out->reserve(out->size() + p.df());
    while (p.next()) {
      uint32_t did = p.doc();
      if (!live(did)) continue;
      uint32_t wdf = p.wdf();
      out->push_back({did, wdf});
      max_wdf = std::max(max_wdf, wdf);
    }
    if (p.error()) {
      // Segments are checked whole when opened; this is not expected. The search fails (500)
      // rather than answer from part of a list.
      decoded_.erase(term);
      throw Xapian::DatabaseCorruptError("text segment: cannot decode the postings of " + term);
    }
  }
  decoded->max_wdf = max_wdf;
  slot = std::move(decoded);
  return slot;
}

}  // namespace ds
