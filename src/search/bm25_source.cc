#include "search/bm25_source.h"

#include <cmath>

namespace ds {

Bm25Source::Bm25Source(std::string term, double k1, double b, DocLengths::View lengths,
                       std::string bonus, double bonus_factor, PostingCache* cache)
    : term_(std::move(term)),
      k1_(k1),
      b_(b),
      lengths_(std::move(lengths)),
      bonus_(std::move(bonus)),
      bonus_factor_(bonus_factor),
      cache_(cache) {}

bool Bm25Source::Term::init(const Xapian::Database& db, const std::string& term, double k1,
                            double len_const, double len_per) {
  termfreq = db.get_termfreq(term);
  if (termfreq == 0) {
    idf_k1 = max = 0;
    return false;
  }
  double n = termfreq;
  double t = (static_cast<double>(db.get_doccount()) - n + 0.5) / (n + 0.5);
  if (t < 2) t = t * 0.5 + 1;
  idf_k1 = std::log(t) * (k1 + 1);
  double wdf_max = db.get_wdf_upper_bound(term);
  double denom = len_const + len_per * db.get_doclength_lower_bound() + wdf_max;
  max = denom > 0 ? idf_k1 * wdf_max / denom : 0;
  return true;
}

void Bm25Source::init(const Xapian::Database& db) {
  started_ = false;
  double avlen = db.get_avlength();
  len_const_ = k1_ * (1 - b_);
  len_per_ = avlen > 0 ? k1_ * b_ / avlen : 0;
  main_.init(db, term_, k1_, len_const_, len_per_);
  list_.reset();
  pos_ = 0;
  if (cache_ != nullptr) list_ = cache_->get(db, term_, main_.termfreq);
  if (!list_) {
    it_ = db.postlist_begin(term_);
    end_ = db.postlist_end(term_);
  }
  has_bonus_ = !bonus_.empty() && bonus_factor_ > 0 &&
               extra_.init(db, bonus_, k1_, len_const_, len_per_);
  bonus_list_.reset();
  bonus_pos_ = 0;
  if (has_bonus_) {
    if (cache_ != nullptr) bonus_list_ = cache_->get(db, bonus_, extra_.termfreq);
    if (!bonus_list_) {
      bonus_it_ = db.postlist_begin(bonus_);
      bonus_end_ = db.postlist_end(bonus_);
    }
  }
  set_maxweight(main_.max + (has_bonus_ ? bonus_factor_ * extra_.max : 0));
}

void Bm25Source::next(double) {
  if (!started_) {
    started_ = true;
  } else if (list_) {
    ++pos_;
  } else {
    ++it_;
  }
}

void Bm25Source::skip_to(Xapian::docid did, double) {
  started_ = true;
  if (list_) {
    pos_ = list_->seek(pos_, did);
  } else {
    it_.skip_to(did);
  }
}

double Bm25Source::weight(const Term& t, double wdf, Xapian::docid did) const {
  double denom = len_const_ + len_per_ * lengths_[did] + wdf;
  return denom > 0 ? t.idf_k1 * wdf / denom : 0;
}

double Bm25Source::get_weight() const {
  Xapian::docid did = get_docid();
  double w = weight(main_, list_ ? (*list_)[pos_].wdf : it_.get_wdf(), did);
  if (has_bonus_ && bonus_list_) {
    bonus_pos_ = bonus_list_->seek(bonus_pos_, did);
    if (bonus_pos_ < bonus_list_->size() && (*bonus_list_)[bonus_pos_].did == did) {
      w += bonus_factor_ * weight(extra_, (*bonus_list_)[bonus_pos_].wdf, did);
    }
  } else if (has_bonus_ && bonus_it_ != bonus_end_) {
    bonus_it_.skip_to(did);
    if (bonus_it_ != bonus_end_ && *bonus_it_ == did) {
      w += bonus_factor_ * weight(extra_, bonus_it_.get_wdf(), did);
    }
  }
  return w;
}

Xapian::PostingSource* Bm25Source::clone() const {
  return new Bm25Source(term_, k1_, b_, lengths_, bonus_, bonus_factor_, cache_);
}

std::string Bm25Source::get_description() const {
  if (bonus_.empty()) return "Bm25Source(" + term_ + ")";
  return "Bm25Source(" + term_ + " + " + std::to_string(bonus_factor_) + " × " + bonus_ + ")";
}

}  // namespace ds
