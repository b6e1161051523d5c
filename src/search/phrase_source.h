// PhraseSource: a quoted phrase ("stripe webhook"), matched on the text postings' positions and
// weighted with BM25, as a Xapian posting source.
//
// Guarantee: the documents and weights Xapian gives OP_PHRASE(words, window = number of words)
// with BM25Weight(k1, k2 = 0, k3 = 1, b, min_normlen = 0) in a Xapian database holding the same
// documents indexed with TermGenerator: a live document matches when the words occur at
// consecutive positions in this order, and its weight is the sum of each word's BM25 weight
// (from the word's own statistics and wdf, not the phrase's; a word twice in the phrase counts
// twice). Tested against Xapian in search_bm25_source_test.cc.
//
// init() finds every match at once (a walk over the words' postings in the view, reading
// positions only for documents that have all the words) and keeps (document, weight) pairs, so
// the term-frequency estimates are exact. Use with Xapian::Query(source->release()); the view
// must belong to the revision the query runs on and outlive the query.
#pragma once

#include <xapian.h>

#include <string>
#include <vector>

#include "search/text_view.h"

namespace ds {

class PhraseSource final : public Xapian::PostingSource {
 public:
  PhraseSource(std::vector<std::string> words, double k1, double b, const TextView* view);

  void init(const Xapian::Database& db) override;
  Xapian::doccount get_termfreq_min() const override { return count(); }
  Xapian::doccount get_termfreq_est() const override { return count(); }
  Xapian::doccount get_termfreq_max() const override { return count(); }
  void next(double min_wt) override;
  void skip_to(Xapian::docid did, double min_wt) override;
  bool at_end() const override { return pos_ >= matches_.size(); }
  Xapian::docid get_docid() const override { return matches_[pos_].did; }
  double get_weight() const override { return matches_[pos_].weight; }
  Xapian::PostingSource* clone() const override;
  std::string name() const override { return "ds::PhraseSource"; }
  std::string get_description() const override;

 private:
  struct Match {
    uint32_t did;
    double weight;
  };
  Xapian::doccount count() const { return static_cast<Xapian::doccount>(matches_.size()); }

  const std::vector<std::string> words_;
  const double k1_;
  const double b_;
  const TextView* const view_;
  std::vector<Match> matches_;
  size_t pos_ = 0;
  bool started_ = false;
};

}  // namespace ds
