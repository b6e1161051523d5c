// PostingCache: the decoded live postings of a tenant's frequent words, kept in memory across
// searches.
//
// Why: a cross-session search for two or three common words is an AND over lists of ~100,000
// postings each at a million events. Decoding them from the text segments takes ~2 ns a posting
// (text_segment.h), about 1 ms of such a search; a cached list is a plain array of (document
// id, wdf), ready to step or gallop through.
//
// Validity: document ids only grow, a document's words never change, and merges only drop
// deleted documents, so a word's live postings only grow at their end as documents are added:
// get() extends a list with the postings above the last id it covers, from the caller's view.
// Deletions are the one change that removes postings: a view whose lengths table is newer than
// the cache's (DocLengths starts a new table after deletions) drops every list; a view with an
// older table is not served (the caller decodes from the segments itself).
//
// Guarantee: a PostingList from get(view, term) holds exactly the postings view.decode(term)
// gives: the same document ids, ascending, with the same wdf.
//
// What is cached: lists of words in at least `min_docs` documents (fewer are cheap to decode),
// from a word's second request on (the first is decoded by the caller: a stream of one-off words
// would otherwise copy whole lists and evict useful ones). Memory: 8 bytes per cached posting.
// The caches of all tenants share one Budget: past it, a cache drops its own least recently used
// lists (keeping at least the one just read), so a busy tenant cannot make another's lists go. A
// budget of 0 turns caching off. Words asked for once are remembered by name (at most kMaxSeen,
// then forgotten together).
//
// Threads: get() from any thread (serialised inside). A PostingList is immutable and stays valid
// while get() extends or drops the word's list.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "search/text_view.h"

namespace ds {

class PostingCache {
 public:
  // Bytes shared by every cache made with it.
  class Budget {
   public:
    explicit Budget(size_t limit) : limit_(limit) {}
    size_t limit() const { return limit_; }
    size_t used() const { return used_.load(std::memory_order_relaxed); }

   private:
    friend class PostingCache;
    const size_t limit_;
    std::atomic<size_t> used_{0};
  };

  PostingCache(std::shared_ptr<Budget> budget, uint32_t min_docs)
      : budget_(std::move(budget)), min_docs_(min_docs) {}
  // A cache with a budget of its own.
  PostingCache(size_t budget_bytes, uint32_t min_docs)
      : PostingCache(std::make_shared<Budget>(budget_bytes), min_docs) {}
  ~PostingCache();  // gives its bytes back to the budget
  PostingCache(const PostingCache&) = delete;
  PostingCache& operator=(const PostingCache&) = delete;

  // `term`'s live postings in `view`, or nullopt when the cache does not serve them (the word
  // is in fewer than min_docs documents, this is its first request, the list would not fit the
  // budget, or the view is older than a deletion the cache has seen). Throws what
  // TextView::decode throws.
  std::optional<PostingList> get(const TextView& view, const std::string& term);

  size_t bytes() const;  // this cache's share of the budget

 private:
  struct Slot {
    std::shared_ptr<TextPosting[]> data;  // capacity `cap`; entries [0, size) are final
    size_t cap = 0;
    size_t size = 0;
    uint32_t upto = 0;     // every live posting with an id ≤ upto is in [0, size)
    uint32_t max_wdf = 0;  // of entries [0, size)
    uint64_t used = 0;     // last use, for eviction
  };
  void evict_locked(const std::string& keep);
  void add_bytes_locked(size_t n);
  void sub_bytes_locked(size_t n);

  const std::shared_ptr<Budget> budget_;
  const uint32_t min_docs_;
  mutable std::mutex mu_;
  uint64_t table_ = 0;  // DocLengths table of the views the lists came from
  static constexpr size_t kMaxSeen = 100'000;
  std::unordered_map<std::string, Slot> slots_;
  std::unordered_set<std::string> seen_;  // asked for once, not cached yet
  size_t bytes_ = 0;
  uint64_t clock_ = 0;
};

}  // namespace ds
