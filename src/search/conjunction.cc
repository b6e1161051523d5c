#include "search/conjunction.h"

#include <algorithm>
#include <queue>

namespace ds {

Xapian::doccount match_conjunction(const std::vector<Bm25Source*>& sources, Xapian::docid lo,
                                   Xapian::docid hi, size_t count, std::vector<RankedDoc>* out) {
  if (sources.empty()) return 0;
  std::vector<Bm25Source*> s = sources;
  // The rarest term leads; weights are summed in this order, as Xapian's AND does.
  std::stable_sort(s.begin(), s.end(), [](const Bm25Source* a, const Bm25Source* b) {
    return a->get_termfreq_est() < b->get_termfreq_est();
  });
  for (Bm25Source* src : s) {
    if (src->get_termfreq_est() == 0) return 0;
  }
  // The `count` best so far, the worst on top.
  std::priority_queue<RankedDoc, std::vector<RankedDoc>, decltype(&ranks_before)> best(ranks_before);
  Xapian::doccount total = 0;
  const size_t n = s.size();
  Bm25Source* lead = s[0];
  lead->skip_to(std::max<Xapian::docid>(lo, 1), 0);
  bool exhausted = false;
  while (!exhausted && !lead->at_end()) {
    const Xapian::docid did = lead->get_docid();
    if (hi != 0 && did > hi) break;
    bool all = true;
    for (size_t i = 1; i < n; ++i) {
      s[i]->skip_to(did, 0);
      if (s[i]->at_end()) {
        exhausted = true;
        all = false;
        break;
      }
      Xapian::docid next = s[i]->get_docid();
      if (next != did) {
        lead->skip_to(next, 0);  // next > did: no document before it is in every list
        all = false;
        break;
      }
    }
    if (!all) continue;
    ++total;
    if (count > 0) {
      double w = 0;
      for (Bm25Source* src : s) w += src->get_weight();
      RankedDoc d{w, did};
      if (best.size() < count) {
        best.push(d);
      } else if (ranks_before(d, best.top())) {
        best.pop();
        best.push(d);
      }
    }
    lead->next(0);
  }
  size_t at = out->size();
  out->resize(at + best.size());
  for (size_t k = out->size(); k > at; --k) {
    (*out)[k - 1] = best.top();
    best.pop();
  }
  return total;
}

}  // namespace ds
