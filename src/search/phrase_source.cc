#include "search/phrase_source.h"

#include <algorithm>

#include "search/bm25.h"

namespace ds {

PhraseSource::PhraseSource(std::vector<std::string> words, double k1, double b,
                           const TextView* view)
    : words_(std::move(words)), k1_(k1), b_(b), view_(view) {}

namespace {

// True when some position p of the first word has word i at p + i for every i.
bool adjacent(const std::vector<std::vector<uint32_t>>& pos) {
  for (uint32_t p : pos[0]) {
    bool all = true;
    for (size_t i = 1; i < pos.size() && all; ++i) {
      all = std::binary_search(pos[i].begin(), pos[i].end(), p + static_cast<uint32_t>(i));
    }
    if (all) return true;
  }
  return false;
}

}  // namespace

void PhraseSource::init(const Xapian::Database& db) {
  started_ = false;
  pos_ = 0;
  matches_.clear();
  const size_t k = words_.size();
  if (k == 0) return;
  std::vector<Xapian::doccount> termfreq(k, 0);
  // Matching documents with each word's wdf, until the statistics are complete.
  std::vector<uint32_t> found;
  std::vector<uint32_t> found_wdf;  // k per match
  std::vector<std::vector<uint32_t>> positions(k);
  for (const auto& seg : view_->segments()) {
    std::vector<TextSegment::Postings> it(k);
    std::vector<bool> valid(k, false);
    // Moves word i to its next posting, counting live ones for the word's statistics.
    auto step = [&](size_t i) {
      valid[i] = it[i].next();
      if (valid[i] && view_->live(it[i].doc())) ++termfreq[i];
    };
    bool all_here = true;
    for (size_t i = 0; i < k; ++i) {
      if (seg->postings(words_[i], &it[i])) {
        step(i);
      }
      all_here = all_here && valid[i];
    }
    while (all_here) {
      uint32_t target = 0;
      for (size_t i = 0; i < k; ++i) target = std::max(target, it[i].doc());
      for (size_t i = 0; i < k && all_here; ++i) {
        while (valid[i] && it[i].doc() < target) step(i);
        all_here = valid[i];
      }
      if (!all_here) break;
      bool same = true;
      for (size_t i = 0; i < k; ++i) same = same && it[i].doc() == target;
      if (!same) continue;
      if (view_->live(target)) {
        for (size_t i = 0; i < k; ++i) {
          positions[i].clear();
          it[i].positions(&positions[i]);
        }
        if (adjacent(positions)) {
          found.push_back(target);
          for (size_t i = 0; i < k; ++i) found_wdf.push_back(it[i].wdf());
        }
      }
      for (size_t i = 0; i < k; ++i) {
        step(i);
        all_here = all_here && valid[i];
      }
    }
    // The rest of each list still counts for the statistics.
    for (size_t i = 0; i < k; ++i) {
      while (valid[i]) step(i);
      if (it[i].error()) {
        throw Xapian::DatabaseCorruptError("text segment: cannot decode the postings of " +
                                           words_[i]);
      }
    }
  }
  // BM25 per word, as Bm25Source computes it (bm25_source.h). A word that occurs twice in the
  // phrase counts twice, each at query-term frequency 1: Xapian weighs every leaf on its own.
  const Bm25 bm25(k1_, b_, db.get_avlength());
  std::vector<double> idf_k1(k);
  for (size_t i = 0; i < k; ++i) idf_k1[i] = bm25.term_factor(db.get_doccount(), termfreq[i]);
  double max = 0;
  matches_.reserve(found.size());
  for (size_t m = 0; m < found.size(); ++m) {
    double len = view_->lengths()[found[m]];
    double w = 0;
    for (size_t i = 0; i < k; ++i) {
      w += bm25.weight(idf_k1[i], found_wdf[m * k + i], len);
    }
    matches_.push_back({found[m], w});
    max = std::max(max, w);
  }
  set_maxweight(max);
}

void PhraseSource::next(double) {
  if (!started_) {
    started_ = true;
  } else {
    ++pos_;
  }
}

void PhraseSource::skip_to(Xapian::docid did, double) {
  started_ = true;
  auto it = std::lower_bound(matches_.begin() + static_cast<std::ptrdiff_t>(pos_), matches_.end(),
                             did, [](const Match& m, Xapian::docid d) { return m.did < d; });
  pos_ = static_cast<size_t>(it - matches_.begin());
}

Xapian::PostingSource* PhraseSource::clone() const {
  return new PhraseSource(words_, k1_, b_, view_);
}

std::string PhraseSource::get_description() const {
  std::string d = "PhraseSource(";
  for (size_t i = 0; i < words_.size(); ++i) d += (i ? " " : "") + words_[i];
  return d + ")";
}

}  // namespace ds
