// PostingCache: the decoded posting lists of a tenant database's frequent terms, in memory.
//
// Why: a cross-session search for two or three common words is an AND over posting lists of
// ~100,000 entries each at a million events. Xapian 1.4 decodes its compressed lists at ~20 ns an
// entry and has no skipping metadata that helps an AND of frequent terms, so decoding was most of
// such a query (docs/search.md, "Performance (queries)"). Bm25Source iterates a cached list
// instead: a plain array of (document id, wdf), stepped or galloped through.
//
// Validity: Xapian never reuses a document id, and a document's terms never change (the index
// only adds and deletes documents). So a term's list only grows at its end as documents are
// added; get() extends it from the caller's handle. Deletions (a deleted session) are the one
// change that removes entries: the cache tracks the database's count of deleted ids (last id −
// document count, which only grows) and drops every list when a handle shows more deletions than
// the cache has seen. A handle older than a deletion the cache has seen is not served (the
// caller reads Xapian's own list). A database with another UUID (recreated) starts over.
//
// Guarantee: a List from get(db, term) holds exactly the postings Xapian's own
// db.postlist_begin(term) iterates — the same document ids, ascending, with the same wdf.
//
// What is cached: lists of terms in at least `min_termfreq` documents (shorter lists are cheap
// for Xapian), from a term's second request on (the first is answered from Xapian: a stream of
// one-off words would otherwise pay for copying whole lists and evict useful ones). Memory: 8
// bytes per cached posting. The caches of all tenants share one Budget: past it, a cache drops its
// own least recently used lists (keeping at least the one just read), so a busy tenant cannot
// make another's lists go. A budget of 0 turns caching off. Terms asked for once are remembered
// by name (at most kMaxSeen, then forgotten together).
//
// Threads: get() from any thread (serialised inside). A List is immutable and stays valid while
// get() extends or drops the term's list.
#pragma once

#include <xapian.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>

namespace ds {

class PostingCache {
 public:
  struct Posting {
    Xapian::docid did;
    Xapian::termcount wdf;
  };

  class List {
   public:
    size_t size() const { return size_; }
    const Posting& operator[](size_t i) const { return data_[i]; }
    // The first index ≥ `from` whose id is ≥ `did` (size() when none), by galloping: cheap
    // for the short hops of an AND and the long ones alike.
    size_t seek(size_t from, Xapian::docid did) const;

   private:
    friend class PostingCache;
    std::shared_ptr<const Posting[]> owner_;
    const Posting* data_ = nullptr;
    size_t size_ = 0;
  };

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

  PostingCache(std::shared_ptr<Budget> budget, Xapian::doccount min_termfreq)
      : budget_(std::move(budget)), min_termfreq_(min_termfreq) {}
  // A cache with a budget of its own.
  PostingCache(size_t budget_bytes, Xapian::doccount min_termfreq)
      : PostingCache(std::make_shared<Budget>(budget_bytes), min_termfreq) {}
  ~PostingCache();  // gives its bytes back to the budget
  PostingCache(const PostingCache&) = delete;
  PostingCache& operator=(const PostingCache&) = delete;

  // `term`'s postings in `db`, or nullopt when the cache does not serve them (the term is in
  // fewer than min_termfreq documents — `termfreq` is db's count, which the caller has — this is
  // its first request, the list would not fit the budget, or `db` is older than a deletion the
  // cache has seen). Throws
  // what Xapian throws (DatabaseModifiedError: the caller retries on a fresh revision).
  std::optional<List> get(const Xapian::Database& db, const std::string& term,
                          Xapian::doccount termfreq);

  size_t bytes() const;  // this cache's share of the budget

 private:
  struct Slot {
    std::shared_ptr<Posting[]> data;  // capacity `cap`; entries [0, size) are final
    size_t cap = 0;
    size_t size = 0;
    Xapian::docid upto = 0;  // every posting with an id ≤ upto is in [0, size)
    uint64_t used = 0;       // last use, for eviction
  };
  void evict_locked(const std::string& keep);
  void add_bytes_locked(size_t n);
  void sub_bytes_locked(size_t n);

  const std::shared_ptr<Budget> budget_;
  const Xapian::doccount min_termfreq_;
  mutable std::mutex mu_;
  std::string uuid_;
  Xapian::docid deleted_ = 0;  // last id − document count of the handles the lists came from
  static constexpr size_t kMaxSeen = 100'000;
  std::unordered_map<std::string, Slot> slots_;
  std::unordered_set<std::string> seen_;  // asked for once, not cached yet
  size_t bytes_ = 0;
  uint64_t clock_ = 0;
};

}  // namespace ds
