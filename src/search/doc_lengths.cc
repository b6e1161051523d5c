#include "search/doc_lengths.h"

#include <atomic>

namespace ds {

namespace {
std::atomic<uint64_t> tables{0};
}  // namespace

DocLengths::DocLengths()
    : table_(++tables), chunks_(std::make_shared<std::vector<std::shared_ptr<uint32_t[]>>>()) {}

DocLengths::View DocLengths::update(const Xapian::Database& db) {
  std::lock_guard lk(mu_);
  std::string uuid = db.get_uuid();
  Xapian::docid last = db.get_lastdocid();
  // Ids are never reused, so last id − document count only grows, by one per deletion.
  const Xapian::docid deleted = last - db.get_doccount();
  if (uuid != uuid_ || deleted != deleted_) {
    // Recreated, or documents were deleted since the table was read: start a new table (views
    // already handed out keep the old one), in which deleted documents read 0.
    uuid_ = std::move(uuid);
    deleted_ = deleted;
    table_ = ++tables;
    loaded_ = 0;
    chunks_ = std::make_shared<std::vector<std::shared_ptr<uint32_t[]>>>();
  }
  if (last > loaded_) {
    size_t need = static_cast<size_t>(last / kChunk) + 1;
    if (chunks_->size() < need) {
      auto grown = std::make_shared<std::vector<std::shared_ptr<uint32_t[]>>>(*chunks_);
      while (grown->size() < need) grown->emplace_back(new uint32_t[kChunk]());
      chunks_ = std::move(grown);
    }
    // The document-length list: every document, in id order ("" is its name in Xapian).
    Xapian::PostingIterator it = db.postlist_begin("");
    Xapian::PostingIterator end = db.postlist_end("");
    it.skip_to(loaded_ + 1);
    for (; it != end && *it <= last; ++it) {
      (*chunks_)[*it / kChunk][*it % kChunk] = it.get_doclength();
    }
    loaded_ = last;
  }
  View v;
  v.chunks_ = chunks_;
  v.limit_ = loaded_;
  v.table_ = table_;
  return v;
}

}  // namespace ds
