// Bm25Source: one query term, weighted with BM25, as a Xapian posting source.
//
// Guarantee: for every document the term matches, the weight equals what Xapian's
// BM25Weight(k1, k2 = 0, k3 = 1, b, min_normlen = 0) gives that term at query-term frequency 1
// (tested against it), and get_maxweight() is the same upper bound Xapian uses. The only
// difference is where document lengths come from: a DocLengths view (an array) instead of
// Xapian's document-length list, which is what makes long posting lists cheap to score (see
// doc_lengths.h).
//
// The formula (Xapian 1.4, no relevance set): with N documents, n of them containing the term,
//   idf = log(t) where t = (N - n + 0.5) / (n + 0.5), and t < 2 is mapped to t / 2 + 1 (so the
//         weight stays positive for terms in most documents);
//   weight = idf × (k1 + 1) × wdf / (k1 × ((1 - b) + b × length / average length) + wdf).
//
// Use with Xapian::Query(source->release()); the view must cover every document of the database
// the query runs on (DocLengths::update() with the same handle).
#pragma once

#include <xapian.h>

#include <string>

#include "search/doc_lengths.h"

namespace ds {

class Bm25Source final : public Xapian::PostingSource {
 public:
  Bm25Source(std::string term, double k1, double b, DocLengths::View lengths);

  void init(const Xapian::Database& db) override;
  Xapian::doccount get_termfreq_min() const override { return termfreq_; }
  Xapian::doccount get_termfreq_est() const override { return termfreq_; }
  Xapian::doccount get_termfreq_max() const override { return termfreq_; }
  void next(double min_wt) override;
  void skip_to(Xapian::docid did, double min_wt) override;
  bool at_end() const override { return it_ == end_; }
  Xapian::docid get_docid() const override { return *it_; }
  double get_weight() const override;
  Xapian::PostingSource* clone() const override;
  std::string name() const override { return "ds::Bm25Source"; }
  std::string get_description() const override { return "Bm25Source(" + term_ + ")"; }

 private:
  const std::string term_;
  const double k1_;
  const double b_;
  const DocLengths::View lengths_;
  Xapian::PostingIterator it_;
  Xapian::PostingIterator end_;
  bool started_ = false;
  Xapian::doccount termfreq_ = 0;
  double idf_k1_ = 0;     // idf × (k1 + 1)
  double len_const_ = 0;  // k1 × (1 - b)
  double len_per_ = 0;    // k1 × b / average length
};

}  // namespace ds
