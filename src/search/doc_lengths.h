// DocLengths: one tenant database's document lengths, in memory, indexed by document id.
//
// Why: BM25 needs every matching document's length. Xapian 1.4 keeps lengths in their own
// chunked posting list and, for each candidate, skips that list forward to the candidate's id,
// decoding every entry on the way — for a term in 10 % of a million documents that is most of the
// query's time (measured: a one-word top-10 over 306k events took 2.3 ms p50 with Xapian's own
// BM25, 0.3 ms with lengths read from this table; docs/search.md). Bm25Source reads them here.
//
// Document ids only grow (Xapian never reuses one) and a document's length never changes (the
// index only adds and deletes documents), so the table is append-only: update() reads the lengths
// of the documents added since its previous call, from the caller's database handle. A handle
// that shows another number of deleted documents than the table was read with (last id −
// document count), or a database with another UUID (recreated), starts a new table, read whole.
//
// Guarantee: in a View from update(db), a document id reads 0 exactly when db does not have the
// document (deleted, never added, or above the view's limit) or the document is empty (length
// 0, so it has no text postings). The text postings (text_view.h) use it as the list of live
// documents.
//
// Memory: 4 bytes per document id ever assigned (4 MB per million events), in 16 KiB chunks.
//
// Threads: update() from any number of threads (serialised inside). A View is immutable and
// can be read from any thread while update() extends the table: it only covers ids that were
// filled before it was made.
#pragma once

#include <xapian.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace ds {

class DocLengths {
 public:
  static constexpr Xapian::docid kChunk = 4096;  // lengths per chunk

  class View {
   public:
    // The length of document `did`; 0 for an id the view does not cover or a deleted document.
    Xapian::termcount operator[](Xapian::docid did) const {
      if (did > limit_) return 0;
      return (*chunks_)[did / kChunk][did % kChunk];
    }
    Xapian::docid limit() const { return limit_; }
    // Which table the view reads: a later table (after deletions, or of a recreated database)
    // has a higher number.
    uint64_t table() const { return table_; }

   private:
    friend class DocLengths;
    std::shared_ptr<const std::vector<std::shared_ptr<uint32_t[]>>> chunks_;
    Xapian::docid limit_ = 0;
    uint64_t table_ = 0;
  };

  DocLengths();

  // Brings the table up to `db`'s last document id and returns a view covering at least every
  // document `db` can return. Throws what Xapian throws (e.g. DatabaseModifiedError: the
  // caller retries on a fresh revision; nothing read so far is wrong).
  View update(const Xapian::Database& db);

 private:
  std::mutex mu_;
  std::string uuid_;
  Xapian::docid loaded_ = 0;
  Xapian::docid deleted_ = 0;  // last id − document count of the handle the table was read from
  uint64_t table_;             // this table's number, from a process-wide counter
  // Replaced (copied, then grown) when chunks are added; old views keep the old vector. Chunks
  // are never moved; a chunk's slots above loaded_ are written while views read slots below.
  std::shared_ptr<std::vector<std::shared_ptr<uint32_t[]>>> chunks_;
};

}  // namespace ds
