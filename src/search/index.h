// SearchIndex: the full-text index of session events — per tenant, one Xapian (glass) database
// and the text segments beside it (<root>/<tenant>/ and <root>/<tenant>/text/), ranked with BM25.
//
// Each indexed event is one Xapian document holding its "skeleton": boolean terms XS<session
// id>, XT<event type> and XK<tenant>, an XL term whose wdf is the text's length (so Xapian's
// document lengths and average length are the text's), and data "<session id>\n<position>". The
// words of its extracted text (see event_text.h) — English stems (Z-prefixed) and exact forms
// with positions, exactly the terms TermGenerator would give — are in the tenant's text segments
// (text_store.h, text_segment.h), which each Xapian revision lists in its metadata. Searches score
// words with Bm25Source and phrases with PhraseSource over the revision's segments (text_view.h);
// the scores are the ones Xapian's BM25Weight would give with the words in Xapian. For every
// session the database's metadata key "p:<session id>" holds "<catalog id> <next position>": all
// events of that session below that position are in the index. Documents, positions and the
// segment list change together in one Xapian commit, so after a crash they still agree.
//
// The index is derived data. A tenant database that cannot be opened (damaged, wrong format, or
// a segment its last commit lists missing or damaged) is removed and recreated empty, and the
// indexer rebuilds it from the logs.
//
// Durability (IndexOptions::fsync, default off): without fsync, Xapian commits are only in the
// page cache, which survives a crash of the process but not of the machine. So while the index is
// open without fsync, <root>/UNCLEAN holds the kernel's boot id; a clean close syncs every index
// file and removes it. open() finding UNCLEAN from another boot (the machine went down with
// unsynced index writes) deletes every tenant database, and the indexer rebuilds them from the
// logs. A process crash within the same boot keeps the index: its writes are in the page cache.
//
// Threads: the writer side (add, remove_session, set_position, commit) is for one thread at a
// time (the indexer). search() and doc_count() may be called from any number of threads
// concurrently with the writer; they see the last commit. A commit waits for the searches
// reading and holds new ones back while it runs (revision_gate.h): without that, a search across
// two commits reads a revision Xapian has discarded. A large search without a session
// filter runs its upper half of document ids on the index's side thread when that thread is
// idle (IndexOptions::split_min_docs): same hits, scores and order as one pass (tested), 1.4–1.7×
// faster on an otherwise idle machine (docs/search.md).
#pragma once

#include <xapian.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "search/posting_cache.h"
#include "search/query.h"
#include "search/side_thread.h"
#include "store/status.h"

namespace ds {

struct IndexOptions {
  std::string root;      // <data-dir>/index
  double bm25_k1 = 1.2;  // term frequency saturation
  double bm25_b = 0.75;  // document length normalisation (0 = none, 1 = full)
  bool fsync = false;    // fsync every Xapian commit (off: rebuilt after a machine crash instead)
  // A search without a session filter over at least this many documents runs as two halves by
  // document id, the second on a side thread, when that thread is idle (0: never split).
  uint64_t split_min_docs = 200'000;
  // Decoded posting lists of frequent terms kept in memory (posting_cache.h): at most this many
  // bytes for all tenants together (0: off), for terms in at least posting_cache_min_docs
  // documents.
  size_t posting_cache_bytes = 256u << 20;
  uint32_t posting_cache_min_docs = 2'000;
  // A query that only ANDs words, with no session or type filter, is matched by
  // match_conjunction (conjunction.h) instead of Xapian's matcher (false: always Xapian's).
  bool direct_conjunctions = true;
};

struct SessionMark {
  int64_t catalog_id = 0;  // which incarnation of the session id was indexed
  uint64_t next = 0;       // positions below this are indexed
};

struct SearchRequest {
  ParsedQuery query;                        // from parse_search_query
  std::vector<std::string> session_ids;     // empty: all sessions
  bool restrict_sessions = false;           // true with empty session_ids: match nothing
  std::vector<std::string> types;           // empty: all types
  size_t offset = 0;
  size_t limit = 20;
};

struct SearchHit {
  std::string session_id;
  uint64_t position = 0;
  double score = 0;
};

// The result of one search; keeps what snippet() needs.
class SearchResults {
 public:
  SearchResults() = default;
  SearchResults(SearchResults&&) = default;
  SearchResults& operator=(SearchResults&&) = default;
  SearchResults(const SearchResults&) = delete;
  SearchResults& operator=(const SearchResults&) = delete;

  std::vector<SearchHit> hits;
  uint64_t total_hits = 0;       // estimate; exact below 1000 matches
  uint64_t indexed_events = 0;   // documents in the tenant's index
  // `text` (an event's extracted text) shortened around the matches, matches wrapped in
  // <mark>…</mark>, everything else HTML-escaped (snippet.h); rarer query words weigh more in
  // choosing the excerpt.
  std::string snippet(const std::string& text) const;

 private:
  friend class SearchIndex;
  // The query's words and stems (ParsedQuery::snippet_terms) → their idf in the index.
  std::unordered_map<std::string, double> snippet_weights_;
};

class SearchIndex {
 public:
  explicit SearchIndex(IndexOptions options);
  ~SearchIndex();
  const IndexOptions& options() const { return options_; }

  // Opens every tenant database found under root (recreating damaged ones) and returns the
  // indexed positions of each tenant's sessions.
  Status open(std::map<std::string, std::map<std::string, SessionMark>>* marks);

  // The Xapian document of one event whose text has `length` (the sum of its words' wdf): its
  // filter terms, its data, and an "XL" term with wdf `length`, so that Xapian's document
  // length, average length and length bounds are those of the text.
  static Xapian::Document make_skeleton(const std::string& tenant, const std::string& session_id,
                                        uint64_t position, std::string_view type,
                                        uint32_t length);

  // ---- writer side (one thread) ----
  // Adds one event. Not visible to searches before commit().
  Status add(const std::string& tenant, const std::string& session_id, uint64_t position,
             std::string_view type, const std::string& text);
  // Removes every document of the session and its mark.
  Status remove_session(const std::string& tenant, const std::string& session_id);
  Status set_mark(const std::string& tenant, const std::string& session_id, SessionMark mark);
  // Makes every change since the last commit durable and visible, atomically per tenant.
  Status commit();

  // ---- readers (any thread) ----
  // Runs `req` against the tenant's last commit. A tenant without an index has no hits.
  Status search(const std::string& tenant, const SearchRequest& req, SearchResults* out);
  uint64_t doc_count(const std::string& tenant);

  // Directory name of a tenant's database (tenant names are escaped).
  static std::string tenant_dir_name(const std::string& tenant);

 private:
  struct Tenant;
  Status tenant_for_write(const std::string& tenant, Tenant** out);
  // A reader of the tenant's database from its pool (opened if none is idle); it goes back to
  // the pool when released, unless *failed was set. Throws Xapian::Error.
  static std::shared_ptr<Xapian::Database> lease_reader(const std::shared_ptr<Tenant>& t,
                                                        std::shared_ptr<bool>* failed);
  std::shared_ptr<Tenant> tenant_for_read(const std::string& tenant);
  Status open_writer(const std::string& tenant, std::shared_ptr<Tenant>* out);
  Status check_unclean_marker();
  // Sets the segment list to *manifest and commits t's open transaction, under the gate; on
  // failure (also when `prepared` is an error) discards the transaction's changes
  // (*discarded false: that failed too, the changes may still be committed later).
  Status commit_transaction(Tenant* t, const std::string* manifest, Status prepared,
                            bool* discarded);
  // Starts a merge of t's segments when the merge policy asks for one (text_store.h); the
  // merged file is listed by a later commit.
  void merge_text(Tenant* t);
  void close();

  IndexOptions options_;
  bool opened_ = false;  // open() ran: close() syncs and removes the unclean marker
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Tenant>> tenants_;
  std::unique_ptr<SideThread> side_;  // second halves of split searches
  std::shared_ptr<PostingCache::Budget> cache_budget_;  // shared by the tenants' caches
};

}  // namespace ds
