#include "search/bm25_source.h"

#include <cmath>

namespace ds {

Bm25Source::Bm25Source(std::string term, double k1, double b, DocLengths::View lengths)
    : term_(std::move(term)), k1_(k1), b_(b), lengths_(std::move(lengths)) {}

void Bm25Source::init(const Xapian::Database& db) {
  it_ = db.postlist_begin(term_);
  end_ = db.postlist_end(term_);
  started_ = false;
  termfreq_ = db.get_termfreq(term_);
  if (termfreq_ == 0) {
    set_maxweight(0);
    return;
  }
  double n = termfreq_;
  double t = (static_cast<double>(db.get_doccount()) - n + 0.5) / (n + 0.5);
  if (t < 2) t = t * 0.5 + 1;
  idf_k1_ = std::log(t) * (k1_ + 1);
  double avlen = db.get_avlength();
  len_const_ = k1_ * (1 - b_);
  len_per_ = avlen > 0 ? k1_ * b_ / avlen : 0;
  double wdf_max = db.get_wdf_upper_bound(term_);
  double len_min = db.get_doclength_lower_bound();
  double denom = len_const_ + len_per_ * len_min + wdf_max;
  set_maxweight(denom > 0 ? idf_k1_ * wdf_max / denom : 0);
}

void Bm25Source::next(double) {
  if (started_) {
    ++it_;
  } else {
    started_ = true;
  }
}

void Bm25Source::skip_to(Xapian::docid did, double) {
  started_ = true;
  it_.skip_to(did);
}

double Bm25Source::get_weight() const {
  double wdf = it_.get_wdf();
  double denom = len_const_ + len_per_ * lengths_[*it_] + wdf;
  return denom > 0 ? idf_k1_ * wdf / denom : 0;
}

Xapian::PostingSource* Bm25Source::clone() const {
  return new Bm25Source(term_, k1_, b_, lengths_);
}

}  // namespace ds
