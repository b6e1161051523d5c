// Bm25: the BM25 formula exactly as Xapian 1.4's BM25Weight(k1, k2 = 0, k3 = 1, b,
// min_normlen = 0) computes it with no relevance set — the one place our posting sources
// (bm25_source.h, phrase_source.h) and snippets take it from.
//
// With N documents, n of them containing the term:
//   idf = log(t) where t = (N - n + 0.5) / (n + 0.5), and t < 2 is mapped to t / 2 + 1 (so the
//         weight stays positive for terms in most documents);
//   weight = idf × (k1 + 1) × wdf / (k1 × ((1 - b) + b × length / average length) + wdf).
#pragma once

#include <cmath>

namespace ds {

class Bm25 {
 public:
  Bm25() = default;
  Bm25(double k1, double b, double average_length)
      : k1_(k1),
        len_const_(k1 * (1 - b)),
        len_per_(average_length > 0 ? k1 * b / average_length : 0) {}

  static double idf(double documents, double with_term) {
    double t = (documents - with_term + 0.5) / (with_term + 0.5);
    if (t < 2) t = t * 0.5 + 1;
    return std::log(t);
  }
  // idf × (k1 + 1): a term's factor in weight().
  double term_factor(double documents, double with_term) const {
    return idf(documents, with_term) * (k1_ + 1);
  }
  // The weight of a term with `factor` (term_factor()) in a document of `length` where it
  // occurs `wdf` times.
  double weight(double factor, double wdf, double length) const {
    double denom = len_const_ + len_per_ * length + wdf;
    return denom > 0 ? factor * wdf / denom : 0;
  }

 private:
  double k1_ = 0;
  double len_const_ = 0;  // k1 × (1 - b)
  double len_per_ = 0;    // k1 × b / average length
};

}  // namespace ds
