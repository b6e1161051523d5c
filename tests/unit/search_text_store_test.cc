// search/text_store: the segment list a commit publishes — a flush lists a new segment after the
// committed ones; a failed commit removes what it added; the policy merges the newest eight
// same-size segments on the store's thread, the next flush lists the merged file in their place
// (dropping the documents keep() rejects), and the commit that does removes the inputs; a failed
// commit of a merge keeps the inputs; open() removes files no commit lists.
#include "search/text_store.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "temp_dir.h"

namespace ds {
namespace {

namespace fs = std::filesystem;

using Postings = std::vector<std::pair<uint32_t, uint32_t>>;

Postings read(TextStore& store, const std::string& manifest, const std::string& term) {
  std::vector<std::shared_ptr<const TextSegment>> segs;
  EXPECT_TRUE(store.segments(manifest, &segs));
  Postings out;
  for (const auto& seg : segs) {
    TextSegment::Postings p;
    if (!seg->postings(term, &p)) continue;
    while (p.next()) out.emplace_back(p.doc(), p.wdf());
  }
  return out;
}

size_t files(const std::string& dir) {
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir)) n += e.path().extension() == ".seg";
  return n;
}

class TextStoreTest : public ::testing::Test {
 protected:
  // One flushed and committed segment per call, holding document `did`.
  std::string commit_one(uint32_t did, bool ok = true) {
    store_.add(did, "word" + std::to_string(did % 3) + " common");
    std::string manifest;
    EXPECT_TRUE(store_.flush(&manifest));
    store_.committed(manifest, ok);
    return manifest;
  }
  test::TempDir dir_;
  std::string text_ = dir_ / "text";
  TextStore store_{text_, false};
};

TEST_F(TextStoreTest, FlushListsTheNewSegmentAfterTheCommittedOnesAndAFailedCommitRemovesIt) {
  ASSERT_TRUE(store_.open(""));
  std::string one = commit_one(1);
  EXPECT_EQ(TextStore::parse_manifest(one).size(), 1u);
  std::string failed = commit_one(2, false);
  EXPECT_EQ(TextStore::parse_manifest(failed).size(), 2u);
  EXPECT_EQ(files(text_), 1u);  // the failed commit's segment is gone
  std::string two = commit_one(3);
  EXPECT_EQ(TextStore::parse_manifest(two).size(), 2u);
  EXPECT_EQ(read(store_, two, "common"), (Postings{{1, 1}, {3, 1}}));
}

TEST_F(TextStoreTest, EightSameSizeSegmentsAreMergedAndTheNextCommitReplacesThem) {
  ASSERT_TRUE(store_.open(""));
  std::string manifest;
  for (uint32_t did = 1; did <= 8; ++did) manifest = commit_one(did);
  ASSERT_EQ(files(text_), 8u);
  Postings before = read(store_, manifest, "common");
  store_.start_merge([](uint32_t did) { return did != 5; });
  store_.wait_merge();
  EXPECT_EQ(files(text_), 9u);  // the merged file, not listed yet
  store_.add(9, "common tail");
  ASSERT_TRUE(store_.flush(&manifest));
  EXPECT_EQ(TextStore::parse_manifest(manifest).size(), 2u);  // merged + the new one
  store_.committed(manifest, true);
  EXPECT_EQ(files(text_), 2u);  // the inputs are removed
  Postings want;
  for (auto p : before) {
    if (p.first != 5) want.push_back(p);
  }
  want.emplace_back(9, 1);
  EXPECT_EQ(read(store_, manifest, "common"), want);
}

TEST_F(TextStoreTest, AFailedCommitOfAMergeKeepsItsInputs) {
  ASSERT_TRUE(store_.open(""));
  std::string manifest;
  for (uint32_t did = 1; did <= 8; ++did) manifest = commit_one(did);
  store_.start_merge([](uint32_t) { return true; });
  store_.wait_merge();
  std::string with_merge;
  ASSERT_TRUE(store_.flush(&with_merge));
  EXPECT_EQ(TextStore::parse_manifest(with_merge).size(), 1u);
  store_.committed(with_merge, false);
  EXPECT_EQ(files(text_), 8u);
  EXPECT_EQ(read(store_, manifest, "common").size(), 8u);
}

// Segments of the given document counts, oldest first.
std::vector<std::shared_ptr<const TextSegment>> made(const std::string& dir,
                                                     const std::vector<uint32_t>& docs) {
  std::vector<std::shared_ptr<const TextSegment>> out;
  uint32_t did = 1;
  for (size_t i = 0; i < docs.size(); ++i) {
    SegmentBuilder b;
    for (uint32_t k = 0; k < docs[i]; ++k) b.add(did++, "w");
    static int made_files = 0;
    std::string path = dir + "/m" + std::to_string(++made_files) + ".seg";
    EXPECT_TRUE(b.write(path, false));
    std::shared_ptr<const TextSegment> seg;
    EXPECT_TRUE(TextSegment::open(path, &seg));
    out.push_back(seg);
  }
  return out;
}

TEST_F(TextStoreTest, ThePolicyMergesEightInARowOfOneLevelAndSmallerOnesBetweenThem) {
  size_t first = 99;
  // Seven of one level: nothing to merge.
  EXPECT_FALSE(TextStore::pick_merge(made(dir_.path(), {1, 1, 1, 1, 1, 1, 1}), &first));
  // Eight: the oldest eight.
  EXPECT_TRUE(TextStore::pick_merge(made(dir_.path(), {1, 1, 1, 1, 1, 1, 1, 1}), &first));
  EXPECT_EQ(first, 0u);
  // A large segment, then eight small ones: those eight.
  EXPECT_TRUE(TextStore::pick_merge(made(dir_.path(), {4096, 2, 1, 3, 1, 1, 2, 1, 1}), &first));
  EXPECT_EQ(first, 1u);
  // Mixed batch sizes (a timer-cut batch of 8 after every seven of 1): the small ones between
  // belong to the larger ones' level, so the run merges — it used to stall when only the newest
  // eight of one size class were merged.
  EXPECT_TRUE(TextStore::pick_merge(made(dir_.path(), {1, 1, 1, 1, 1, 1, 1, 8}), &first));
  EXPECT_EQ(first, 0u);
  // Levels with fewer than eight segments each: nothing.
  EXPECT_FALSE(TextStore::pick_merge(made(dir_.path(), {4096, 512, 512, 64, 64, 8, 1}), &first));
}

TEST_F(TextStoreTest, MergesStayWithinTheirByteLimit) {
  auto segs = made(dir_.path(), {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1});
  uint64_t one = segs[0]->bytes();
  size_t first = 99;
  // Eight fit: merged.
  EXPECT_TRUE(TextStore::pick_merge(segs, &first, 8 * one));
  EXPECT_EQ(first, 0u);
  // Eight do not fit: nothing, however many there are.
  EXPECT_FALSE(TextStore::pick_merge(segs, &first, 8 * one - 1));
  // A segment at the limit is never merged again, and splits the list: the eight after it are.
  auto split = made(dir_.path(), {4, 1, 1, 1, 4096, 1, 1, 1, 1, 1, 1, 1, 1});
  EXPECT_TRUE(TextStore::pick_merge(split, &first, split[4]->bytes()));
  EXPECT_EQ(first, 5u);
  // Seven small ones before a large one: one level's run of eight with it, merged without the
  // limit (the large one read again); with the limit, not.
  auto before = made(dir_.path(), {1, 1, 1, 1, 1, 1, 1, 4096, 1});
  EXPECT_TRUE(TextStore::pick_merge(before, &first));
  EXPECT_EQ(first, 0u);
  EXPECT_FALSE(TextStore::pick_merge(before, &first, before[7]->bytes()));
}

// Commits of mixed sizes, merged as the policy asks (synchronously here): the number of
// segments stays logarithmic, and the postings are those of every committed document.
TEST_F(TextStoreTest, MixedBatchSizesKeepTheSegmentCountLogarithmic) {
  ASSERT_TRUE(store_.open(""));
  uint32_t did = 0;
  std::string manifest;
  for (int batch = 0; batch < 400; ++batch) {
    int n = batch % 5 == 4 ? 60 : 1 + batch % 3;  // 1, 2, 3, 1, 60, …
    for (int k = 0; k < n; ++k) store_.add(++did, "common");
    ASSERT_TRUE(store_.flush(&manifest));
    store_.committed(manifest, true);
    store_.start_merge([](uint32_t) { return true; });
    store_.wait_merge();
  }
  size_t segments = TextStore::parse_manifest(manifest).size();
  EXPECT_LE(segments, 24u) << manifest;  // about 7 per level, 3 levels for ~5,000 documents
  Postings all = read(store_, manifest, "common");
  ASSERT_EQ(all.size(), did);
  for (uint32_t i = 0; i < did; ++i) EXPECT_EQ(all[i].first, i + 1);
}

TEST_F(TextStoreTest, NextDocIsAboveEveryListedDocumentAfterReopen) {
  ASSERT_TRUE(store_.open(""));
  for (uint32_t did = 3; did <= 7; ++did) store_.add(did, "w");
  std::string manifest;
  ASSERT_TRUE(store_.flush(&manifest));
  store_.committed(manifest, true);
  EXPECT_EQ(store_.next_doc(), 8u);
  TextStore again(text_, false);
  EXPECT_EQ(again.next_doc(), 1u);
  ASSERT_TRUE(again.open(manifest));
  EXPECT_EQ(again.next_doc(), 8u);  // a Xapian database without documents 3..7 still skips them
}

TEST_F(TextStoreTest, OpenRemovesFilesNoCommitListsAndRefusesAMissingListedOne) {
  std::string manifest;
  {
    TextStore s(text_, false);
    ASSERT_TRUE(s.open(""));
    s.add(1, "kept");
    ASSERT_TRUE(s.flush(&manifest));
    s.committed(manifest, true);
  }
  std::ofstream(text_ + "/77.seg") << "never committed";
  std::ofstream(text_ + "/78.seg.tmp") << "half written";
  TextStore again(text_, false);
  ASSERT_TRUE(again.open(manifest));
  EXPECT_FALSE(fs::exists(text_ + "/77.seg"));
  EXPECT_FALSE(fs::exists(text_ + "/78.seg.tmp"));
  EXPECT_EQ(read(again, manifest, "kept"), (Postings{{1, 1}}));
  TextStore missing(text_, false);
  Status s = missing.open(manifest + " 5");
  EXPECT_FALSE(s);
}

}  // namespace
}  // namespace ds
