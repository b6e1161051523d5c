// search/text_segment: a written segment reads back every term's postings, wdf and positions
// and every document's length as Xapian::TermGenerator indexes the same texts; lookups of absent
// terms; docid gaps; merges dropping documents equal segments built from the kept documents;
// damaged files are refused (and checksum-valid damaged contents never read out of bounds).
#include "search/text_segment.h"

#include <gtest/gtest.h>
#include <xapian.h>
#include <xxhash.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "temp_dir.h"

namespace ds {
namespace {

struct Posting {
  uint32_t doc, wdf;
  std::vector<uint32_t> positions;
  bool operator==(const Posting&) const = default;
};
using Index = std::map<std::string, std::vector<Posting>>;  // term -> postings, docid ascending

struct Doc {
  uint32_t id;
  std::string text;
};

// The postings TermGenerator (english, STEM_SOME) gives `docs`; lengths = sum of wdf.
Index xapian_index(const std::vector<Doc>& docs, std::map<uint32_t, uint32_t>* lengths) {
  Xapian::TermGenerator tg;
  tg.set_stemmer(Xapian::Stem("english"));
  tg.set_stemming_strategy(Xapian::TermGenerator::STEM_SOME);
  Index idx;
  for (const Doc& d : docs) {
    Xapian::Document doc;
    tg.set_document(doc);
    tg.index_text(d.text);
    uint32_t len = 0;
    for (auto it = doc.termlist_begin(); it != doc.termlist_end(); ++it) {
      Posting p{d.id, it.get_wdf(), {}};
      for (auto q = it.positionlist_begin(); q != it.positionlist_end(); ++q)
        p.positions.push_back(*q);
      len += p.wdf;
      idx[*it].push_back(std::move(p));
    }
    (*lengths)[d.id] = len;
  }
  return idx;
}

// Everything a segment holds, read through its public interface.
Index read_index(const TextSegment& seg) {
  Index idx;
  seg.for_each_term([&](std::string_view term) {
    TextSegment::Postings p;
    EXPECT_TRUE(seg.postings(term, &p)) << term;
    auto& list = idx[std::string(term)];
    while (p.next()) {
      Posting x{p.doc(), p.wdf(), {}};
      p.positions(&x.positions);
      list.push_back(std::move(x));
    }
    EXPECT_FALSE(p.error()) << term;
    EXPECT_EQ(list.size(), p.df()) << term;
  });
  return idx;
}

std::string text_for(std::mt19937& rng) {
  static const std::vector<std::string> vocab = {
      "the",     "agent",   "runs",    "running", "tool",     "call",    "error",   "file",
      "read",    "written", "C++",     "don't",   "U.S.A.",   "1,000",   "3.14",    "café",
      "Straße",  "καλημέρα", "中文",   "zero\u200bwidth", "ls -la", "src/main.cc", "{\"a\":1}",
      "connection", "connected", "generously", "AT&T", "x86_64", "id_" , "Hello", "WORLD"};
  std::string s;
  int n = std::uniform_int_distribution<int>(0, 40)(rng);
  for (int i = 0; i < n; ++i) {
    int r = std::uniform_int_distribution<int>(0, 99)(rng);
    if (r < 85)
      s += vocab[size_t(r) % vocab.size()];
    else
      s += "u" + std::to_string(std::uniform_int_distribution<int>(0, 5000)(rng));
    s += (r % 7 == 0) ? ", " : " ";
  }
  return s;
}

// Documents with ids starting at `first`, with random gaps.
std::vector<Doc> make_docs(std::mt19937& rng, uint32_t first, size_t n) {
  std::vector<Doc> docs;
  uint32_t id = first;
  for (size_t i = 0; i < n; ++i) {
    docs.push_back({id, text_for(rng)});
    id += std::uniform_int_distribution<int>(0, 9)(rng) == 0 ? 3 : 1;
  }
  return docs;
}

std::shared_ptr<const TextSegment> build(const std::vector<Doc>& docs, const std::string& path,
                                         std::map<uint32_t, uint32_t>* lengths = nullptr) {
  SegmentBuilder b;
  for (const Doc& d : docs) {
    uint32_t len = b.add(d.id, d.text);
    if (lengths) (*lengths)[d.id] = len;
  }
  EXPECT_EQ(b.docs(), docs.size());
  Status s = b.write(path, false);
  EXPECT_TRUE(s) << s.message();
  EXPECT_TRUE(b.empty());
  std::shared_ptr<const TextSegment> seg;
  s = TextSegment::open(path, &seg);
  EXPECT_TRUE(s) << s.message();
  return seg;
}

class TextSegmentTest : public ::testing::Test {
 protected:
  test::TempDir dir_;
};

TEST_F(TextSegmentTest, ReadsBackWhatTermGeneratorIndexes) {
  std::mt19937 rng(1);
  std::vector<Doc> docs = make_docs(rng, 7, 600);
  std::map<uint32_t, uint32_t> want_len, got_len;
  Index want = xapian_index(docs, &want_len);
  auto seg = build(docs, dir_ / "a.seg", &got_len);
  ASSERT_TRUE(seg);
  EXPECT_EQ(got_len, want_len);  // add()'s return value
  EXPECT_EQ(seg->docs(), docs.size());
  EXPECT_EQ(seg->first_doc(), docs.front().id);
  EXPECT_EQ(seg->last_doc(), docs.back().id);
  EXPECT_EQ(seg->bytes(), std::filesystem::file_size(dir_ / "a.seg"));
  Index got = read_index(*seg);
  EXPECT_EQ(got.size(), want.size());
  EXPECT_TRUE(got == want);
  for (auto& [term, list] : want) {  // direct lookups, not via for_each_term
    TextSegment::Postings p;
    ASSERT_TRUE(seg->postings(term, &p)) << term;
    EXPECT_EQ(p.df(), list.size()) << term;
  }
  for (uint32_t id = 0; id <= seg->last_doc() + 2; ++id) {
    auto it = want_len.find(id);
    EXPECT_EQ(seg->doc_length(id), it == want_len.end() ? 0u : it->second) << id;
  }
}

TEST_F(TextSegmentTest, TermsAreListedInSortedOrder) {
  std::mt19937 rng(2);
  auto seg = build(make_docs(rng, 1, 200), dir_ / "a.seg");
  ASSERT_TRUE(seg);
  std::vector<std::string> terms;
  seg->for_each_term([&](std::string_view t) { terms.emplace_back(t); });
  EXPECT_EQ(terms.size(), seg->terms());
  EXPECT_TRUE(std::is_sorted(terms.begin(), terms.end()));
  EXPECT_EQ(std::set<std::string>(terms.begin(), terms.end()).size(), terms.size());
}

TEST_F(TextSegmentTest, MissingTermsAreNotFound) {
  auto seg = build({{1, "beta delta"}, {2, "delta zulu"}}, dir_ / "a.seg");
  ASSERT_TRUE(seg);
  TextSegment::Postings p;
  for (const char* t : {"", "a", "alpha", "bet", "betaa", "c", "gamma", "zzz", "Z", "Zdelt",
                        "Zzulux", "\xff\xff"})
    EXPECT_FALSE(seg->postings(t, &p)) << t;
  EXPECT_TRUE(seg->postings("beta", &p));
  EXPECT_TRUE(seg->postings("Zbeta", &p));
  EXPECT_TRUE(seg->postings("zulu", &p));
  EXPECT_TRUE(seg->postings("Zzulu", &p));
  EXPECT_FALSE(seg->postings(std::string(300, 'a'), &p));
}

TEST_F(TextSegmentTest, StemTermsHaveNoPositionsAndCountOccurrences) {
  auto seg = build({{3, "running runs run"}}, dir_ / "a.seg");
  ASSERT_TRUE(seg);
  TextSegment::Postings p;
  ASSERT_TRUE(seg->postings("Zrun", &p));
  ASSERT_TRUE(p.next());
  EXPECT_EQ(p.doc(), 3u);
  EXPECT_EQ(p.wdf(), 3u);
  std::vector<uint32_t> pos;
  p.positions(&pos);
  EXPECT_TRUE(pos.empty());
  EXPECT_FALSE(p.next());
  EXPECT_FALSE(p.error());
  ASSERT_TRUE(seg->postings("runs", &p));
  ASSERT_TRUE(p.next());
  p.positions(&pos);
  EXPECT_EQ(pos, std::vector<uint32_t>{2});
  EXPECT_EQ(seg->doc_length(3), 6u);
}

TEST_F(TextSegmentTest, UnreadPositionsAreSkipped) {
  // Positions of some postings are read, of others not: the ones read must still be right.
  std::vector<Doc> docs;
  for (uint32_t i = 1; i <= 50; ++i) {
    std::string t;
    for (uint32_t k = 0; k < i % 5 + 1; ++k) t += "word filler" + std::to_string(k) + " ";
    docs.push_back({i, t});
  }
  std::map<uint32_t, uint32_t> lens;
  Index want = xapian_index(docs, &lens);
  auto seg = build(docs, dir_ / "a.seg");
  ASSERT_TRUE(seg);
  TextSegment::Postings p;
  ASSERT_TRUE(seg->postings("word", &p));
  size_t k = 0;
  while (p.next()) {
    ASSERT_LT(k, want["word"].size());
    if (k % 3 == 2) {
      std::vector<uint32_t> pos;
      p.positions(&pos);
      EXPECT_EQ(pos, want["word"][k].positions) << k;
    }
    ++k;
  }
  EXPECT_EQ(k, want["word"].size());
  EXPECT_FALSE(p.error());
}

TEST_F(TextSegmentTest, DocidGapsAndEmptyDocuments) {
  SegmentBuilder b;
  EXPECT_EQ(b.add(5, "alpha beta"), 4u);
  EXPECT_EQ(b.add(6, ""), 0u);  // a document without words still counts
  EXPECT_EQ(b.add(100, "beta"), 2u);
  EXPECT_EQ(b.add(100, "again"), 0u);  // not increasing: refused
  EXPECT_EQ(b.add(99, "again"), 0u);
  EXPECT_EQ(b.add(1000, "beta 42"), 3u);
  EXPECT_EQ(b.docs(), 4u);
  EXPECT_GT(b.memory(), 0u);
  ASSERT_TRUE(b.write(dir_ / "a.seg", true));
  std::shared_ptr<const TextSegment> seg;
  ASSERT_TRUE(TextSegment::open(dir_ / "a.seg", &seg));
  EXPECT_EQ(seg->first_doc(), 5u);
  EXPECT_EQ(seg->last_doc(), 1000u);
  EXPECT_EQ(seg->docs(), 4u);
  EXPECT_EQ(seg->doc_length(5), 4u);
  EXPECT_EQ(seg->doc_length(6), 0u);
  EXPECT_TRUE(seg->has_doc(6));
  EXPECT_FALSE(seg->has_doc(7));
  EXPECT_EQ(seg->doc_length(7), 0u);
  EXPECT_EQ(seg->doc_length(100), 2u);
  EXPECT_EQ(seg->doc_length(1000), 3u);
  EXPECT_EQ(seg->doc_length(4), 0u);
  EXPECT_EQ(seg->doc_length(1001), 0u);
  TextSegment::Postings p;
  ASSERT_TRUE(seg->postings("beta", &p));
  std::vector<uint32_t> ids;
  while (p.next()) ids.push_back(p.doc());
  EXPECT_EQ(ids, (std::vector<uint32_t>{5, 100, 1000}));
  EXPECT_FALSE(seg->postings("again", &p));
}

TEST_F(TextSegmentTest, FarApartDocidsUseASparseTable) {
  std::vector<Doc> docs = {{1, "one"}, {70000, "two words"}, {4000000000u, "three one"}};
  auto seg = build(docs, dir_ / "a.seg");
  ASSERT_TRUE(seg);
  EXPECT_LT(seg->bytes(), 1000u);
  EXPECT_EQ(seg->doc_length(1), 2u);
  EXPECT_EQ(seg->doc_length(70000), 4u);
  EXPECT_EQ(seg->doc_length(4000000000u), 4u);
  EXPECT_EQ(seg->doc_length(2), 0u);
  std::map<uint32_t, uint32_t> lens;
  EXPECT_TRUE(read_index(*seg) == xapian_index(docs, &lens));
}

TEST_F(TextSegmentTest, EmptyBuilderWritesAnEmptySegment) {
  SegmentBuilder b;
  ASSERT_TRUE(b.write(dir_ / "a.seg", false));
  std::shared_ptr<const TextSegment> seg;
  ASSERT_TRUE(TextSegment::open(dir_ / "a.seg", &seg));
  EXPECT_EQ(seg->docs(), 0u);
  EXPECT_EQ(seg->first_doc(), 0u);
  TextSegment::Postings p;
  EXPECT_FALSE(seg->postings("a", &p));
  EXPECT_FALSE(p.next());
  EXPECT_FALSE(p.error());
}

TEST_F(TextSegmentTest, WriteToAnExistingPathFails) {
  SegmentBuilder b;
  b.add(1, "first");
  ASSERT_TRUE(b.write(dir_ / "a.seg", false));
  uintmax_t size = std::filesystem::file_size(dir_ / "a.seg");
  b.add(1, "second segment with more words");
  Status s = b.write(dir_ / "a.seg", false);
  EXPECT_FALSE(s);
  EXPECT_EQ(s.code(), Status::Code::kConflict);
  EXPECT_EQ(b.docs(), 1u);  // kept for another try
  EXPECT_EQ(std::filesystem::file_size(dir_ / "a.seg"), size);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "a.seg.tmp"));
  EXPECT_TRUE(b.write(dir_ / "b.seg", false));
}

TEST_F(TextSegmentTest, MergeDroppingDocumentsEqualsBuildingFromTheKeptOnes) {
  std::mt19937 rng(3);
  std::vector<Doc> a = make_docs(rng, 1, 300);
  std::vector<Doc> b = make_docs(rng, a.back().id + 5, 250);
  std::vector<Doc> c = make_docs(rng, b.back().id + 1, 280);
  auto keep = [](uint32_t id) { return id % 3 != 0 && !(id >= 400 && id < 450); };
  std::vector<std::shared_ptr<const TextSegment>> in = {
      build(a, dir_ / "a.seg"), build(b, dir_ / "b.seg"), build(c, dir_ / "c.seg")};
  ASSERT_TRUE(in[0] && in[1] && in[2]);
  Status s = merge_segments(in, keep, dir_ / "m.seg", false);
  ASSERT_TRUE(s) << s.message();
  std::shared_ptr<const TextSegment> merged;
  ASSERT_TRUE(TextSegment::open(dir_ / "m.seg", &merged));

  std::vector<Doc> kept;
  for (const auto* v : {&a, &b, &c})
    for (const Doc& d : *v)
      if (keep(d.id)) kept.push_back(d);
  auto direct = build(kept, dir_ / "d.seg");
  ASSERT_TRUE(direct);
  EXPECT_EQ(merged->docs(), kept.size());
  EXPECT_EQ(merged->first_doc(), direct->first_doc());
  EXPECT_EQ(merged->last_doc(), direct->last_doc());
  EXPECT_EQ(merged->terms(), direct->terms());
  Index got = read_index(*merged);
  EXPECT_TRUE(got == read_index(*direct));
  std::map<uint32_t, uint32_t> lens;
  EXPECT_TRUE(got == xapian_index(kept, &lens));
  for (uint32_t id = 0; id <= c.back().id + 1; ++id)
    EXPECT_EQ(merged->doc_length(id), direct->doc_length(id)) << id;
  // Same documents, same terms, same encoding: the files are identical.
  EXPECT_EQ(merged->bytes(), direct->bytes());
}

TEST_F(TextSegmentTest, MergeDropsTermsOfDroppedDocumentsOnly) {
  std::vector<std::shared_ptr<const TextSegment>> in = {
      build({{1, "common onlyone"}, {2, "common"}}, dir_ / "a.seg"),
      build({{3, "common onlythree"}}, dir_ / "b.seg")};
  ASSERT_TRUE(merge_segments(in, [](uint32_t id) { return id != 1; }, dir_ / "m.seg", false));
  std::shared_ptr<const TextSegment> m;
  ASSERT_TRUE(TextSegment::open(dir_ / "m.seg", &m));
  TextSegment::Postings p;
  EXPECT_FALSE(m->postings("onlyone", &p));
  EXPECT_FALSE(m->postings("Zonlyon", &p));
  EXPECT_TRUE(m->postings("onlythree", &p));
  ASSERT_TRUE(m->postings("common", &p));
  EXPECT_EQ(p.df(), 2u);
  EXPECT_EQ(m->docs(), 2u);
  EXPECT_EQ(m->first_doc(), 2u);
  EXPECT_FALSE(m->has_doc(1));
}

TEST_F(TextSegmentTest, MergeRefusesOverlappingInputs) {
  std::vector<std::shared_ptr<const TextSegment>> in = {
      build({{1, "a"}, {5, "b"}}, dir_ / "a.seg"), build({{5, "c"}}, dir_ / "b.seg")};
  Status s = merge_segments(in, [](uint32_t) { return true; }, dir_ / "m.seg", false);
  EXPECT_EQ(s.code(), Status::Code::kInvalid);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "m.seg"));
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}
void write_file(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(data.data(), std::streamsize(data.size()));
}

TEST_F(TextSegmentTest, DamagedFilesAreRefused) {
  std::mt19937 rng(4);
  auto seg = build(make_docs(rng, 1, 100), dir_ / "a.seg");
  ASSERT_TRUE(seg);
  std::string good = read_file(dir_ / "a.seg");
  std::shared_ptr<const TextSegment> out;
  auto refused = [&](const std::string& data, const char* what) {
    write_file(dir_ / "x.seg", data);
    Status s = TextSegment::open(dir_ / "x.seg", &out);
    EXPECT_FALSE(s) << what;
    EXPECT_EQ(s.code(), Status::Code::kCorruption) << what << ": " << s.message();
  };
  std::string flipped = good;
  flipped[flipped.size() / 2] ^= 0x10;
  refused(flipped, "a byte flipped in the middle");
  for (size_t at : {size_t(0), size_t(9), size_t(40), good.size() - 1}) {
    std::string f = good;
    f[at] ^= 1;
    refused(f, "a bit flipped");
  }
  refused(good.substr(0, good.size() - 1), "truncated by one byte");
  refused(good.substr(0, good.size() / 2), "truncated by half");
  refused(good.substr(0, 10), "truncated to 10 bytes");
  refused("", "empty file");
  refused(std::string(4096, '\0'), "zeros");
  refused(good + "x", "a byte appended");
  EXPECT_FALSE(TextSegment::open(dir_ / "missing.seg", &out));
}

// Damage whose checksum is made to match again (a writer bug, not a disk error): open() or the
// decoding must report it, never read outside the file (checked by the ASan build).
TEST_F(TextSegmentTest, DamagedContentsWithAValidChecksumNeverReadOutOfBounds) {
  std::mt19937 rng(5);
  auto seg = build(make_docs(rng, 1, 40), dir_ / "a.seg");
  ASSERT_TRUE(seg);
  std::string good = read_file(dir_ / "a.seg");
  int opened = 0, decode_errors = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string f = good;
    int flips = 1 + int(rng() % 3);
    for (int k = 0; k < flips; ++k) f[rng() % (f.size() - 8)] ^= char(1 << (rng() % 8));
    uint64_t sum = XXH3_64bits(f.data(), f.size() - 8);
    std::memcpy(f.data() + f.size() - 8, &sum, 8);
    std::string path = dir_ / ("d" + std::to_string(i % 4) + ".seg");
    write_file(path, f);
    std::shared_ptr<const TextSegment> d;
    if (!TextSegment::open(path, &d)) continue;
    ++opened;
    bool error = false;
    d->for_each_term([&](std::string_view term) {
      TextSegment::Postings p;
      if (!d->postings(term, &p)) return;
      std::vector<uint32_t> pos;
      uint32_t prev = 0;
      while (p.next()) {
        EXPECT_GT(p.doc(), prev);
        EXPECT_LE(p.doc(), d->last_doc());
        prev = p.doc();
        p.positions(&pos);
      }
      error = error || p.error();
    });
    for (uint32_t id = 0; id < 60; ++id) (void)d->doc_length(id);
    decode_errors += error;
  }
  std::printf("[ info     ] %d of 3000 damaged files opened, %d of them failed decoding\n",
              opened, decode_errors);
}

TEST_F(TextSegmentTest, DecodeSpeedOfALongList) {
  // One term in 300,000 documents (informational: prints postings per second, asserts nothing
  // about time).
  SegmentBuilder b;
  const uint32_t n = 300000;
  for (uint32_t i = 1; i <= n; ++i)
    b.add(i, ((i % 2) ? "common word here id" : "common common other id") + std::to_string(i));
  ASSERT_TRUE(b.write(dir_ / "big.seg", false));
  std::shared_ptr<const TextSegment> seg;
  ASSERT_TRUE(TextSegment::open(dir_ / "big.seg", &seg));
  double best = 1e9, best_pos = 1e9, best_lookup = 1e9;
  uint64_t sum = 0;
  for (int round = 0; round < 5; ++round) {
    auto t0 = std::chrono::steady_clock::now();
    TextSegment::Postings p;
    ASSERT_TRUE(seg->postings("common", &p));
    uint32_t k = 0;
    while (p.next()) {
      sum += p.doc() + p.wdf();
      ++k;
    }
    auto t1 = std::chrono::steady_clock::now();
    ASSERT_EQ(k, n);
    best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
    std::vector<uint32_t> pos;
    ASSERT_TRUE(seg->postings("common", &p));
    while (p.next()) {
      pos.clear();
      p.positions(&pos);
      sum += pos.back();
    }
    auto t2 = std::chrono::steady_clock::now();
    best_pos = std::min(best_pos, std::chrono::duration<double>(t2 - t1).count());
    for (uint32_t i = 0; i < 10000; ++i) {
      std::string t = ((i % 3) ? "id" : "Zid") + std::to_string((i * 7919u) % n + 1);
      sum += seg->postings(t, &p);
    }
    auto t3 = std::chrono::steady_clock::now();
    best_lookup = std::min(best_lookup, std::chrono::duration<double>(t3 - t2).count() / 10000);
  }
  EXPECT_EQ(sum == 0, false);
  std::printf("[ info     ] %u postings: %.2f ms (%.0f M postings/s); with positions %.2f ms; "
              "lookup among %u terms %.0f ns; file %zu bytes\n",
              n, best * 1e3, n / best / 1e6, best_pos * 1e3, seg->terms(), best_lookup * 1e9,
              seg->bytes());
}

}  // namespace
}  // namespace ds
