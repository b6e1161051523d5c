// DocRangeSource: a posting source that matches every document id in [lo, hi] with weight 0 —
// the filter that restricts one half of a split search (SearchIndex::search) to its ids.
//
// It matches ids, not documents: ids of deleted documents are "matched" too, which is harmless
// as a filter (OP_FILTER only keeps what the ranked side matched). skip_to() is O(1).
#pragma once

#include <xapian.h>

#include <string>

namespace ds {

class DocRangeSource final : public Xapian::PostingSource {
 public:
  DocRangeSource(Xapian::docid lo, Xapian::docid hi) : lo_(lo), hi_(hi) {}

  void init(const Xapian::Database&) override { at_ = 0; }
  Xapian::doccount get_termfreq_min() const override { return 0; }
  Xapian::doccount get_termfreq_est() const override { return hi_ >= lo_ ? hi_ - lo_ + 1 : 0; }
  Xapian::doccount get_termfreq_max() const override { return get_termfreq_est(); }
  void next(double) override { at_ = at_ == 0 ? lo_ : at_ + 1; }
  void skip_to(Xapian::docid did, double) override {
    if (at_ == 0) at_ = lo_;
    if (did > at_) at_ = did;
  }
  bool at_end() const override { return at_ > hi_ || lo_ == 0; }
  Xapian::docid get_docid() const override { return at_; }
  Xapian::PostingSource* clone() const override { return new DocRangeSource(lo_, hi_); }
  std::string name() const override { return "ds::DocRangeSource"; }
  std::string get_description() const override {
    return "DocRangeSource(" + std::to_string(lo_) + ".." + std::to_string(hi_) + ")";
  }

 private:
  const Xapian::docid lo_;
  const Xapian::docid hi_;
  Xapian::docid at_ = 0;  // 0: not started
};

}  // namespace ds
