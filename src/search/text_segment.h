// Text segments: immutable files holding the text postings (terms, postings, positions,
// document lengths) of a range of documents, as Xapian::TermGenerator (english stemmer,
// STEM_SOME) would index their texts (text_tokenizer.h).
//
// - SegmentBuilder collects documents in memory and writes them as one segment file.
// - TextSegment reads one file through mmap: term lookup, posting iteration, document lengths.
// - merge_segments writes the documents of several segments (minus deleted ones) as one file.
//
// File format, version 1 (sections in this order; integers little-endian; varint = LEB128):
//   header (64 bytes): "DSTXTSEG", u32 version, u32 doc table kind, u32 first_doc, last_doc,
//     docs, terms, u64 bytes of: doc table, dictionary, postings, positions;
//   doc table: kind 0 (dense) u32 per id first_doc..last_doc = length + 1, 0 = no such doc;
//     kind 1 (sparse, when ids are far apart) u32 pairs (docid, length), docids ascending;
//   restart index: per 16th term, u64 offsets of its dictionary entry, postings and positions;
//   dictionary: terms sorted bytewise, each varints (shared prefix, suffix size), suffix, varints
//     (df, postings bytes, positions bytes); a restart entry shares no prefix;
//   postings: per document, varint (docid gap << 1 | wdf == 1) then, if wdf != 1, varint
//     wdf - 2; the first gap counts from first_doc - 1;
//   positions (exact terms only): per posting, wdf varint gaps (the first from 0);
//   footer: u64 XXH3-64 of every byte before it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "store/status.h"

namespace ds {

// SegmentBuilder: the text postings of consecutive documents, in memory, until written as one
// segment file. Not thread-safe.
class SegmentBuilder {
 public:
  SegmentBuilder();
  ~SegmentBuilder();
  SegmentBuilder(const SegmentBuilder&) = delete;
  SegmentBuilder& operator=(const SegmentBuilder&) = delete;

  // Adds document `did` (>= 1 and strictly greater than every id added since the last
  // write()/clear(); ids may have gaps, e.g. when the caller skips a document) with `text`.
  // Returns its length: the sum of wdf over its exact and Z terms, which is what Xapian's
  // TermGenerator-indexed document length would be. A `did` breaking that order is not added
  // (returns 0).
  uint32_t add(uint32_t did, std::string_view text);
  size_t docs() const;
  bool empty() const;
  size_t memory() const;  // approximate bytes held (postings, positions, dictionary)

  // Writes everything added since the last write()/clear() to a new file `path` (must not exist:
  // kConflict if it does; written to path + ".tmp", fdatasync'ed when `sync`, renamed without
  // replacing; the directory fsynced when `sync`) and clears. On an error nothing is cleared
  // and no file is left at `path`.
  Status write(const std::string& path, bool sync);
  // Drops what was added; also clears the tokenizer's dictionary when it has grown past ~1M
  // terms.
  void clear();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// TextSegment: one immutable segment file, memory-mapped (read into the heap in ASan builds, so
// that over-reads are reported). Thread-safe (const). Postings iterators point into the mapping:
// they are valid while the TextSegment lives; one iterator is for one thread.
class TextSegment {
 public:
  ~TextSegment();
  TextSegment(const TextSegment&) = delete;
  TextSegment& operator=(const TextSegment&) = delete;

  // Opens and validates the file: magic, version, section sizes, the XXH3 checksum of the whole
  // file (read once here), the document table and the whole dictionary (sorted, sizes adding up
  // to the sections). kCorruption on any problem with the contents, kIoError / kNotFound when
  // the file cannot be read. Postings and positions are checked while they are decoded.
  static Status open(const std::string& path, std::shared_ptr<const TextSegment>* out);
  uint32_t first_doc() const { return first_doc_; }  // smallest docid in the segment (0 if none)
  uint32_t last_doc() const { return last_doc_; }    // largest docid (0 if none)
  uint32_t docs() const { return docs_; }            // number of documents
  size_t bytes() const { return size_; }             // file size
  uint32_t terms() const { return terms_; }          // number of terms
  // Document length as SegmentBuilder::add() returned it; 0 for ids not in the segment. O(1)
  // (dense table) or O(log docs) (sparse table).
  uint32_t doc_length(uint32_t did) const;
  // Whether `did` is a document of the segment (also when its length is 0).
  bool has_doc(uint32_t did) const;

  // Iterator over one term's postings, docids ascending. Default-constructed: empty. next()
  // decodes only the postings stream; the positions of skipped postings are stepped over (by
  // counting varints) only when positions() is next called.
  class Postings {
   public:
    // Moves to the first/next posting; false at the end (or on a decoding error: then error()
    // is true).
    bool next() {
      if (left_ == 0) return finish();
      // Positions of the previous posting that were not read are skipped lazily by positions().
      if (!pos_read_) pending_ += wdf_;
      pos_read_ = false;
      uint64_t v;
      if (p_ < end_ && *p_ < 0x80) {
        v = *p_++;
      } else if (!varint(&v)) {
        return fail();
      }
      uint64_t d = uint64_t(doc_) + (v >> 1);
      if ((v >> 1) == 0 || d > last_doc_) return fail();
      doc_ = uint32_t(d);
      if (v & 1) {
        wdf_ = 1;
      } else {
        if (p_ < end_ && *p_ < 0x80) {
          v = *p_++;
        } else if (!varint(&v)) {
          return fail();
        }
        if (v > 0xfffffffdu) return fail();
        wdf_ = uint32_t(v) + 2;
      }
      --left_;
      return true;
    }
    uint32_t doc() const { return doc_; }
    uint32_t wdf() const { return wdf_; }
    // Positions of the current posting (exact terms only; Z terms have none: empty). Appends to
    // out. Only valid before the next next(), and once per posting (a second call appends
    // nothing).
    void positions(std::vector<uint32_t>* out);
    uint32_t df() const { return df_; }  // postings of the term in this segment
    bool error() const { return error_; }

   private:
    friend class TextSegment;
    friend Status merge_segments(const std::vector<std::shared_ptr<const TextSegment>>& in,
                                 const std::function<bool(uint32_t did)>& keep,
                                 const std::string& path, bool sync);
    bool varint(uint64_t* v);
    bool finish();
    // The bytes of the current posting's positions (skipping unread earlier ones); false on a
    // decoding error. Marks them read.
    bool position_bytes(const uint8_t** begin, const uint8_t** end);
    bool fail() {
      error_ = true;
      left_ = 0;
      wdf_ = 0;
      pos_read_ = true;
      return false;
    }
    const uint8_t* p_ = nullptr;  // postings cursor
    const uint8_t* end_ = nullptr;
    const uint8_t* q_ = nullptr;  // positions cursor (nullptr for Z terms)
    const uint8_t* qend_ = nullptr;
    uint64_t pending_ = 0;  // position varints to skip before the current posting's
    uint32_t doc_ = 0, wdf_ = 0, df_ = 0, left_ = 0, last_doc_ = 0;
    bool pos_read_ = true;
    bool error_ = false;
  };
  // The postings of `term` ("Z"-prefixed for stems); false when the segment does not have it.
  // O(log terms): a binary search of the restart index, then at most 15 entries decoded.
  bool postings(std::string_view term, Postings* out) const;
  // Every term in sorted order.
  void for_each_term(const std::function<void(std::string_view term)>& f) const;

 private:
  struct Entry;
  class DictCursor;
  friend Status merge_segments(const std::vector<std::shared_ptr<const TextSegment>>& in,
                               const std::function<bool(uint32_t did)>& keep,
                               const std::string& path, bool sync);
  TextSegment() = default;
  Status parse();
  void make_postings(const Entry& e, Postings* out) const;
  template <typename F>
  void for_each_doc(F&& f) const;

  const uint8_t* base_ = nullptr;  // the mapping
  size_t size_ = 0;
  uint32_t kind_ = 0, first_doc_ = 0, last_doc_ = 0, docs_ = 0, terms_ = 0;
  const uint8_t* doc_table_ = nullptr;
  const uint8_t* restarts_ = nullptr;
  const uint8_t* dict_ = nullptr;
  const uint8_t* pst_ = nullptr;
  const uint8_t* pos_ = nullptr;
  uint64_t doc_table_bytes_ = 0, dict_bytes_ = 0, pst_bytes_ = 0, pos_bytes_ = 0;
  uint64_t restart_count_ = 0;
};

// Writes one segment at `path` (as SegmentBuilder::write) holding the documents of `in` (ordered
// by docid ranges, which must be ascending and disjoint: kInvalid otherwise) for which keep(did)
// is true, with their postings, positions and lengths unchanged; terms left without postings are
// dropped. A k-way merge of the dictionaries; no re-tokenising. keep() is called once per input
// document. The output is assembled in memory (about its file size) before it is written.
// kCorruption if an input's postings fail to decode.
Status merge_segments(const std::vector<std::shared_ptr<const TextSegment>>& in,
                      const std::function<bool(uint32_t did)>& keep, const std::string& path,
                      bool sync);

}  // namespace ds
