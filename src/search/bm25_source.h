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
// Exact-form bonus: with a `bonus` term (the unstemmed word of a stemmed term), a document that
// also contains the bonus term gets `bonus_factor` × the bonus term's own BM25 weight added. This
// is the weight OP_AND_MAYBE(term, OP_SCALE_WEIGHT(bonus, factor)) gives, computed in one
// source: the bonus term's postings are only looked up for documents the term matches.
//
// With a PostingCache, the term's and the bonus term's postings are read from the cache where it
// serves them (frequent terms), else from Xapian: the same postings either way (posting_cache.h),
// so the same weights and results.
//
// Use with Xapian::Query(source->release()); the view must cover every document of the database
// the query runs on (DocLengths::update() with the same handle).
#pragma once

#include <xapian.h>

#include <optional>
#include <string>

#include "search/doc_lengths.h"
#include "search/posting_cache.h"

namespace ds {

class Bm25Source final : public Xapian::PostingSource {
 public:
  Bm25Source(std::string term, double k1, double b, DocLengths::View lengths,
             std::string bonus = "", double bonus_factor = 0, PostingCache* cache = nullptr);

  void init(const Xapian::Database& db) override;
  Xapian::doccount get_termfreq_min() const override { return main_.termfreq; }
  Xapian::doccount get_termfreq_est() const override { return main_.termfreq; }
  Xapian::doccount get_termfreq_max() const override { return main_.termfreq; }
  void next(double min_wt) override;
  void skip_to(Xapian::docid did, double min_wt) override;
  bool at_end() const override { return list_ ? pos_ >= list_->size() : it_ == end_; }
  Xapian::docid get_docid() const override { return list_ ? (*list_)[pos_].did : *it_; }
  double get_weight() const override;
  Xapian::PostingSource* clone() const override;
  std::string name() const override { return "ds::Bm25Source"; }
  std::string get_description() const override;

 private:
  // One term's BM25 parameters in one database.
  struct Term {
    Xapian::doccount termfreq = 0;
    double idf_k1 = 0;  // idf × (k1 + 1)
    double max = 0;     // upper bound of the weight
    // Sets up `term` in `db`; false when no document contains it.
    bool init(const Xapian::Database& db, const std::string& term, double k1, double len_const,
              double len_per);
  };
  double weight(const Term& t, double wdf, Xapian::docid did) const;

  const std::string term_;
  const double k1_;
  const double b_;
  const DocLengths::View lengths_;
  const std::string bonus_;
  const double bonus_factor_;
  PostingCache* const cache_;
  // The term's postings: the cached list when the cache serves it, else Xapian's iterator.
  std::optional<PostingCache::List> list_;
  size_t pos_ = 0;
  Xapian::PostingIterator it_;
  Xapian::PostingIterator end_;
  bool started_ = false;
  double len_const_ = 0;  // k1 × (1 - b)
  double len_per_ = 0;    // k1 × b / average length
  Term main_;
  Term extra_;
  bool has_bonus_ = false;
  // Only move forward, to the documents get_weight() is asked about.
  std::optional<PostingCache::List> bonus_list_;
  mutable size_t bonus_pos_ = 0;
  mutable Xapian::PostingIterator bonus_it_;
  Xapian::PostingIterator bonus_end_;
};

}  // namespace ds
