#include "search/bm25_source.h"

#include <algorithm>

namespace ds {

Bm25Source::Bm25Source(std::string term, double k1, double b, const TextView* view,
                       std::string bonus, double bonus_factor)
    : term_(std::move(term)),
      k1_(k1),
      b_(b),
      view_(view),
      bonus_(std::move(bonus)),
      bonus_factor_(bonus_factor) {}

bool Bm25Source::Term::init(const Xapian::Database& db, const TextView& view,
                            const std::string& term, const Bm25& bm25) {
  list = view.postings(term);
  double wdf_max = list.max_wdf;
  termfreq = static_cast<Xapian::doccount>(list.size);
  if (termfreq == 0) {
    idf_k1 = max = 0;
    return false;
  }
  idf_k1 = bm25.term_factor(db.get_doccount(), termfreq);
  max = bm25.weight(idf_k1, wdf_max, db.get_doclength_lower_bound());
  return true;
}

void Bm25Source::init(const Xapian::Database& db) {
  started_ = false;
  pos_ = 0;
  bonus_pos_ = 0;
  bm25_ = Bm25(k1_, b_, db.get_avlength());
  main_.init(db, *view_, term_, bm25_);
  has_bonus_ = !bonus_.empty() && bonus_factor_ > 0 && main_.termfreq > 0 &&
               extra_.init(db, *view_, bonus_, bm25_);
  set_maxweight(main_.max + (has_bonus_ ? bonus_factor_ * extra_.max : 0));
}

void Bm25Source::next(double) {
  if (!started_) {
    started_ = true;
  } else {
    ++pos_;
  }
}

void Bm25Source::skip_to(Xapian::docid did, double) {
  started_ = true;
  pos_ = main_.list.seek(pos_, did);
}

double Bm25Source::weight(const Term& t, double wdf, Xapian::docid did) const {
  return bm25_.weight(t.idf_k1, wdf, view_->lengths()[did]);
}

double Bm25Source::get_weight() const {
  const TextPosting& p = main_.list[pos_];
  double w = weight(main_, p.wdf, p.did);
  if (has_bonus_) {
    const PostingList& bonus = extra_.list;
    bonus_pos_ = bonus.seek(bonus_pos_, p.did);
    if (bonus_pos_ < bonus.size && bonus[bonus_pos_].did == p.did) {
      w += bonus_factor_ * weight(extra_, bonus[bonus_pos_].wdf, p.did);
    }
  }
  return w;
}

Xapian::PostingSource* Bm25Source::clone() const {
  return new Bm25Source(term_, k1_, b_, view_, bonus_, bonus_factor_);
}

std::string Bm25Source::get_description() const {
  if (bonus_.empty()) return "Bm25Source(" + term_ + ")";
  return "Bm25Source(" + term_ + " + " + std::to_string(bonus_factor_) + " × " + bonus_ + ")";
}

}  // namespace ds
