// match_conjunction: the best documents of an AND of ranked terms, matched directly on their
// Bm25Source leaves instead of through Xapian's matcher.
//
// Guarantee: the documents, weights and order are those Xapian's Enquire gives for
// OP_AND(sources…) with BM25Weight, restricted to document ids [lo, hi] — every document in all
// the sources' lists, weighted by the sum of their get_weight(), ranked by weight, then document
// id — except that the sum runs over the sources in ascending term frequency order, which is
// Xapian's order too but for ties between equal frequencies (a difference in the last bit of a
// weight at most). `total` is the exact number of matching documents, where Xapian estimates
// above its check-at-least. Tested against Xapian (search_conjunction_test.cc).
//
// Why: with two or three frequent words the match is a leapfrog over decoded posting lists (the
// posting cache) where Xapian's matcher spent most of a search's time in virtual calls per
// posting and its own bookkeeping (perf, 1M events: docs/search.md).
#pragma once

#include <xapian.h>

#include <cstddef>
#include <vector>

#include "search/bm25_source.h"

namespace ds {

struct RankedDoc {
  double weight = 0;
  Xapian::docid did = 0;
};

// Xapian's result order: weight descending, then document id ascending.
inline bool ranks_before(const RankedDoc& a, const RankedDoc& b) {
  return a.weight != b.weight ? a.weight > b.weight : a.did < b.did;
}

// `sources` are init()ed on the database the documents come from and not yet positioned; they
// are consumed (positioned to the end). Appends the best `count` documents to `out` in rank
// order and returns the number of matches in [lo, hi] (hi 0: no upper bound).
Xapian::doccount match_conjunction(const std::vector<Bm25Source*>& sources, Xapian::docid lo,
                                   Xapian::docid hi, size_t count, std::vector<RankedDoc>* out);

}  // namespace ds
