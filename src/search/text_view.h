// TextView: the text postings of one committed revision of a tenant's index — its segment files
// (text_segment.h) and which documents are live.
//
// The words of every event are in segment files, not in Xapian (index.h): Xapian keeps each
// event's document data, its boolean filter terms and its length. A revision lists its segments
// in its metadata; they hold ascending, disjoint ranges of document ids, so a term's postings
// over the whole index are the segments' lists one after the other. A deleted document (a
// deleted session) keeps its postings in the segment files until a merge drops them; it is not
// live, and DocLengths reads 0 for it (doc_lengths.h), which is how a View tells.
//
// Guarantee: postings(term) yields exactly the (document, wdf) pairs Xapian's postlist of the
// same term would yield had the documents been indexed into Xapian with TermGenerator (english,
// STEM_SOME) — the scheme this index used before — so BM25 statistics computed from them equal
// Xapian's (tested in search_bm25_source_test.cc).
//
// Threads: any thread; postings() is serialised inside.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "search/doc_lengths.h"
#include "search/text_segment.h"

namespace ds {

struct TextPosting {
  uint32_t did;
  uint32_t wdf;
};

// One term's live postings in one view, ascending by document.
struct TermPostings {
  std::vector<TextPosting> list;
  uint32_t max_wdf = 0;  // the largest wdf in `list` (0: empty)
};

class TextView {
 public:
  TextView() = default;
  TextView(std::vector<std::shared_ptr<const TextSegment>> segments, DocLengths::View lengths)
      : segments_(std::move(segments)), lengths_(std::move(lengths)) {}

  const DocLengths::View& lengths() const { return lengths_; }
  const std::vector<std::shared_ptr<const TextSegment>>& segments() const { return segments_; }
  bool live(uint32_t did) const { return lengths_[did] != 0; }

  // The live postings of `term` ("Z"-prefixed for stems), decoded on the first request and kept
  // with the view: the leaves of one search (both halves of a split search, a word that is also
  // another word's exact form) decode a list once. Throws Xapian::DatabaseCorruptError when a
  // segment cannot be decoded.
  std::shared_ptr<const TermPostings> postings(const std::string& term) const;

 private:
  std::vector<std::shared_ptr<const TextSegment>> segments_;
  DocLengths::View lengths_;
  mutable std::mutex mu_;
  mutable std::map<std::string, std::shared_ptr<const TermPostings>, std::less<>> decoded_;
};

}  // namespace ds
