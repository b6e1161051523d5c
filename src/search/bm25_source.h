// Bm25Source: one query term, weighted with BM25, as a Xapian posting source over the text
// postings (text_view.h).
//
// Guarantee: for every live document the term matches, the weight equals what Xapian's
// BM25Weight(k1, k2 = 0, k3 = 1, b, min_normlen = 0) gives that term at query-term frequency 1
// in a Xapian database holding the same documents indexed with TermGenerator (tested against it),
// and get_maxweight() bounds every weight. Term statistics come from the TextView (the number of
// live documents with the term), document counts and lengths from the Xapian revision the view
// belongs to (its documents' lengths are those of the text, doc_lengths.h).
//
// The formula is in bm25.h.
//
// Exact-form bonus: with a `bonus` term (the unstemmed word of a stemmed term), a document that
// also contains the bonus term gets `bonus_factor` × the bonus term's own BM25 weight added. This
// is the weight OP_AND_MAYBE(term, OP_SCALE_WEIGHT(bonus, factor)) gives, computed in one
// source.
//
// init() takes the term's (and the bonus term's) live postings from the view (from the posting
// cache, or decoded once per search). Use with Xapian::Query(source->release()); the view must belong to the
// revision of the database the query runs on, and outlive the query.
#pragma once

#include <xapian.h>

#include <string>
#include <vector>

#include "search/bm25.h"
#include "search/text_view.h"

namespace ds {

class Bm25Source final : public Xapian::PostingSource {
 public:
  Bm25Source(std::string term, double k1, double b, const TextView* view, std::string bonus = "",
             double bonus_factor = 0);

  void init(const Xapian::Database& db) override;
  Xapian::doccount get_termfreq_min() const override { return main_.termfreq; }
  Xapian::doccount get_termfreq_est() const override { return main_.termfreq; }
  Xapian::doccount get_termfreq_max() const override { return main_.termfreq; }
  void next(double min_wt) override;
  void skip_to(Xapian::docid did, double min_wt) override;
  bool at_end() const override { return pos_ >= main_.list.size; }
  Xapian::docid get_docid() const override { return main_.list[pos_].did; }
  double get_weight() const override;
  Xapian::PostingSource* clone() const override;
  std::string name() const override { return "ds::Bm25Source"; }
  std::string get_description() const override;

 private:
  // One term's postings and BM25 parameters in one revision.
  struct Term {
    PostingList list;
    Xapian::doccount termfreq = 0;
    double idf_k1 = 0;  // idf × (k1 + 1)
    double max = 0;     // upper bound of the weight
    // Reads `term`'s postings from `view` and sets up its parameters; false when no live
    // document contains it.
    bool init(const Xapian::Database& db, const TextView& view, const std::string& term,
              const Bm25& bm25);
  };
  double weight(const Term& t, double wdf, Xapian::docid did) const;

  const std::string term_;
  const double k1_;
  const double b_;
  const TextView* const view_;
  const std::string bonus_;
  const double bonus_factor_;
  size_t pos_ = 0;
  bool started_ = false;
  Bm25 bm25_;  // with this revision's average length, from init()
  Term main_;
  Term extra_;
  bool has_bonus_ = false;
  mutable size_t bonus_pos_ = 0;  // only moves forward, to the documents get_weight() is asked about
};


}  // namespace ds
