// search/posting_cache: a cached list holds exactly the postings Xapian iterates for the handle
// it was asked with — after additions (extended), for an older handle (a prefix), after a
// deletion (rebuilt; older handles not served) and for a recreated database — and seek() finds
// what lower_bound finds. Bm25Source with the cache scores parsed queries as without it.
#include "search/posting_cache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "search/bm25_source.h"
#include "search/doc_lengths.h"
#include "search/index.h"
#include "search/query.h"
#include "temp_dir.h"

namespace ds {
namespace {

std::vector<std::pair<Xapian::docid, Xapian::termcount>> xapian_postings(
    const Xapian::Database& db, const std::string& term) {
  std::vector<std::pair<Xapian::docid, Xapian::termcount>> out;
  for (auto it = db.postlist_begin(term); it != db.postlist_end(term); ++it) {
    out.emplace_back(*it, it.get_wdf());
  }
  return out;
}

std::vector<std::pair<Xapian::docid, Xapian::termcount>> cached(PostingCache& c,
                                                                const Xapian::Database& db,
                                                                const std::string& term) {
  auto l = c.get(db, term, db.get_termfreq(term));
  if (!l) l = c.get(db, term, db.get_termfreq(term));  // cached from the second request on
  EXPECT_TRUE(l.has_value()) << term;
  std::vector<std::pair<Xapian::docid, Xapian::termcount>> out;
  if (!l) return out;
  for (size_t i = 0; i < l->size(); ++i) out.emplace_back((*l)[i].did, (*l)[i].wdf);
  return out;
}

class PostingCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = Xapian::WritableDatabase(dir_ / "db", Xapian::DB_CREATE_OR_OVERWRITE);
    add(0, 300);
  }
  // Documents [from, to): "even" in even ones (wdf 1 + i % 3), "third" in every third, "all".
  void add(int from, int to) {
    for (int i = from; i < to; ++i) {
      Xapian::Document d;
      if (i % 2 == 0) d.add_term("even", 1 + static_cast<Xapian::termcount>(i % 3));
      if (i % 3 == 0) d.add_term("third");
      d.add_term("all");
      d.add_term("id" + std::to_string(i));
      db_.add_document(d);
    }
    db_.commit();
  }
  Xapian::Database reader() { return Xapian::Database(dir_ / "db"); }

  test::TempDir dir_;
  Xapian::WritableDatabase db_;
};

TEST_F(PostingCacheTest, ListsFollowAdditionsOlderHandlesDeletionsAndRecreation) {
  PostingCache cache(1 << 20, 1);
  Xapian::Database old = reader();
  for (const char* t : {"even", "third", "all"}) EXPECT_EQ(cached(cache, old, t), xapian_postings(old, t)) << t;

  add(300, 5000);  // grows every list (and past its first capacity)
  Xapian::Database now = reader();
  for (const char* t : {"even", "third", "all"}) {
    EXPECT_EQ(cached(cache, now, t), xapian_postings(now, t)) << t;
    EXPECT_EQ(cached(cache, old, t), xapian_postings(old, t)) << t;  // the prefix it can see
  }

  db_.delete_document(10);
  db_.delete_document(4000);
  db_.commit();
  Xapian::Database after = reader();
  for (const char* t : {"even", "third", "all"}) EXPECT_EQ(cached(cache, after, t), xapian_postings(after, t)) << t;
  // A handle from before the deletion still sees documents 10 and 4000: not served.
  EXPECT_FALSE(cache.get(now, "even", now.get_termfreq("even")).has_value());

  db_.close();
  db_ = Xapian::WritableDatabase(dir_ / "db", Xapian::DB_CREATE_OR_OVERWRITE);
  add(0, 50);
  Xapian::Database fresh = reader();
  for (const char* t : {"even", "third", "all"}) EXPECT_EQ(cached(cache, fresh, t), xapian_postings(fresh, t)) << t;
}

TEST_F(PostingCacheTest, ATermIsCachedFromItsSecondRequest) {
  Xapian::Database db = reader();
  PostingCache cache(1 << 20, 1);
  EXPECT_FALSE(cache.get(db, "all", db.get_termfreq("all")).has_value());
  EXPECT_EQ(cache.bytes(), 0u);
  EXPECT_TRUE(cache.get(db, "all", db.get_termfreq("all")).has_value());
  EXPECT_GT(cache.bytes(), 0u);
}

TEST_F(PostingCacheTest, ShortListsAndListsOverTheBudgetAreNotCached) {
  Xapian::Database db = reader();
  PostingCache cache(1 << 20, 200);
  for (int i = 0; i < 2; ++i) cache.get(db, "third", db.get_termfreq("third"));
  EXPECT_EQ(cached(cache, db, "all"), xapian_postings(db, "all"));              // 300 documents
  EXPECT_FALSE(cache.get(db, "third", db.get_termfreq("third")).has_value());  // 100
  PostingCache tiny(100 * sizeof(PostingCache::Posting), 1);
  for (int i = 0; i < 2; ++i) EXPECT_FALSE(tiny.get(db, "all", db.get_termfreq("all")).has_value());
  PostingCache off(0, 1);
  for (int i = 0; i < 2; ++i) EXPECT_FALSE(off.get(db, "all", db.get_termfreq("all")).has_value());
}

TEST_F(PostingCacheTest, TheLeastRecentlyUsedListsGoBeyondTheBudget) {
  Xapian::Database db = reader();
  // Room for "all" (300 postings) and "even" (150), not also "third" (100).
  PostingCache cache(480 * sizeof(PostingCache::Posting), 1);
  for (const char* t : {"all", "even", "third"}) cache.get(db, t, db.get_termfreq(t));  // seen
  auto all = cache.get(db, "all", db.get_termfreq("all"));
  ASSERT_TRUE(cache.get(db, "even", db.get_termfreq("even")));
  ASSERT_TRUE(cache.get(db, "third", db.get_termfreq("third")));
  EXPECT_LE(cache.bytes(), 480 * sizeof(PostingCache::Posting));
  // "all" went first; the List handed out before still reads its postings.
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(all->size(), 300u);
  EXPECT_EQ((*all)[299].did, 300u);
}

TEST_F(PostingCacheTest, TenantsShareOneBudgetAndEachEvictsOnlyItsOwnLists) {
  Xapian::Database db = reader();
  // Room for "all" (300 postings) and "even" (150) together.
  auto budget = std::make_shared<PostingCache::Budget>(480 * sizeof(PostingCache::Posting));
  PostingCache a(budget, 1), b(budget, 1);
  EXPECT_EQ(cached(a, db, "all").size(), 300u);
  EXPECT_EQ(cached(a, db, "even").size(), 150u);
  EXPECT_EQ(budget->used(), a.bytes());
  // b is over the shared budget with its first list: it keeps that one, a keeps both of its own.
  EXPECT_EQ(cached(b, db, "third").size(), 100u);
  EXPECT_EQ(a.bytes(), 450 * sizeof(PostingCache::Posting));
  EXPECT_EQ(b.bytes(), 100 * sizeof(PostingCache::Posting));
  // Its second list makes b drop its first.
  EXPECT_EQ(cached(b, db, "even").size(), 150u);
  EXPECT_EQ(b.bytes(), 150 * sizeof(PostingCache::Posting));
  EXPECT_EQ(budget->used(), a.bytes() + b.bytes());
  {
    PostingCache gone(budget, 1);
    cached(gone, db, "third");
    EXPECT_EQ(budget->used(), a.bytes() + b.bytes() + gone.bytes());
  }
  EXPECT_EQ(budget->used(), a.bytes() + b.bytes());  // a destroyed cache gives its bytes back
}

TEST(PostingCacheList, SeekFindsWhatLowerBoundFinds) {
  test::TempDir dir;
  Xapian::WritableDatabase db(dir / "db", Xapian::DB_CREATE_OR_OVERWRITE);
  std::mt19937 rng(7);
  std::vector<Xapian::docid> ids;
  for (Xapian::docid d = 1; d <= 3000; ++d) {
    Xapian::Document doc;
    if (rng() % 5 == 0) {
      doc.add_term("t");
      ids.push_back(d);
    }
    doc.add_term("x");
    db.add_document(doc);
  }
  db.commit();
  PostingCache cache(1 << 20, 1);
  cache.get(db, "t", db.get_termfreq("t"));
  auto l = cache.get(db, "t", db.get_termfreq("t"));
  ASSERT_TRUE(l);
  ASSERT_EQ(l->size(), ids.size());
  for (int k = 0; k < 2000; ++k) {
    size_t from = rng() % (ids.size() + 1);
    Xapian::docid target = 1 + rng() % 3100;
    size_t want = std::max<size_t>(
        from, static_cast<size_t>(std::lower_bound(ids.begin(), ids.end(), target) - ids.begin()));
    ASSERT_EQ(l->seek(from, target), want) << from << " " << target;
  }
}

// Bm25Source reading cached lists scores every parsed query exactly as reading Xapian's.
TEST(PostingCacheBm25, CachedSourcesScoreAsUncached) {
  test::TempDir dir;
  Xapian::WritableDatabase db(dir / "db", Xapian::DB_CREATE_OR_OVERWRITE);
  const char* vocab[] = {"stripe", "webhook", "webhooks", "failed", "failing", "timeout",
                         "refund",  "Refund",  "error",    "errors", "retry",   "deploy"};
  std::mt19937 rng(11);
  for (int i = 0; i < 2500; ++i) {
    std::string text;
    int n = 3 + static_cast<int>(rng() % 20);
    for (int k = 0; k < n; ++k) {
      // Zipf-like: low indexes far more often.
      size_t w = std::min<size_t>(11, static_cast<size_t>(std::sqrt(static_cast<double>(rng() % 144))));
      text += std::string(vocab[11 - w]) + " ";
    }
    db.add_document(SearchIndex::make_document("t", "s" + std::to_string(i % 9), i,
                                               "agent.message", text));
  }
  db.commit();
  DocLengths lengths;
  PostingCache cache(64 << 20, 1);
  const double k1 = 1.2, b = 0.75;
  for (const char* q : {"webhook", "stripe webhook", "failing timeout refund", "refund OR error",
                        "\"stripe webhook\"", "retry -deploy", "errors deploy stripe"}) {
    SCOPED_TRACE(q);
    ParsedQuery pq;
    ASSERT_TRUE(parse_search_query(q, &pq));
    DocLengths::View view = lengths.update(db);
    std::vector<std::pair<Xapian::docid, double>> res[3];
    Xapian::doccount est[3];
    // Uncached, then twice with the cache: its first request of a term reads Xapian, the
    // second the cached list.
    for (int c = 0; c < 3; ++c) {
      Xapian::Enquire e(db);
      e.set_weighting_scheme(Xapian::BM25Weight(k1, 0, 1, b, 0));
      e.set_query(pq.build([&](const std::string& term, const std::string& bonus) {
        return Xapian::Query((new Bm25Source(term, k1, b, view, bonus, kExactFormBonus,
                                             c ? &cache : nullptr))
                                 ->release());
      }));
      Xapian::MSet m = e.get_mset(0, 30, 1000);
      for (auto it = m.begin(); it != m.end(); ++it) res[c].emplace_back(*it, it.get_weight());
      est[c] = m.get_matches_estimated();
    }
    EXPECT_FALSE(res[0].empty());
    EXPECT_EQ(res[0], res[1]);
    EXPECT_EQ(res[0], res[2]);
    EXPECT_EQ(est[0], est[1]);
    EXPECT_EQ(est[0], est[2]);
  }
  EXPECT_GT(cache.bytes(), 0u);
}

}  // namespace
}  // namespace ds
