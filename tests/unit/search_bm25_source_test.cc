// search/bm25_source + search/doc_lengths: Bm25Source weights equal Xapian's own BM25Weight for
// every matching document (common and rare terms, several k1/b, within compound queries, with the
// exact-form bonus, and for whole parsed queries), its maximum weight bounds them, and the
// document-length table follows additions, deletions and a recreated database.
#include "search/bm25_source.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "search/doc_lengths.h"
#include "search/index.h"
#include "search/query.h"
#include "temp_dir.h"

namespace ds {
namespace {

class Bm25SourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = Xapian::WritableDatabase(dir_ / "db", Xapian::DB_CREATE_OR_OVERWRITE);
    // 60 documents of varied length: "common" is in 50 of them (more than half: the idf branch
    // for t < 2), "rare" in 4, "mid" in 15 with wdf 1..3, "long" only in long documents.
    for (int i = 0; i < 60; ++i) {
      Xapian::Document d;
      Xapian::termpos pos = 1;
      int filler = 1 + (i * 7) % 40;
      for (int k = 0; k < filler; ++k) d.add_posting("w" + std::to_string((i + k) % 23), pos++);
      if (i % 6 != 0) d.add_posting("common", pos++);
      if (i % 15 == 3) d.add_posting("rare", pos++);
      if (i % 4 == 1) {
        for (int k = 0; k <= i % 3; ++k) d.add_posting("mid", pos++);
      }
      if (filler > 30) d.add_posting("long", pos++);
      db_.add_document(d);
    }
    db_.commit();
  }

  // term -> (docid -> weight) from a query over `q` with Xapian's BM25Weight.
  std::map<Xapian::docid, double> native(const Xapian::Query& q, double k1, double b) {
    Xapian::Enquire e(db_);
    e.set_weighting_scheme(Xapian::BM25Weight(k1, 0, 1, b, 0));
    e.set_query(q);
    std::map<Xapian::docid, double> out;
    Xapian::MSet m = e.get_mset(0, 1000);
    for (auto it = m.begin(); it != m.end(); ++it) out[*it] = it.get_weight();
    return out;
  }
  std::map<Xapian::docid, double> ours(const Xapian::Query& q) {
    Xapian::Enquire e(db_);
    // The scheme only weights plain term leaves; there are none. (Not BoolWeight: with it the
    // matcher asks no leaf for weights.)
    e.set_weighting_scheme(Xapian::BM25Weight(9, 0, 1, 0.1, 0));
    e.set_query(q);
    std::map<Xapian::docid, double> out;
    Xapian::MSet m = e.get_mset(0, 1000);
    for (auto it = m.begin(); it != m.end(); ++it) out[*it] = it.get_weight();
    return out;
  }
  Xapian::Query source(const std::string& term, double k1, double b) {
    return Xapian::Query((new Bm25Source(term, k1, b, lengths_.update(db_)))->release());
  }
  static void expect_same(const std::map<Xapian::docid, double>& want,
                          const std::map<Xapian::docid, double>& got) {
    ASSERT_EQ(want.size(), got.size());
    for (const auto& [did, w] : want) {
      ASSERT_TRUE(got.count(did)) << "doc " << did;
      EXPECT_NEAR(got.at(did), w, 1e-9) << "doc " << did;
      EXPECT_GT(got.at(did), 0) << "doc " << did;
    }
  }

  test::TempDir dir_;
  Xapian::WritableDatabase db_;
  DocLengths lengths_;
};

TEST_F(Bm25SourceTest, WeightsEqualXapiansBm25ForEveryMatchingDocument) {
  for (auto [k1, b] : std::vector<std::pair<double, double>>{
           {1.2, 0.75}, {2.0, 0.3}, {0.5, 1.0}, {1.2, 0.0}, {0.0, 0.75}}) {
    for (const char* term : {"common", "rare", "mid", "long", "w3", "absent"}) {
      SCOPED_TRACE(std::string(term) + " k1=" + std::to_string(k1) + " b=" + std::to_string(b));
      auto want = native(Xapian::Query(term), k1, b);
      expect_same(want, ours(source(term, k1, b)));
      if (std::string(term) != "absent") {
        EXPECT_FALSE(want.empty());
      }
    }
  }
}

TEST_F(Bm25SourceTest, CompoundQueriesScoreAsWithXapiansBm25) {
  const double k1 = 1.2, b = 0.75;
  auto tree = [&](auto leaf) {
    Xapian::Query must(Xapian::Query::OP_AND, leaf("common"), leaf("mid"));
    Xapian::Query bonus(Xapian::Query::OP_OR, leaf("rare"), leaf("long"));
    return Xapian::Query(Xapian::Query::OP_AND_MAYBE, must,
                         Xapian::Query(Xapian::Query::OP_SCALE_WEIGHT, bonus, 0.5));
  };
  auto want = native(tree([](const char* t) { return Xapian::Query(t); }), k1, b);
  ASSERT_GT(want.size(), 3u);
  expect_same(want, ours(tree([&](const char* t) { return source(t, k1, b); })));
  // The same in the order a top-10 match returns them.
  Xapian::Enquire e(db_);
  e.set_weighting_scheme(Xapian::BM25Weight(9, 0, 1, 0.1, 0));
  e.set_query(tree([&](const char* t) { return source(t, k1, b); }));
  Xapian::MSet top = e.get_mset(0, 5);
  Xapian::Enquire n(db_);
  n.set_weighting_scheme(Xapian::BM25Weight(k1, 0, 1, b, 0));
  n.set_query(tree([](const char* t) { return Xapian::Query(t); }));
  Xapian::MSet ntop = n.get_mset(0, 5);
  ASSERT_EQ(top.size(), ntop.size());
  for (auto a = top.begin(), c = ntop.begin(); a != top.end(); ++a, ++c) {
    EXPECT_NEAR(a.get_weight(), c.get_weight(), 1e-9);
  }
}

TEST_F(Bm25SourceTest, BonusTermAddsItsScaledWeightWhereItOccurs) {
  const double k1 = 1.2, b = 0.75;
  for (auto [term, bonus] : std::vector<std::pair<const char*, const char*>>{
           {"common", "mid"}, {"mid", "rare"}, {"common", "absent"}, {"long", "common"}}) {
    SCOPED_TRACE(std::string(term) + " + " + bonus);
    auto want = native(Xapian::Query(Xapian::Query::OP_AND_MAYBE, Xapian::Query(term),
                                     Xapian::Query(Xapian::Query::OP_SCALE_WEIGHT,
                                                   Xapian::Query(bonus), 0.5)),
                       k1, b);
    auto got = ours(Xapian::Query(
        (new Bm25Source(term, k1, b, lengths_.update(db_), bonus, 0.5))->release()));
    expect_same(want, got);
    // The bonus changed some weights (where both occur) and not others.
    auto plain = native(Xapian::Query(term), k1, b);
    size_t raised = 0;
    for (const auto& [did, w] : got) raised += w > plain.at(did) + 1e-9;
    if (std::string(bonus) != "absent") {
      EXPECT_GT(raised, 0u);
    } else {
      EXPECT_EQ(raised, 0u);
    }
  }
}

// Whole parsed queries over documents made the way the indexer makes them: the tree build() gives
// with Bm25Source leaves scores every document as the plain-term query does with BM25Weight.
TEST(Bm25SourceQueries, ParsedQueriesScoreAsThePlainTermQuery) {
  test::TempDir dir;
  Xapian::WritableDatabase db(dir / "db", Xapian::DB_CREATE_OR_OVERWRITE);
  const std::vector<std::string> texts = {
      "the stripe webhook failed with a timeout",
      "Webhooks failing: stripe returned 500, retrying the webhook",
      "refund issued for order 4411 after the chargeback",
      "a chargeback dispute; refunds are paused until the webhook recovers",
      "running the migration script; runs took 4 minutes",
      "Error: connection refused (ECONNREFUSED) while running tests",
      "errors in the error log: timeout, timeout, refused",
      "user asked to refund the stripe payment",
      "tool_use bash: grep -rn webhook src/",
      "nothing relevant here at all, just filler words about lunch",
      "Refund queued; chargebacks pending",
  };
  for (int round = 0; round < 3; ++round) {
    for (size_t i = 0; i < texts.size(); ++i) {
      std::string text = texts[i];
      for (int k = 0; k < round * 3 + static_cast<int>(i % 4); ++k) text += " padding" + std::to_string(k);
      db.add_document(SearchIndex::make_document("t", "s" + std::to_string(i % 3), i,
                                                 "agent.message", text));
    }
  }
  db.commit();
  DocLengths lengths;
  const double k1 = 1.2, b = 0.75;
  for (const char* q : {"webhook", "webhook stripe", "failing", "refund OR chargeback stripe",
                        "refund OR chargeback",
                        "error timeout", "running", "\"stripe webhook\" failed", "\"refund\"",
                        "webhook -stripe", "refused type:agent.message", "4411", "timeout timeout"}) {
    SCOPED_TRACE(q);
    ParsedQuery pq;
    ASSERT_TRUE(parse_search_query(q, &pq));
    Xapian::Enquire plain(db);
    plain.set_weighting_scheme(Xapian::BM25Weight(k1, 0, 1, b, 0));
    plain.set_query(pq.query);
    Xapian::MSet want = plain.get_mset(0, 100);
    DocLengths::View view = lengths.update(db);
    Xapian::Enquire ours(db);
    ours.set_weighting_scheme(Xapian::BM25Weight(k1, 0, 1, b, 0));
    ours.set_query(pq.build([&](const std::string& term, const std::string& bonus) {
      return Xapian::Query(
          (new Bm25Source(term, k1, b, view, bonus, kExactFormBonus))->release());
    }));
    Xapian::MSet got = ours.get_mset(0, 100);
    ASSERT_EQ(got.size(), want.size());
    std::map<Xapian::docid, double> w;
    for (auto it = want.begin(); it != want.end(); ++it) w[*it] = it.get_weight();
    for (auto it = got.begin(); it != got.end(); ++it) {
      ASSERT_TRUE(w.count(*it)) << "doc " << *it;
      EXPECT_NEAR(it.get_weight(), w[*it], 1e-9) << "doc " << *it;
    }
    if (std::string(q) != "webhook -stripe") {
      EXPECT_GT(got.size(), 0u);
    }
  }
}

TEST_F(Bm25SourceTest, MaxWeightBoundsEveryWeight) {
  for (const char* term : {"common", "rare", "mid", "long"}) {
    Bm25Source s(term, 1.2, 0.75, lengths_.update(db_), "mid", 0.5);
    s.init(db_);
    double max = s.get_maxweight();
    size_t n = 0;
    for (s.next(0); !s.at_end(); s.next(0), ++n) EXPECT_LE(s.get_weight(), max + 1e-12) << term;
    EXPECT_EQ(n, s.get_termfreq_est()) << term;
  }
}

TEST_F(Bm25SourceTest, SkipToLandsOnTheNextMatchingDocument) {
  Bm25Source s("rare", 1.2, 0.75, lengths_.update(db_));
  s.init(db_);
  s.skip_to(5, 0);  // "rare" is in documents 4, 19, 34, 49 (ids from 1)
  ASSERT_FALSE(s.at_end());
  EXPECT_EQ(s.get_docid(), 19u);
  s.skip_to(19, 0);
  EXPECT_EQ(s.get_docid(), 19u);
  s.next(0);
  EXPECT_EQ(s.get_docid(), 34u);
  s.skip_to(50, 0);
  EXPECT_TRUE(s.at_end());
}

TEST_F(Bm25SourceTest, DocLengthsFollowAdditionsAndDeletions) {
  DocLengths::View before = lengths_.update(db_);
  EXPECT_EQ(before.limit(), 60u);
  for (Xapian::docid d = 1; d <= 60; ++d) EXPECT_EQ(before[d], db_.get_doclength(d)) << d;

  Xapian::Document d;
  for (int k = 0; k < 9000; ++k) d.add_term("x" + std::to_string(k));  // spans into a 2nd chunk
  for (int i = 0; i < 5000; ++i) {
    Xapian::Document small;
    small.add_posting("tiny", 1);
    db_.add_document(small);
  }
  Xapian::docid big = db_.add_document(d);
  db_.delete_document(7);
  db_.commit();
  DocLengths::View after = lengths_.update(db_);
  EXPECT_EQ(after.limit(), big);
  EXPECT_EQ(after[big], 9000u);
  EXPECT_EQ(after[61], 1u);
  EXPECT_EQ(after[8], db_.get_doclength(8));
  EXPECT_EQ(before.limit(), 60u);  // an older view is unchanged
  EXPECT_EQ(before[big], 0u);
  EXPECT_EQ(after[big + 1], 0u);  // beyond the view
}

TEST_F(Bm25SourceTest, ARecreatedDatabaseStartsANewTable) {
  EXPECT_EQ(lengths_.update(db_).limit(), 60u);
  db_.close();
  db_ = Xapian::WritableDatabase(dir_ / "db", Xapian::DB_CREATE_OR_OVERWRITE);
  Xapian::Document d;
  d.add_posting("a", 1);
  d.add_posting("b", 2);
  db_.add_document(d);
  db_.commit();
  DocLengths::View v = lengths_.update(db_);
  EXPECT_EQ(v.limit(), 1u);
  EXPECT_EQ(v[1], 2u);
}

}  // namespace
}  // namespace ds
