// search/bm25_source + search/phrase_source + search/doc_lengths: over the text postings (text
// segments + a skeleton Xapian database), the weights equal Xapian's own BM25Weight in a Xapian
// database holding the same texts indexed with TermGenerator — the scheme the index used before
// its words moved out of Xapian — for every matching document: common and rare terms, several
// k1/b, compound queries, the exact-form bonus, phrases, whole parsed queries, and after
// deletions. Also: the maximum weight bounds the weights, skip_to, and the document-length table
// follows additions, deletions and a recreated database.
#include "search/bm25_source.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "search/doc_lengths.h"
#include "search/index.h"
#include "search/phrase_source.h"
#include "search/query.h"
#include "search/text_segment.h"
#include "search/text_view.h"
#include "temp_dir.h"

namespace ds {
namespace {

// The same texts twice, with the same document ids: `ref`, words in Xapian (TermGenerator,
// english, STEM_SOME), and ours: skeleton documents in `skel`, words in one segment file.
class Twin {
 public:
  explicit Twin(const std::vector<std::string>& texts) {
    ref = Xapian::WritableDatabase(dir_ / "ref", Xapian::DB_CREATE_OR_OVERWRITE);
    skel = Xapian::WritableDatabase(dir_ / "skel", Xapian::DB_CREATE_OR_OVERWRITE);
    Xapian::TermGenerator tg;
    tg.set_stemmer(Xapian::Stem("english"));
    tg.set_stemming_strategy(Xapian::TermGenerator::STEM_SOME);
    SegmentBuilder builder;
    for (size_t i = 0; i < texts.size(); ++i) {
      Xapian::Document d;
      tg.set_document(d);
      tg.index_text(texts[i]);
      Xapian::docid did = ref.add_document(d);
      uint32_t len = builder.add(did, texts[i]);
      EXPECT_EQ(len, ref.get_doclength(did)) << texts[i];
      EXPECT_EQ(skel.add_document(SearchIndex::make_skeleton("t", "s", i, "x", len)), did);
    }
    ref.commit();
    skel.commit();
    EXPECT_TRUE(builder.write(dir_ / "1.seg", false));
    std::shared_ptr<const TextSegment> seg;
    EXPECT_TRUE(TextSegment::open(dir_ / "1.seg", &seg));
    segments_ = {seg};
    refresh();
  }
  void remove(Xapian::docid did) {
    ref.delete_document(did);
    skel.delete_document(did);
    ref.commit();
    skel.commit();
    refresh();
  }
  void refresh() { view = std::make_unique<TextView>(segments_, lengths.update(skel)); }

  Xapian::WritableDatabase ref, skel;
  DocLengths lengths;
  std::unique_ptr<TextView> view;

 private:
  test::TempDir dir_;
  std::vector<std::shared_ptr<const TextSegment>> segments_;
};

std::map<Xapian::docid, double> run(const Xapian::Database& db, const Xapian::Query& q, double k1,
                                    double b) {
  Xapian::Enquire e(db);
  e.set_weighting_scheme(Xapian::BM25Weight(k1, 0, 1, b, 0));
  e.set_query(q);
  std::map<Xapian::docid, double> out;
  Xapian::MSet m = e.get_mset(0, 10000);
  for (auto it = m.begin(); it != m.end(); ++it) out[*it] = it.get_weight();
  return out;
}

void expect_same(const std::map<Xapian::docid, double>& want,
                 const std::map<Xapian::docid, double>& got) {
  ASSERT_EQ(want.size(), got.size());
  for (const auto& [did, w] : want) {
    ASSERT_TRUE(got.count(did)) << "doc " << did;
    EXPECT_NEAR(got.at(did), w, 1e-9) << "doc " << did;
    EXPECT_GT(got.at(did), 0) << "doc " << did;
  }
}

// 60 texts of varied length: "common" is in 50 of them (more than half: the idf branch for
// t < 2), "rare" in 4, "mid" in 15 with wdf 1..3 ("mids" too, for stems), "long" only in long
// texts.
std::vector<std::string> fixture_texts() {
  std::vector<std::string> out;
  for (int i = 0; i < 60; ++i) {
    std::string t;
    int filler = 1 + (i * 7) % 40;
    for (int k = 0; k < filler; ++k) t += "w" + std::to_string((i + k) % 23) + " ";
    if (i % 6 != 0) t += "common ";
    if (i % 15 == 3) t += "rare ";
    if (i % 4 == 1) {
      for (int k = 0; k <= i % 3; ++k) t += k == 1 ? "mids " : "mid ";
    }
    if (filler > 30) t += "long ";
    out.push_back(t);
  }
  return out;
}

class Bm25SourceTest : public ::testing::Test {
 protected:
  Bm25SourceTest() : twin_(fixture_texts()) {}
  Xapian::Query source(const std::string& term, double k1, double b, const std::string& bonus = "",
                       double factor = 0) {
    return Xapian::Query((new Bm25Source(term, k1, b, twin_.view.get(), bonus, factor))->release());
  }
  std::map<Xapian::docid, double> ours(const Xapian::Query& q) {
    // The scheme only weights plain term leaves; there are none.
    return run(twin_.skel, q, 9, 0.1);
  }
  Twin twin_;
};

TEST_F(Bm25SourceTest, WeightsEqualXapiansBm25ForEveryMatchingDocument) {
  for (auto [k1, b] : std::vector<std::pair<double, double>>{
           {1.2, 0.75}, {2.0, 0.3}, {0.5, 1.0}, {1.2, 0.0}, {0.0, 0.75}}) {
    for (const char* term : {"common", "rare", "mid", "Zmid", "long", "w3", "absent"}) {
      SCOPED_TRACE(std::string(term) + " k1=" + std::to_string(k1) + " b=" + std::to_string(b));
      auto want = run(twin_.ref, Xapian::Query(term), k1, b);
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
    Xapian::Query must(Xapian::Query::OP_AND, leaf("common"), leaf("Zmid"));
    Xapian::Query bonus(Xapian::Query::OP_OR, leaf("rare"), leaf("long"));
    return Xapian::Query(Xapian::Query::OP_AND_MAYBE, must,
                         Xapian::Query(Xapian::Query::OP_SCALE_WEIGHT, bonus, 0.5));
  };
  auto want = run(twin_.ref, tree([](const char* t) { return Xapian::Query(t); }), k1, b);
  ASSERT_GT(want.size(), 3u);
  expect_same(want, ours(tree([&](const char* t) { return source(t, k1, b); })));
}

TEST_F(Bm25SourceTest, BonusTermAddsItsScaledWeightWhereItOccurs) {
  const double k1 = 1.2, b = 0.75;
  for (auto [term, bonus] : std::vector<std::pair<const char*, const char*>>{
           {"Zmid", "mid"}, {"Zmid", "mids"}, {"common", "rare"}, {"common", "absent"},
           {"long", "common"}}) {
    SCOPED_TRACE(std::string(term) + " + " + bonus);
    auto want = run(twin_.ref,
                    Xapian::Query(Xapian::Query::OP_AND_MAYBE, Xapian::Query(term),
                                  Xapian::Query(Xapian::Query::OP_SCALE_WEIGHT,
                                                Xapian::Query(bonus), 0.5)),
                    k1, b);
    auto got = ours(source(term, k1, b, bonus, 0.5));
    expect_same(want, got);
    // The bonus changed some weights (where both occur) and not others.
    auto plain = run(twin_.ref, Xapian::Query(term), k1, b);
    size_t raised = 0;
    for (const auto& [did, w] : got) raised += w > plain.at(did) + 1e-9;
    if (std::string(bonus) != "absent") {
      EXPECT_GT(raised, 0u);
    } else {
      EXPECT_EQ(raised, 0u);
    }
  }
}

TEST_F(Bm25SourceTest, DeletedDocumentsAreNotMatchedAndNotCounted) {
  const double k1 = 1.2, b = 0.75;
  for (Xapian::docid did : {4u, 19u, 2u, 3u, 10u}) twin_.remove(did);  // two "rare" ones
  for (const char* term : {"common", "rare", "Zmid", "long"}) {
    SCOPED_TRACE(term);
    expect_same(run(twin_.ref, Xapian::Query(term), k1, b), ours(source(term, k1, b)));
  }
}

TEST_F(Bm25SourceTest, MaxWeightBoundsEveryWeight) {
  for (const char* term : {"common", "rare", "Zmid", "long"}) {
    Bm25Source s(term, 1.2, 0.75, twin_.view.get(), "mid", 0.5);
    s.init(twin_.skel);
    double max = s.get_maxweight();
    size_t n = 0;
    for (s.next(0); !s.at_end(); s.next(0), ++n) EXPECT_LE(s.get_weight(), max + 1e-12) << term;
    EXPECT_EQ(n, s.get_termfreq_est()) << term;
  }
}

TEST_F(Bm25SourceTest, SkipToLandsOnTheNextMatchingDocument) {
  Bm25Source s("rare", 1.2, 0.75, twin_.view.get());
  s.init(twin_.skel);
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

// Whole parsed queries over event texts: the tree build() gives with Bm25Source and
// PhraseSource leaves scores every document as the plain-term query does with BM25Weight in the
// TermGenerator database; also after deletions.
TEST(Bm25SourceQueries, ParsedQueriesScoreAsThePlainTermQuery) {
  const std::vector<std::string> base = {
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
      "to be or not to be, the stripe webhook question",
      "agent.tool_use stripe-webhook handler stripe webhook stripe webhook",
  };
  std::vector<std::string> texts;
  for (int round = 0; round < 3; ++round) {
    for (size_t i = 0; i < base.size(); ++i) {
      std::string text = base[i];
      for (int k = 0; k < round * 3 + static_cast<int>(i % 4); ++k) {
        text += " padding" + std::to_string(k);
      }
      texts.push_back(text);
    }
  }
  Twin twin(texts);
  const double k1 = 1.2, b = 0.75;
  auto check = [&](bool after_deletes) {
    for (const char* q :
         {"webhook", "webhook stripe", "failing", "refund OR chargeback stripe",
          "refund OR chargeback", "error timeout", "running", "\"stripe webhook\" failed",
          "\"refund\"", "webhook -stripe", "refund -\"stripe payment\"", "\"to be or not to be\"",
          "\"stripe webhook\" OR refund", "stripe-webhook", "agent.tool_use", "4411",
          "timeout timeout", "\"webhook stripe\""}) {
      SCOPED_TRACE(std::string(q) + (after_deletes ? " (after deletions)" : ""));
      ParsedQuery pq;
      ASSERT_TRUE(parse_search_query(q, &pq));
      auto want = run(twin.ref, pq.query, k1, b);
      auto got = run(twin.skel,
                     pq.build(
                         [&](const std::string& term, const std::string& bonus) {
                           return Xapian::Query((new Bm25Source(term, k1, b, twin.view.get(),
                                                                bonus, kExactFormBonus))
                                                    ->release());
                         },
                         [&](const std::vector<std::string>& words) {
                           return Xapian::Query(
                               (new PhraseSource(words, k1, b, twin.view.get()))->release());
                         }),
                     9, 0.1);
      expect_same(want, got);
      if (std::string(q) != "webhook -stripe" && std::string(q) != "\"webhook stripe\"") {
        EXPECT_GT(got.size(), 0u);
      }
    }
  };
  check(false);
  for (Xapian::docid did : {1u, 12u, 13u, 20u, 27u}) twin.remove(did);
  check(true);
}

TEST(DocLengthsTable, FollowsAdditionsAndDeletions) {
  test::TempDir dir;
  Xapian::WritableDatabase db(dir / "db", Xapian::DB_CREATE_OR_OVERWRITE);
  for (int i = 0; i < 60; ++i) {
    Xapian::Document d;
    d.add_term("XL", 1 + i % 7);
    db.add_document(d);
  }
  db.commit();
  DocLengths lengths;
  DocLengths::View before = lengths.update(db);
  EXPECT_EQ(before.limit(), 60u);
  for (Xapian::docid d = 1; d <= 60; ++d) EXPECT_EQ(before[d], db.get_doclength(d)) << d;

  Xapian::Document big;
  for (int k = 0; k < 9000; ++k) big.add_term("x" + std::to_string(k));
  for (int i = 0; i < 5000; ++i) {  // spans into a second chunk
    Xapian::Document small;
    small.add_posting("tiny", 1);
    db.add_document(small);
  }
  Xapian::docid last = db.add_document(big);
  db.delete_document(7);
  db.commit();
  DocLengths::View after = lengths.update(db);
  EXPECT_EQ(after.limit(), last);
  EXPECT_EQ(after[last], 9000u);
  EXPECT_EQ(after[61], 1u);
  EXPECT_EQ(after[8], db.get_doclength(8));
  EXPECT_EQ(after[7], 0u);  // deleted
  EXPECT_EQ(before[7], 7u);  // an older view is unchanged
  EXPECT_EQ(before.limit(), 60u);
  EXPECT_EQ(before[last], 0u);
  EXPECT_EQ(after[last + 1], 0u);  // beyond the view
}

TEST(DocLengthsTable, ARecreatedDatabaseStartsANewTable) {
  test::TempDir dir;
  DocLengths lengths;
  {
    Xapian::WritableDatabase db(dir / "db", Xapian::DB_CREATE_OR_OVERWRITE);
    for (int i = 0; i < 60; ++i) db.add_document(Xapian::Document());
    db.commit();
    EXPECT_EQ(lengths.update(db).limit(), 60u);
  }
  Xapian::WritableDatabase db(dir / "db", Xapian::DB_CREATE_OR_OVERWRITE);
  Xapian::Document d;
  d.add_posting("a", 1);
  d.add_posting("b", 2);
  db.add_document(d);
  db.commit();
  DocLengths::View v = lengths.update(db);
  EXPECT_EQ(v.limit(), 1u);
  EXPECT_EQ(v[1], 2u);
}

}  // namespace
}  // namespace ds
