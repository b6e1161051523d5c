// TextView: the text postings of one committed revision of a tenant's index — its segment files
// (text_segment.h) and which documents are live.
//
// The words of every event are in segment files, not in Xapian (index.h): Xapian keeps each
// event's document data, its boolean filter terms and its length. A revision lists its segments
// in its metadata; they hold ascending, disjoint ranges of document ids, so a word's postings
// over the whole index are the segments' lists one after the other. A deleted document (a
// deleted session) keeps its postings in the segment files until a merge drops them; it is not
// live, and DocLengths reads 0 for it (doc_lengths.h), which is how a view tells.
//
// Guarantee: postings(term) and decode(term) give exactly the (document, wdf) pairs Xapian's
// postlist of the same term would give had the live documents been indexed into Xapian with
// TermGenerator (english, STEM_SOME) — the scheme this index used before — so BM25 statistics
// computed from them equal Xapian's (tested in search_bm25_source_test.cc).
//
// Threads: any thread; postings() is serialised inside.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "search/doc_lengths.h"
#include "search/text_segment.h"

namespace ds {

class PostingCache;

struct TextPosting {
  uint32_t did;
  uint32_t wdf;
};

// An immutable list of one word's live postings, ascending by document.
struct PostingList {
  std::shared_ptr<const void> owner;  // keeps `data` alive
  const TextPosting* data = nullptr;
  size_t size = 0;
  uint32_t max_wdf = 0;  // at least the largest wdf in the list (0: empty)

  const TextPosting& operator[](size_t i) const { return data[i]; }
  // The first index ≥ `from` whose document is ≥ `did` (size when none), by galloping: cheap
  // for the short hops of an AND and the long ones alike.
  size_t seek(size_t from, uint32_t did) const;
};

class TextView {
 public:
  TextView() = default;
  // `cache` (may be null) serves frequent words' lists across searches (posting_cache.h).
  TextView(std::vector<std::shared_ptr<const TextSegment>> segments, DocLengths::View lengths,
           PostingCache* cache = nullptr)
      : segments_(std::move(segments)), lengths_(std::move(lengths)), cache_(cache) {}

  const DocLengths::View& lengths() const { return lengths_; }
  const std::vector<std::shared_ptr<const TextSegment>>& segments() const { return segments_; }
  bool live(uint32_t did) const { return lengths_[did] != 0; }

  // The live postings of `term` ("Z"-prefixed for stems): from the posting cache when it serves
  // them, else decoded; either way once per view, so the leaves of one search (both halves of a
  // split search, a word that is also another word's exact form) share a list. Throws
  // Xapian::DatabaseCorruptError when a segment cannot be decoded.
  PostingList postings(const std::string& term) const;

  // Calls f(posting) for every live posting of `term` with a document id above `above`, in
  // order. Throws Xapian::DatabaseCorruptError when a segment cannot be decoded.
  void decode(const std::string& term, uint32_t above,
              const std::function<void(const TextPosting&)>& f) const;
  // An upper bound of the number of documents with `term` (deleted ones included).
  uint64_t df_bound(const std::string& term) const;

 private:
  std::vector<std::shared_ptr<const TextSegment>> segments_;
  DocLengths::View lengths_;
  PostingCache* cache_ = nullptr;
  mutable std::mutex mu_;
  mutable std::map<std::string, PostingList, std::less<>> lists_;
};

}  // namespace ds
