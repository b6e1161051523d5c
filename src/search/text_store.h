// TextStore: one tenant's text postings on disk — immutable segment files (text_segment.h) under
// <tenant index dir>/text/ — and which of them each revision of the tenant's Xapian database
// lists.
//
// A revision lists its segments in its metadata (a "manifest": file numbers in document order,
// space-separated), written in the same Xapian commit as the documents they index. Crash
// ordering: a new segment file is complete (and fsynced when `sync`) before the commit that
// lists it, and a file is removed only after a commit that no longer lists it. So every
// committed revision's segments exist, and a file no committed revision lists (a crash between
// the two steps) is garbage: open() removes it.
//
// Merges keep the number of segments logarithmic in the number of documents: after a commit,
// segments are grouped into levels by document count (log base kMergeFactor; Lucene's
// LogMergePolicy rule, so that batches of mixed sizes group too, see pick_merge), and when a
// level has kMergeFactor segments in a row, they are merged into one on a thread of the store's
// own (the documents keep() rejects — deleted sessions — are dropped). The next flush() puts the
// merged file in their place, so the writer never waits for a merge (a merge of a million events
// takes seconds, and searches waiting for fresh events would wait with it). Only runs of
// adjacent segments are merged: the segments' document ranges stay ascending and disjoint. One
// merge at a time per store; a document is merged about log_8(documents / batch size) times over
// its life. A merge holds its output in memory until it writes it, so a merge reads at most
// kMaxMergeBytes of segments: past that size segments stay as they are, and their number grows
// with the index (one per few hundred MB) instead of logarithmically.
//
// Threads: the writer side (add, flush, committed, start_merge, discard) is for one thread at a
// time (the indexer); segments() from any thread. The destructor waits for a running merge.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "search/text_segment.h"
#include "store/status.h"

namespace ds {

class TextStore {
 public:
  static constexpr size_t kMergeFactor = 8;
  // The most segment bytes one merge reads (and holds in memory for its output); larger
  // segments are not merged again.
  static constexpr uint64_t kMaxMergeBytes = 512ull << 20;

  TextStore(std::string dir, bool sync) : dir_(std::move(dir)), sync_(sync) {}
  ~TextStore();
  TextStore(const TextStore&) = delete;
  TextStore& operator=(const TextStore&) = delete;

  // Takes `manifest` (the last committed revision's) as the committed state, removes every
  // segment file it does not list, and opens (verifies) every one it lists: an error when one is
  // missing or damaged.
  Status open(const std::string& manifest);

  // ---- writer side ----
  // Adds document `did` (above every id added before) with `text`; returns its length (the sum
  // of its terms' wdf). Not in any segment before flush().
  uint32_t add(uint32_t did, std::string_view text);
  bool pending() const { return builder_ && !builder_->empty(); }
  // Above every document id in a listed segment or added since open(): the writer's next id
  // must be at least this, so that no id is in two segments — also after an add whose Xapian
  // document failed (its words may be in a committed segment, its id not in Xapian).
  uint32_t next_doc() const { return next_doc_; }
  // Writes what was added since the last flush as a new segment file, and sets *manifest to the
  // committed segments plus it (just the committed ones when nothing was added), with a
  // finished merge's file in place of its inputs. The caller commits *manifest, then calls
  // committed().
  Status flush(std::string* manifest);
  // The commit of `manifest` from flush() succeeded (`ok`: files it no longer lists are removed)
  // or failed (files it added are removed; documents added since the last flush are dropped, the
  // caller adds them again).
  void committed(const std::string& manifest, bool ok);
  // The commit of flush()'s list failed and its changes could not be discarded, so whether it
  // is in the database is unknown: nothing is removed; documents added since the last flush are
  // dropped.
  void commit_unknown();
  // After a commit: when no merge is running and the policy wants one, starts merging the
  // newest segments (keep(did) false: the document is dropped; it is called on the merge's
  // thread, so it must read state that stays valid, e.g. a DocLengths::View).
  void start_merge(std::function<bool(uint32_t did)> keep);
  // A merge finished and waits for flush() to list its file.
  bool merge_done() const;
  // Waits for a running merge (tests; the destructor does too).
  void wait_merge();
  // Drops documents added since the last flush (a failed batch the caller redoes).
  void discard();

  // ---- readers ----
  // The segments `manifest` lists, in order; opened on first use and shared.
  Status segments(const std::string& manifest,
                  std::vector<std::shared_ptr<const TextSegment>>* out);

  static std::vector<uint64_t> parse_manifest(const std::string& manifest);
  // The merge policy: true with *first set when segs[*first, *first + kMergeFactor) should be
  // merged. Merges add up to at most max_bytes of segment files.
  static bool pick_merge(const std::vector<std::shared_ptr<const TextSegment>>& segs,
                         size_t* first, uint64_t max_bytes = kMaxMergeBytes);

 private:
  std::string path_of(uint64_t number) const;
  static std::string format_manifest(const std::vector<uint64_t>& numbers);

  // A merge on its own thread: inputs are committed_[first, first + count).
  struct Merge {
    std::vector<uint64_t> inputs;
    uint64_t output = 0;
    std::thread thread;
    mutable std::mutex mu;
    bool done = false;  // under mu
    Status status;      // under mu, once done
  };

  const std::string dir_;
  const bool sync_;
  std::unique_ptr<Merge> merge_;
  std::unique_ptr<SegmentBuilder> builder_;
  std::vector<uint64_t> committed_;  // the last committed manifest
  uint64_t next_number_ = 1;
  uint32_t next_doc_ = 1;
  std::mutex mu_;  // open_
  std::map<uint64_t, std::shared_ptr<const TextSegment>> open_;
};

}  // namespace ds
