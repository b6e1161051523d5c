// search/index: BM25 ranking on a small planted corpus, query syntax against real documents,
// snippets, deletion, persistence of indexed positions, damaged-index recovery, tenants.
#include "search/index.h"

#include <gtest/gtest.h>

#include <chrono>
#include <atomic>
#include <algorithm>
#include <mutex>
#include <thread>
#include <filesystem>
#include <fstream>
#include <string>
#include <tuple>
#include <vector>

#include "temp_dir.h"

namespace ds {
namespace {

class SearchIndexTest : public ::testing::Test {
 protected:
  void SetUp() override { reopen(); }

  // cache_min_docs: posting lists of words in at least this many documents are cached (1, the
  // default here: every list, so that every test runs the cached path; 0: no cache).
  void reopen(double k1 = 1.2, double b = 0.75, uint64_t split_min_docs = 0,
              const std::string& root = "index", uint32_t cache_min_docs = 1) {
    index_.reset();
    IndexOptions o;
    o.root = dir_ / root;
    o.bm25_k1 = k1;
    o.bm25_b = b;
    o.fsync = false;
    o.split_min_docs = split_min_docs;
    o.posting_cache_min_docs = cache_min_docs;
    if (cache_min_docs == 0) o.posting_cache_bytes = 0;
    o.direct_conjunctions = direct_conjunctions_;
    index_ = std::make_unique<SearchIndex>(o);
    marks_.clear();
    ASSERT_TRUE(index_->open(&marks_));
  }

  // Adds `text` as the next event of `session` in tenant "t".
  uint64_t add(const std::string& session, const std::string& text,
               const std::string& type = "agent.message", const std::string& tenant = "t") {
    uint64_t pos = next_[tenant + "/" + session]++;
    EXPECT_TRUE(index_->add(tenant, session, pos, type, text));
    return pos;
  }
  void commit() { ASSERT_TRUE(index_->commit()); }

  SearchResults search(const std::string& q, std::vector<std::string> sessions = {},
                       const std::string& tenant = "t", size_t limit = 20, size_t offset = 0) {
    ParsedQuery pq;
    Status s = parse_search_query(q, &pq);
    EXPECT_TRUE(s) << s.message();
    SearchRequest r;
    r.query = pq;
    r.session_ids = std::move(sessions);
    r.limit = limit;
    r.offset = offset;
    SearchResults out;
    EXPECT_TRUE(index_->search(tenant, r, &out));
    return out;
  }

  // Events i in [from, to) over sessions s0..s6: 1–9 of the seven `words` each, mixed by i, then
  // filler; every third a tool use. Commits.
  // commit_every: also commits after every this many events (0: only at the end).
  void add_mixed(const char* const (&words)[7], int from, int to, int commit_every = 0) {
    for (int i = from; i < to; ++i) {
      if (commit_every > 0 && i > from && (i - from) % commit_every == 0) commit();
      std::string text;
      for (int k = 0; k <= i % 9; ++k) text += std::string(words[(i + k * (1 + i % 2)) % 7]) + " ";
      text += filler(i % 13);
      add("s" + std::to_string(i % 7), text, i % 3 ? "agent.message" : "agent.tool_use");
    }
    commit();
  }
  static std::string filler(int words, const std::string& seed = "lorem") {
    std::string s;
    for (int i = 0; i < words; ++i) s += seed + std::to_string(i % 37) + " ";
    return s;
  }

  test::TempDir dir_;
  std::unique_ptr<SearchIndex> index_;
  bool direct_conjunctions_ = true;  // reopen()'s IndexOptions::direct_conjunctions
  std::map<std::string, std::map<std::string, SessionMark>> marks_;
  std::map<std::string, uint64_t> next_;
};

TEST_F(SearchIndexTest, FocusedEventOutranksPassingMention) {
  add("s", filler(80) + " the webhook was mentioned once " + filler(80, "ipsum"));
  uint64_t focused = add("s", "webhook signature check failed: the stripe webhook secret is wrong");
  for (int i = 0; i < 10; ++i) add("s", filler(20, "pad"));
  commit();
  auto r = search("webhook");
  ASSERT_EQ(r.hits.size(), 2u);
  EXPECT_EQ(r.hits[0].position, focused);
  EXPECT_GT(r.hits[0].score, r.hits[1].score);
}

TEST_F(SearchIndexTest, RarerTermsWeighMore) {
  for (int i = 0; i < 30; ++i) add("s", "deploy finished " + filler(5, "x"));
  uint64_t common = add("s", "deploy service alpha");
  uint64_t rare = add("s", "kubernetes service alpha");
  commit();
  auto r = search("deploy OR kubernetes");
  ASSERT_GE(r.hits.size(), 2u);
  EXPECT_EQ(r.hits[0].position, rare);
  double common_score = 0;
  for (const auto& h : r.hits) {
    if (h.position == common) common_score = h.score;
  }
  EXPECT_GT(r.hits[0].score, common_score);
}

TEST_F(SearchIndexTest, LengthNormalisationFavoursShorterEvents) {
  uint64_t shorter = add("s", "timeout connecting to database");
  add("s", "timeout connecting to database " + filler(60));
  for (int i = 0; i < 5; ++i) add("s", filler(10, "other"));
  commit();
  auto r = search("timeout");
  ASSERT_EQ(r.hits.size(), 2u);
  EXPECT_EQ(r.hits[0].position, shorter);
  EXPECT_GT(r.hits[0].score, r.hits[1].score);
  // With b = 0 length no longer matters: equal term frequency, equal score.
  reopen(1.2, 0.0);
  auto flat = search("timeout");
  ASSERT_EQ(flat.hits.size(), 2u);
  EXPECT_DOUBLE_EQ(flat.hits[0].score, flat.hits[1].score);
}

TEST_F(SearchIndexTest, TermFrequencySaturatesWithK1) {
  uint64_t once = add("s", "retry " + filler(9));
  uint64_t many = add("s", "retry retry retry retry retry " + filler(5));
  for (int i = 0; i < 5; ++i) add("s", filler(10, "z"));
  commit();
  auto r = search("retry");
  ASSERT_EQ(r.hits.size(), 2u);
  EXPECT_EQ(r.hits[0].position, many);
  EXPECT_EQ(r.hits[1].position, once);
  EXPECT_LT(r.hits[0].score, 5 * r.hits[1].score);  // saturating, not linear
}

TEST_F(SearchIndexTest, ScoresArePositiveAndDescending) {
  for (int i = 0; i < 20; ++i) add("s", "error " + filler(i + 1));
  commit();
  auto r = search("error");
  ASSERT_EQ(r.hits.size(), 20u);
  for (size_t i = 0; i < r.hits.size(); ++i) {
    EXPECT_GT(r.hits[i].score, 0);
    if (i) {
      EXPECT_GE(r.hits[i - 1].score, r.hits[i].score);
    }
  }
}

TEST_F(SearchIndexTest, StemmingMatchesWordFormsAndPrefersExactForm) {
  uint64_t runs = add("s", "the job runs nightly");
  uint64_t running = add("s", "the job running nightly");
  add("s", "unrelated text here");
  commit();
  auto r = search("running");
  ASSERT_EQ(r.hits.size(), 2u);
  EXPECT_EQ(r.hits[0].position, running);
  EXPECT_EQ(r.hits[1].position, runs);
}

TEST_F(SearchIndexTest, AllWordsAreRequired) {
  add("s", "stripe webhook");
  add("s", "stripe refund");
  commit();
  EXPECT_EQ(search("stripe webhook").hits.size(), 1u);
  EXPECT_EQ(search("stripe").hits.size(), 2u);
}

TEST_F(SearchIndexTest, PhraseOrNotAndTypeSyntax) {
  uint64_t adj = add("s", "the stripe webhook failed");
  uint64_t apart = add("s", "webhook from stripe failed", "agent.tool_result");
  uint64_t tool = add("s", "grep webhook handler", "agent.tool_use");
  commit();
  auto phrase = search("\"stripe webhook\"");
  ASSERT_EQ(phrase.hits.size(), 1u);
  EXPECT_EQ(phrase.hits[0].position, adj);
  EXPECT_EQ(search("grep OR stripe").hits.size(), 3u);
  auto excl = search("webhook -stripe");
  ASSERT_EQ(excl.hits.size(), 1u);
  EXPECT_EQ(excl.hits[0].position, tool);
  auto typed = search("webhook type:agent.tool_result");
  ASSERT_EQ(typed.hits.size(), 1u);
  EXPECT_EQ(typed.hits[0].position, apart);
  EXPECT_EQ(search("webhook -type:agent.tool_use").hits.size(), 2u);
  EXPECT_EQ(search("webhook type:agent.tool_use OR type:agent.tool_result").hits.size(), 2u);
}

TEST_F(SearchIndexTest, SessionFilterAndTenantIsolation) {
  add("a", "shared secret word");
  add("b", "shared secret word");
  add("c", "shared secret word", "agent.message", "other-tenant");
  commit();
  EXPECT_EQ(search("secret").hits.size(), 2u);
  auto only_b = search("secret", {"b"});
  ASSERT_EQ(only_b.hits.size(), 1u);
  EXPECT_EQ(only_b.hits[0].session_id, "b");
  auto other = search("secret", {}, "other-tenant");
  ASSERT_EQ(other.hits.size(), 1u);
  EXPECT_EQ(other.hits[0].session_id, "c");
  EXPECT_EQ(search("secret", {}, "nobody").hits.size(), 0u);
}

TEST_F(SearchIndexTest, SnippetMarksMatchesAndEscapesHtml) {
  std::string text = "user.message\nplease fix <script>alert('x')</script> in the webhook & retry";
  add("s", text);
  commit();
  auto r = search("webhook");
  ASSERT_EQ(r.hits.size(), 1u);
  std::string snip = r.snippet(text);
  EXPECT_NE(snip.find("<mark>webhook</mark>"), std::string::npos) << snip;
  EXPECT_NE(snip.find("&lt;script&gt;"), std::string::npos) << snip;
  EXPECT_EQ(snip.find("<script>"), std::string::npos) << snip;
  EXPECT_NE(snip.find("&amp;"), std::string::npos) << snip;
}

TEST_F(SearchIndexTest, SearchingForScriptFindsAndEscapesIt) {
  std::string text = "<script>steal()</script>";
  add("s", text);
  commit();
  auto r = search("script");
  ASSERT_EQ(r.hits.size(), 1u);
  EXPECT_EQ(r.snippet(text), "&lt;<mark>script</mark>&gt;steal()&lt;/<mark>script</mark>&gt;");
}

TEST_F(SearchIndexTest, UncommittedEventsAreInvisible) {
  add("s", "pending words");
  EXPECT_EQ(search("pending").hits.size(), 0u);
  commit();
  EXPECT_EQ(search("pending").hits.size(), 1u);
}

TEST_F(SearchIndexTest, RemoveSessionDeletesItsDocumentsAndMark) {
  add("gone", "alpha beta");
  add("kept", "alpha gamma");
  ASSERT_TRUE(index_->set_mark("t", "gone", SessionMark{7, 1}));
  commit();
  ASSERT_TRUE(index_->remove_session("t", "gone"));
  commit();
  auto r = search("alpha");
  ASSERT_EQ(r.hits.size(), 1u);
  EXPECT_EQ(r.hits[0].session_id, "kept");
  reopen();
  EXPECT_EQ(marks_["t"].count("gone"), 0u);
}

TEST_F(SearchIndexTest, MarksSurviveReopen) {
  add("s", "one");
  ASSERT_TRUE(index_->set_mark("t", "s", SessionMark{42, 1}));
  add("s2", "two", "agent.message", "tenant/with odd chars");
  ASSERT_TRUE(index_->set_mark("tenant/with odd chars", "s2", SessionMark{43, 1}));
  commit();
  reopen();
  EXPECT_EQ(marks_["t"]["s"].catalog_id, 42);
  EXPECT_EQ(marks_["t"]["s"].next, 1u);
  EXPECT_EQ(marks_["tenant/with odd chars"]["s2"].catalog_id, 43);
  EXPECT_EQ(search("two", {}, "tenant/with odd chars").hits.size(), 1u);
}

TEST_F(SearchIndexTest, DamagedTenantIndexIsRecreatedEmpty) {
  add("s", "one");
  ASSERT_TRUE(index_->set_mark("t", "s", SessionMark{1, 1}));
  commit();
  index_.reset();
  std::string tdir = dir_ / "index" + "/" + SearchIndex::tenant_dir_name("t");
  for (const auto& f : std::filesystem::directory_iterator(tdir)) {
    std::ofstream(f.path(), std::ios::trunc) << "garbage";
  }
  reopen();
  EXPECT_TRUE(marks_["t"].empty());
  EXPECT_EQ(search("one").hits.size(), 0u);
  add("s", "one again");
  commit();
  EXPECT_EQ(search("one").hits.size(), 1u);
}

// A text segment a commit lists that is damaged (a flipped byte) or missing makes the tenant's
// index unusable: it is recreated empty (the indexer rebuilds it from the logs), like a damaged
// Xapian database.
TEST_F(SearchIndexTest, DamagedOrMissingTextSegmentRecreatesTheTenantIndex) {
  for (bool remove : {false, true}) {
    SCOPED_TRACE(remove ? "missing" : "damaged");
    reopen(1.2, 0.75, 0, remove ? "missing" : "damaged");
    add("s", "one two three");
    ASSERT_TRUE(index_->set_mark("t", "s", SessionMark{1, 1}));
    commit();
    ASSERT_EQ(search("one").hits.size(), 1u);
    index_.reset();
    std::string text = dir_ / (remove ? "missing" : "damaged") + "/t/text";
    size_t seen = 0;
    for (const auto& f : std::filesystem::directory_iterator(text)) {
      ++seen;
      if (remove) {
        std::filesystem::remove(f.path());
      } else {
        std::fstream io(f.path(), std::ios::in | std::ios::out | std::ios::binary);
        io.seekg(static_cast<std::streamoff>(std::filesystem::file_size(f.path()) / 2));
        char c = 0;
        io.read(&c, 1);
        io.seekp(static_cast<std::streamoff>(std::filesystem::file_size(f.path()) / 2));
        c = static_cast<char>(c ^ 0x20);
        io.write(&c, 1);
      }
    }
    ASSERT_EQ(seen, 1u);
    reopen(1.2, 0.75, 0, remove ? "missing" : "damaged");
    EXPECT_TRUE(marks_["t"].empty());
    EXPECT_EQ(search("one").hits.size(), 0u);
    add("s", "one again");
    commit();
    EXPECT_EQ(search("one").hits.size(), 1u);
  }
}

// A merge that finishes after the last batch is listed by the next commit() even with nothing
// added (the indexer calls commit() at least every rescan): the inputs go, the merged file stays.
TEST_F(SearchIndexTest, AFinishedMergeIsListedWithoutAnotherBatch) {
  for (int i = 0; i < 8; ++i) {
    add("s", "word" + std::to_string(i) + " common");
    commit();  // a segment each: eight of one level start a merge
  }
  std::string text = dir_ / "index" + "/t/text";
  auto segments = [&] {
    size_t n = 0;
    for (const auto& f : std::filesystem::directory_iterator(text)) n += f.path().extension() == ".seg";
    return n;
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (segments() != 1 && std::chrono::steady_clock::now() < deadline) {
    commit();  // nothing added
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(segments(), 1u);
  EXPECT_EQ(search("common").total_hits, 8u);
}

// Files in text/ that no commit lists — a segment written before a crash kept its commit from
// happening, a merge's inputs a crash kept from being removed, a temporary file — are removed on
// open; the listed ones stay and are searched.
TEST_F(SearchIndexTest, SegmentFilesNoCommitListsAreRemovedOnOpen) {
  add("s", "kept words");
  commit();
  index_.reset();
  std::string text = dir_ / "index" + "/t/text";
  std::ofstream(text + "/999.seg") << "a segment never committed";
  std::ofstream(text + "/1000.seg.tmp") << "half written";
  reopen();
  EXPECT_FALSE(std::filesystem::exists(text + "/999.seg"));
  EXPECT_FALSE(std::filesystem::exists(text + "/1000.seg.tmp"));
  EXPECT_EQ(search("kept").hits.size(), 1u);
  add("s", "more words");  // new segment numbers do not collide with the removed ones' files
  commit();
  EXPECT_EQ(search("words").hits.size(), 2u);
}

// Without fsync (the default), <root>/UNCLEAN holds the boot id while the index is open; a clean
// close removes it. Found from another boot, the index is dropped (to be rebuilt from the logs);
// from this boot (only the process died; the page cache kept the writes) it is kept.
TEST_F(SearchIndexTest, UncleanMarkerFromAnotherBootDropsTheIndex) {
  std::string marker = dir_ / "index" + "/UNCLEAN";
  ASSERT_TRUE(std::filesystem::exists(marker));
  std::string boot;
  std::getline(std::ifstream(marker), boot);
  EXPECT_FALSE(boot.empty());
  add("s", "survivor");
  ASSERT_TRUE(index_->set_mark("t", "s", SessionMark{1, 1}));
  commit();
  index_.reset();
  EXPECT_FALSE(std::filesystem::exists(marker));  // clean close

  std::ofstream(marker) << boot << "\n";  // a crash of the process only
  reopen();
  EXPECT_EQ(marks_["t"]["s"].next, 1u);
  EXPECT_EQ(search("survivor").hits.size(), 1u);
  index_.reset();

  std::ofstream(marker) << "some-earlier-boot\n";  // the machine went down
  reopen();
  EXPECT_TRUE(marks_["t"].empty());
  EXPECT_EQ(search("survivor").hits.size(), 0u);
  EXPECT_TRUE(std::filesystem::exists(marker));
}

// A search split in two halves by document id (on the side thread) returns what one pass does:
// the same hits, scores, order, pages and total.
TEST_F(SearchIndexTest, SplitSearchEqualsOnePass) {
  const char* words[] = {"stripe", "webhook", "refund", "timeout", "error", "retry", "deploy"};
  add_mixed(words, 0, 240);
  struct Q {
    std::string q;
    size_t limit;
    size_t offset;
  };
  const std::vector<Q> queries = {{"stripe", 10, 0},          {"stripe webhook", 10, 0},
                                  {"error OR retry", 20, 0},  {"refund -timeout", 10, 0},
                                  {"deploy", 7, 14},          {"webhook type:agent.tool_use", 10, 0},
                                  {"\"stripe webhook\"", 10, 0}, {"lorem3", 1000, 0}};
  std::vector<std::vector<std::tuple<std::string, uint64_t, double>>> one, two;
  std::vector<uint64_t> one_total, two_total;
  for (uint64_t split : {0, 1}) {
    reopen(1.2, 0.75, split);
    for (const auto& q : queries) {
      SearchResults r = search(q.q, {}, "t", q.limit, q.offset);
      std::vector<std::tuple<std::string, uint64_t, double>> hits;
      for (const auto& h : r.hits) hits.emplace_back(h.session_id, h.position, h.score);
      (split ? two : one).push_back(hits);
      (split ? two_total : one_total).push_back(r.total_hits);
      if (!r.hits.empty()) {
        EXPECT_FALSE(r.snippet("stripe webhook error").empty());
      }
    }
  }
  for (size_t i = 0; i < queries.size(); ++i) {
    SCOPED_TRACE(queries[i].q);
    EXPECT_FALSE(one[i].empty());
    ASSERT_EQ(one[i].size(), two[i].size());
    for (size_t j = 0; j < one[i].size(); ++j) {
      EXPECT_EQ(std::get<0>(one[i][j]), std::get<0>(two[i][j])) << j;
      EXPECT_EQ(std::get<1>(one[i][j]), std::get<1>(two[i][j])) << j;
      EXPECT_NEAR(std::get<2>(one[i][j]), std::get<2>(two[i][j]), 1e-9) << j;
    }
    EXPECT_EQ(one_total[i], two_total[i]);
  }
}

// How the words are split into segment files, merges of them, and the posting cache never change
// the results: the same operations committed event by event (a segment each, merged eight at a
// time, in cascades, dropping a deleted session's documents), in four large commits, and in four
// large commits without the posting cache (in three directories) give the same hits, scores and
// totals, through additions, a deleted session (which drops the cache) and more additions.
TEST_F(SearchIndexTest, SegmentsAndTheirMergesGiveTheSameResults) {
  const char* words[] = {"stripe", "webhooks", "refund", "timeout", "error", "retry", "deploy"};
  const std::vector<std::string> queries = {
      "stripe", "stripe webhook", "error OR retry", "refund -timeout", "webhooks deploy",
      "\"stripe webhooks\"", "webhook type:agent.tool_use", "lorem3 error timeout"};
  using Hits = std::vector<std::tuple<std::string, uint64_t, double>>;
  std::vector<Hits> runs[3];
  std::vector<uint64_t> totals[3];
  for (int cached = 0; cached < 3; ++cached) {
    const char* dirs[] = {"small", "large", "uncached"};
    reopen(1.2, 0.75, 0, dirs[cached], cached == 2 ? 0 : 1);
    next_.clear();
    auto add_batch = [&](int from, int to) { add_mixed(words, from, to, cached == 0 ? 1 : 0); };
    auto run_all = [&] {
      for (const auto& q : queries) {
        for (size_t limit : {3, 50}) {
          SearchResults r = search(q, {}, "t", limit);
          Hits hits;
          for (const auto& h : r.hits) hits.emplace_back(h.session_id, h.position, h.score);
          runs[cached].push_back(hits);
          totals[cached].push_back(r.total_hits);
        }
        SearchResults one = search(q, {"s2"});
        Hits hits;
        for (const auto& h : one.hits) hits.emplace_back(h.session_id, h.position, h.score);
        runs[cached].push_back(hits);
        totals[cached].push_back(one.total_hits);
      }
    };
    add_batch(0, 150);
    run_all();
    add_batch(150, 260);
    run_all();
    ASSERT_TRUE(index_->remove_session("t", "s1"));
    commit();
    run_all();
    add_batch(260, 300);
    run_all();
  }
  ASSERT_EQ(runs[0].size(), runs[1].size());
  ASSERT_EQ(runs[0].size(), runs[2].size());
  size_t nonempty = 0;
  for (size_t i = 0; i < runs[0].size(); ++i) {
    SCOPED_TRACE(i);
    ASSERT_EQ(runs[0][i], runs[1][i]);  // same hits, same order, bit-identical scores
    ASSERT_EQ(runs[0][i], runs[2][i]);
    EXPECT_EQ(totals[0][i], totals[1][i]);
    EXPECT_EQ(totals[0][i], totals[2][i]);
    if (!runs[0][i].empty()) ++nonempty;
  }
  EXPECT_GT(nonempty, runs[0].size() * 3 / 4);
}

// Queries that only AND words are matched by match_conjunction, not Xapian's matcher: the same
// hits, order, scores and totals as Xapian's, one pass and split, through additions and a deleted
// session; queries with other operators or filters are Xapian's either way.
TEST_F(SearchIndexTest, DirectConjunctionsGiveXapiansResults) {
  const char* words[] = {"stripe", "webhooks", "refund", "timeout", "errors", "retry", "deploy"};
  const std::vector<std::string> queries = {
      "stripe", "stripe webhook", "webhooks deploy errors", "error timeout", "\"stripe\" retry",
      "refund stripe webhooks timeout", "lorem3 error", "nosuchword stripe", "error OR retry"};
  using Hits = std::vector<std::tuple<std::string, uint64_t, double>>;
  std::vector<Hits> runs[2];
  std::vector<uint64_t> totals[2];
  for (int direct = 0; direct < 2; ++direct) {
    direct_conjunctions_ = direct == 1;
    next_.clear();
    for (uint64_t split : {0, 1}) {
      reopen(1.2, 0.75, split, direct ? "direct" : "xapian");
      auto add_batch = [&](int from, int to) { add_mixed(words, from, to); };
      auto run_all = [&] {
        for (const auto& q : queries) {
          for (auto [limit, offset] : {std::pair<size_t, size_t>{3, 0}, {10, 4}, {500, 0}}) {
            SearchResults r = search(q, {}, "t", limit, offset);
            Hits hits;
            for (const auto& h : r.hits) hits.emplace_back(h.session_id, h.position, h.score);
            runs[direct].push_back(hits);
            totals[direct].push_back(r.total_hits);
          }
        }
      };
      if (split == 0) {
        add_batch(0, 200);
        run_all();
        ASSERT_TRUE(index_->remove_session("t", "s1"));
        commit();
        run_all();
        add_batch(200, 260);
      }
      run_all();
    }
  }
  ASSERT_EQ(runs[0].size(), runs[1].size());
  size_t nonempty = 0;
  for (size_t i = 0; i < runs[0].size(); ++i) {
    SCOPED_TRACE(i);
    ASSERT_EQ(runs[0][i].size(), runs[1][i].size());
    for (size_t j = 0; j < runs[0][i].size(); ++j) {
      EXPECT_EQ(std::get<0>(runs[0][i][j]), std::get<0>(runs[1][i][j])) << j;
      EXPECT_EQ(std::get<1>(runs[0][i][j]), std::get<1>(runs[1][i][j])) << j;
      EXPECT_DOUBLE_EQ(std::get<2>(runs[0][i][j]), std::get<2>(runs[1][i][j])) << j;
    }
    EXPECT_EQ(totals[0][i], totals[1][i]);  // below 1,000 matches Xapian's count is exact too
    if (!runs[0][i].empty()) ++nonempty;
  }
  EXPECT_GT(nonempty, runs[0].size() / 2);
}

// Searches on several threads — split ones competing for the side thread, one-pass ones when it is
// busy — while the writer keeps adding and committing: every search succeeds with ranked hits.
// (Run under TSan by tests/sanitize.sh tsan.)
TEST_F(SearchIndexTest, ConcurrentSplitSearchesWhileIndexing) {
  reopen(1.2, 0.75, /*split_min_docs=*/1);
  for (int i = 0; i < 100; ++i) add("s" + std::to_string(i % 5), "stripe webhook " + filler(i % 11));
  commit();
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0}, searches{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&, r] {
      while (!stop.load()) {
        ParsedQuery pq;
        if (!parse_search_query(r == 1 ? "stripe webhook" : "stripe", &pq)) ++failures;
        SearchRequest req;
        req.query = pq;
        req.limit = 10;
        SearchResults out;
        Status st = index_->search("t", req, &out);
        bool ordered = std::is_sorted(out.hits.begin(), out.hits.end(),
                                      [](const SearchHit& a, const SearchHit& b) {
                                        return a.score > b.score;
                                      });
        if (!st || out.hits.empty() || !ordered) ++failures;
        if (!out.hits.empty() && out.snippet("a stripe charge").find("<mark>") == std::string::npos) {
          ++failures;
        }
        ++searches;
      }
    });
  }
  for (int i = 0; i < 300; ++i) {
    add("s" + std::to_string(i % 7), "stripe refund " + filler(i % 5, "ipsum"));
    if (i % 20 == 19) commit();
  }
  commit();
  while (searches.load() < 60) std::this_thread::yield();
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(search("stripe").total_hits, 400u);
}

// Commits in quick succession must not fail searches running across them: Xapian discards the
// revision a reader reads once the writer has committed twice more, so without the index's
// revision gate long searches here end in DatabaseModifiedError after every retry (or read blocks
// the writer is rewriting).
TEST_F(SearchIndexTest, SearchesNeverFailWhileCommitsFollowEachOther) {
  reopen(1.2, 0.75, /*split_min_docs=*/1);
  for (int i = 0; i < 20000; ++i) add("s" + std::to_string(i % 50), "common words " + filler(i % 17));
  commit();
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0}, searches{0};
  std::string first_error;
  std::mutex error_mu;
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&, r] {
      while (!stop.load()) {
        ParsedQuery pq;
        parse_search_query(r == 0 ? "common" : "common OR words", &pq);
        SearchRequest req;
        req.query = pq;
        req.limit = 10;
        SearchResults out;
        Status st = index_->search("t", req, &out);
        if (!st || out.hits.size() != 10) {
          std::lock_guard lk(error_mu);
          if (failures++ == 0) first_error = st.message();
        }
        ++searches;
      }
    });
  }
  for (int i = 0; i < 400; ++i) {
    add("s" + std::to_string(i % 7), "common refund " + filler(i % 5, "ipsum"));
    commit();
  }
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(failures.load(), 0) << first_error;
  EXPECT_GT(searches.load(), 0);
  EXPECT_EQ(search("common").total_hits, 20400u);
}

// Xapian refuses terms over 245 bytes; an event whose type is longer (stored before types were
// bounded at the API) must still be indexed, or the indexer retries it forever.
TEST_F(SearchIndexTest, OverlongTypeIsIndexedWithoutItsFilterTerm) {
  std::string type(300, 't');
  ASSERT_TRUE(index_->add("t", "s", next_["t/s"]++, type, "overlong type event"));
  add("s", "overlong but plain", "agent.message");
  commit();
  EXPECT_EQ(search("overlong").total_hits, 2u);
}

TEST_F(SearchIndexTest, PagingWithOffset) {
  for (int i = 0; i < 25; ++i) add("s", "page " + filler(i + 1));
  commit();
  ParsedQuery pq;
  ASSERT_TRUE(parse_search_query("page", &pq));
  SearchRequest r;
  r.query = pq;
  r.limit = 10;
  r.offset = 20;
  SearchResults out;
  ASSERT_TRUE(index_->search("t", r, &out));
  EXPECT_EQ(out.hits.size(), 5u);
  EXPECT_EQ(out.total_hits, 25u);
  EXPECT_EQ(out.indexed_events, 25u);
}

}  // namespace
}  // namespace ds
