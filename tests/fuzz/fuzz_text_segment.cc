// fuzz_text_segment: text segment files (search/text_segment.h) with arbitrary contents.
//
// The input is a segment file whose last 8 bytes are replaced by the XXH3-64 of the rest, so
// that inputs pass the checksum and reach the structural checks and the decoders (a damaged
// file that happens to carry a valid checksum). Checked beyond "no crash, no out-of-bounds
// read": a file open() accepts decodes — every term, its postings, positions and document
// lengths — with docids ascending within a term and inside the segment's range; and merging it
// (keeping every document) gives a file that opens and holds the same postings of the documents
// its document table lists (a merge copies documents: a crafted posting of a document the table
// does not have is read safely but not carried over; a writer never makes one).
#include <unistd.h>
#include <xxhash.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "search/text_segment.h"

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_text_segment: INVARIANT VIOLATED: %s\n", what);
  abort();
}

std::string scratch_dir() {
  static std::string dir = [] {
    char tmpl[] = "/tmp/fuzz_text_segment.XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) abort();
    return std::string(tmpl);
  }();
  return dir;
}

using Postings = std::vector<std::vector<uint32_t>>;  // per term: doc, wdf, positions...

// Every term's postings; false when decoding reports an error.
bool decode(const ds::TextSegment& seg, Postings* out) {
  bool ok = true;
  seg.for_each_term([&](std::string_view term) {
    ds::TextSegment::Postings p;
    if (!seg.postings(term, &p)) fail("a listed term is not found");
    std::vector<uint32_t> row;
    uint32_t prev = 0;
    while (p.next()) {
      if (p.doc() <= prev) fail("docids not ascending");
      if (p.doc() < seg.first_doc() || p.doc() > seg.last_doc()) fail("docid outside the range");
      prev = p.doc();
      if (!seg.has_doc(p.doc())) {
        // A posting of a document the doc table does not have (a crafted file): decoded
        // safely, not carried by a merge (which copies documents).
        std::vector<uint32_t> skipped;
        p.positions(&skipped);
        continue;
      }
      row.push_back(p.doc());
      row.push_back(p.wdf());
      std::vector<uint32_t> pos;
      p.positions(&pos);
      row.insert(row.end(), pos.begin(), pos.end());
      (void)seg.doc_length(p.doc());
    }
    if (p.error()) ok = false;
    out->push_back(std::move(row));
  });
  return ok;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  if (bytes.size() >= 8) {
    uint64_t sum = XXH3_64bits(bytes.data(), bytes.size() - 8);
    std::memcpy(bytes.data() + bytes.size() - 8, &sum, 8);  // little-endian hosts
  }
  const std::string path = scratch_dir() + "/in.seg";
  const std::string merged = scratch_dir() + "/merged.seg";
  ::unlink(path.c_str());
  ::unlink(merged.c_str());
  if (FILE* f = std::fopen(path.c_str(), "wb")) {
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
  } else {
    abort();
  }
  std::shared_ptr<const ds::TextSegment> seg;
  if (!ds::TextSegment::open(path, &seg)) return 0;
  Postings in;
  if (!decode(*seg, &in)) return 0;  // a decoding error is reported, not a crash
  ds::Status s = ds::merge_segments({seg}, [](uint32_t) { return true; }, merged, false);
  if (!s) return 0;  // merges may refuse what they cannot read
  std::shared_ptr<const ds::TextSegment> out;
  if (!ds::TextSegment::open(merged, &out)) fail("a merged file does not open");
  Postings again;
  if (!decode(*out, &again)) fail("a merged file does not decode");
  // Terms left without postings are dropped by a merge; compare the non-empty ones.
  Postings a, b;
  for (auto& r : in) {
    if (!r.empty()) a.push_back(r);
  }
  for (auto& r : again) {
    if (!r.empty()) b.push_back(r);
  }
  if (a != b) fail("a merge changed the postings");
  return 0;
}
