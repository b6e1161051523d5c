// search/posting_cache: a cached list holds exactly the live postings the view decodes — after
// additions (extended), for an older view (a prefix), after a deletion (rebuilt; older views not
// served) and for a recreated database — only frequent words from their second request are
// cached, the budget is kept (least recently used lists go, tenants share it and each evicts
// only its own), and seek() finds what lower_bound finds.
#include "search/posting_cache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "search/doc_lengths.h"
#include "search/index.h"
#include "search/text_segment.h"
#include "search/text_view.h"
#include "temp_dir.h"

namespace ds {
namespace {

using Postings = std::vector<std::pair<uint32_t, uint32_t>>;

// A skeleton database and its segments, as SearchIndex keeps them (one segment per add()).
class Corpus {
 public:
  Corpus() { reset(); }
  void reset() {
    skel_.close();
    skel_ = Xapian::WritableDatabase(dir_ / "db", Xapian::DB_CREATE_OR_OVERWRITE);
    segments_.clear();
  }
  // Documents [from, to): "even" in even ones (wdf 1 + i % 3), "third" in every third, "all".
  void add(int from, int to) {
    SegmentBuilder b;
    for (int i = from; i < to; ++i) {
      std::string text = "all id" + std::to_string(i);
      if (i % 2 == 0) {
        for (int k = 0; k <= i % 3; ++k) text += " even";
      }
      if (i % 3 == 0) text += " third";
      Xapian::docid did = skel_.get_lastdocid() + 1;
      uint32_t len = b.add(did, text);
      skel_.replace_document(did, SearchIndex::make_skeleton("t", "s", i, "x", len));
    }
    skel_.commit();
    std::string path = dir_ / (std::to_string(++files_) + ".seg");
    EXPECT_TRUE(b.write(path, false));
    std::shared_ptr<const TextSegment> seg;
    EXPECT_TRUE(TextSegment::open(path, &seg));
    segments_.push_back(seg);
  }
  void remove(Xapian::docid did) {
    skel_.delete_document(did);
    skel_.commit();
  }
  std::unique_ptr<TextView> view() {
    return std::make_unique<TextView>(segments_, lengths_.update(skel_));
  }

 private:
  test::TempDir dir_;
  Xapian::WritableDatabase skel_;
  std::vector<std::shared_ptr<const TextSegment>> segments_;
  DocLengths lengths_;
  int files_ = 0;
};

Postings decoded(const TextView& v, const std::string& term) {
  Postings out;
  v.decode(term, 0, [&](const TextPosting& p) { out.emplace_back(p.did, p.wdf); });
  return out;
}

Postings cached(PostingCache& c, const TextView& v, const std::string& term) {
  auto l = c.get(v, term);
  if (!l) l = c.get(v, term);  // cached from the second request on
  EXPECT_TRUE(l.has_value()) << term;
  Postings out;
  if (!l) return out;
  for (size_t i = 0; i < l->size; ++i) out.emplace_back((*l)[i].did, (*l)[i].wdf);
  return out;
}

TEST(PostingCacheTest, ListsFollowAdditionsOlderViewsDeletionsAndRecreation) {
  Corpus c;
  c.add(0, 300);
  PostingCache cache(1 << 20, 1);
  auto old = c.view();
  for (const char* t : {"even", "third", "all"}) EXPECT_EQ(cached(cache, *old, t), decoded(*old, t)) << t;

  c.add(300, 5000);  // grows every list (and past its first capacity), in a second segment
  auto now = c.view();
  for (const char* t : {"even", "third", "all"}) {
    EXPECT_EQ(cached(cache, *now, t), decoded(*now, t)) << t;
    EXPECT_EQ(cached(cache, *old, t), decoded(*old, t)) << t;  // the prefix it can see
  }
  c.remove(10);
  c.remove(4000);
  auto after = c.view();
  for (const char* t : {"even", "third", "all"}) {
    EXPECT_EQ(cached(cache, *after, t), decoded(*after, t)) << t;
  }
  // A view from before the deletion still sees documents 10 and 4000: not served.
  EXPECT_FALSE(cache.get(*now, "even").has_value());

  c.reset();  // a recreated database
  c.add(0, 50);
  auto fresh = c.view();
  for (const char* t : {"even", "third", "all"}) EXPECT_EQ(cached(cache, *fresh, t), decoded(*fresh, t)) << t;
}

TEST(PostingCacheTest, AWordIsCachedFromItsSecondRequest) {
  Corpus c;
  c.add(0, 300);
  auto v = c.view();
  PostingCache cache(1 << 20, 1);
  EXPECT_FALSE(cache.get(*v, "all").has_value());
  EXPECT_EQ(cache.bytes(), 0u);
  EXPECT_TRUE(cache.get(*v, "all").has_value());
  EXPECT_GT(cache.bytes(), 0u);
}

TEST(PostingCacheTest, ShortListsAndListsOverTheBudgetAreNotCached) {
  Corpus c;
  c.add(0, 300);
  auto v = c.view();
  PostingCache cache(1 << 20, 200);
  for (int i = 0; i < 2; ++i) cache.get(*v, "third");
  EXPECT_EQ(cached(cache, *v, "all"), decoded(*v, "all"));  // 300 documents
  EXPECT_FALSE(cache.get(*v, "third").has_value());         // 100
  PostingCache tiny(100 * sizeof(TextPosting), 1);
  for (int i = 0; i < 2; ++i) EXPECT_FALSE(tiny.get(*v, "all").has_value());
  PostingCache off(0, 1);
  for (int i = 0; i < 2; ++i) EXPECT_FALSE(off.get(*v, "all").has_value());
}

TEST(PostingCacheTest, TheLeastRecentlyUsedListsGoBeyondTheBudget) {
  Corpus c;
  c.add(0, 300);
  auto v = c.view();
  // Room for "all" (300 postings) and "even" (150), not also "third" (100).
  PostingCache cache(480 * sizeof(TextPosting), 1);
  for (const char* t : {"all", "even", "third"}) cache.get(*v, t);  // seen
  auto all = cache.get(*v, "all");
  ASSERT_TRUE(cache.get(*v, "even"));
  ASSERT_TRUE(cache.get(*v, "third"));
  EXPECT_LE(cache.bytes(), 480 * sizeof(TextPosting));
  // "all" went first; the list handed out before still reads its postings.
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(all->size, 300u);
  EXPECT_EQ((*all)[299].did, 300u);
}

TEST(PostingCacheTest, TenantsShareOneBudgetAndEachEvictsOnlyItsOwnLists) {
  Corpus c;
  c.add(0, 300);
  auto v = c.view();
  // Room for "all" (300 postings) and "even" (150) together.
  auto budget = std::make_shared<PostingCache::Budget>(480 * sizeof(TextPosting));
  PostingCache a(budget, 1), b(budget, 1);
  EXPECT_EQ(cached(a, *v, "all").size(), 300u);
  EXPECT_EQ(cached(a, *v, "even").size(), 150u);
  EXPECT_EQ(budget->used(), a.bytes());
  // b is over the shared budget with its first list: it keeps that one, a keeps both of its own.
  EXPECT_EQ(cached(b, *v, "third").size(), 100u);
  EXPECT_EQ(a.bytes(), 450 * sizeof(TextPosting));
  EXPECT_EQ(b.bytes(), 100 * sizeof(TextPosting));
  // Its second list makes b drop its first.
  EXPECT_EQ(cached(b, *v, "even").size(), 150u);
  EXPECT_EQ(b.bytes(), 150 * sizeof(TextPosting));
  EXPECT_EQ(budget->used(), a.bytes() + b.bytes());
  {
    PostingCache gone(budget, 1);
    cached(gone, *v, "third");
    EXPECT_EQ(budget->used(), a.bytes() + b.bytes() + gone.bytes());
  }
  EXPECT_EQ(budget->used(), a.bytes() + b.bytes());  // a destroyed cache gives its bytes back
}

TEST(PostingListTest, SeekFindsWhatLowerBoundFinds) {
  std::mt19937 rng(7);
  std::vector<TextPosting> list;
  std::vector<uint32_t> ids;
  for (uint32_t d = 1; d <= 3000; ++d) {
    if (rng() % 5 == 0) {
      list.push_back({d, 1});
      ids.push_back(d);
    }
  }
  PostingList l;
  l.data = list.data();
  l.size = list.size();
  for (int k = 0; k < 2000; ++k) {
    size_t from = rng() % (ids.size() + 1);
    uint32_t target = 1 + rng() % 3100;
    size_t want = std::max<size_t>(
        from, static_cast<size_t>(std::lower_bound(ids.begin(), ids.end(), target) - ids.begin()));
    ASSERT_EQ(l.seek(from, target), want) << from << " " << target;
  }
}

}  // namespace
}  // namespace ds
