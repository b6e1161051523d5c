// search/query: the query syntax and its errors.
#include "search/query.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace ds {
namespace {

std::string error_of(const std::string& q) {
  ParsedQuery p;
  Status s = parse_search_query(q, &p);
  return s ? "" : s.message();
}

std::string desc(const std::string& q) {
  ParsedQuery p;
  Status s = parse_search_query(q, &p);
  EXPECT_TRUE(s) << s.message();
  return p.query.get_description();
}

TEST(SearchQuery, WordsAreAllRequiredAndStemmedWithExactBonus) {
  std::string d = desc("Stripe webhooks");
  EXPECT_NE(d.find("Zstripe AND Zwebhook"), std::string::npos) << d;
  EXPECT_NE(d.find("AND_MAYBE"), std::string::npos) << d;
  EXPECT_NE(d.find("webhooks"), std::string::npos) << d;
}

TEST(SearchQuery, ConjunctionListsTheTermsOfAQueryThatOnlyAndsWords) {
  auto conj = [](const std::string& q) {
    ParsedQuery p;
    EXPECT_TRUE(parse_search_query(q, &p));
    return p.conjunction();
  };
  using Terms = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(conj("Stripe webhooks"), (Terms{{"Zstripe", "stripe"}, {"Zwebhook", "webhooks"}}));
  EXPECT_EQ(conj("\"stripe\" 42 AND retry"), (Terms{{"stripe", ""}, {"42", ""}, {"Zretri", "retry"}}));
  EXPECT_EQ(conj("error error"), (Terms{{"Zerror", "error"}}));
  // Anything else is Xapian's to match.
  for (const char* q : {"a OR b", "\"stripe webhook\"", "stripe -refund", "stripe NOT refund",
                        "stripe type:agent.message", "foo-bar"}) {
    EXPECT_TRUE(conj(q).empty()) << q;
  }
}

TEST(SearchQuery, PhraseUsesExactFormsInOrder) {
  std::string d = desc("\"stripe webhook\" retry");
  EXPECT_NE(d.find("(stripe PHRASE 2 webhook)"), std::string::npos) << d;
}

TEST(SearchQuery, OrBindsTighterThanImplicitAnd) {
  std::string d = desc("refund OR chargeback stripe");
  EXPECT_NE(d.find("((Zrefund OR Zchargeback) AND Zstripe)"), std::string::npos) << d;
}

TEST(SearchQuery, MinusAndNotExclude) {
  EXPECT_NE(desc("webhook -draft").find("AND_NOT Zdraft"), std::string::npos);
  EXPECT_NE(desc("webhook NOT draft").find("AND_NOT Zdraft"), std::string::npos);
  EXPECT_NE(desc("webhook -\"old code\"").find("AND_NOT (old PHRASE 2 code)"), std::string::npos);
}

TEST(SearchQuery, TypePrefixFiltersWithoutScoring) {
  std::string d = desc("webhook type:agent.tool_use");
  EXPECT_NE(d.find("FILTER XTagent.tool_use"), std::string::npos) << d;
  d = desc("webhook -type:user.message");
  EXPECT_NE(d.find("AND_NOT XTuser.message"), std::string::npos) << d;
  d = desc("webhook type:a OR type:b");
  EXPECT_NE(d.find("FILTER (XTa OR XTb)"), std::string::npos) << d;
}

TEST(SearchQuery, PunctuatedTokensBecomePhrases) {
  EXPECT_NE(desc("agent.tool_use").find("agent PHRASE 2 tool_use"), std::string::npos);
}

TEST(SearchQuery, MalformedQueriesAreRejectedWithAMessage) {
  EXPECT_NE(error_of("\"stripe webhook"), "");
  EXPECT_NE(error_of("\"stripe webhook").find("closing quote"), std::string::npos);
  EXPECT_NE(error_of(""), "");
  EXPECT_NE(error_of("   "), "");
  EXPECT_NE(error_of("OR stripe"), "");
  EXPECT_NE(error_of("stripe OR"), "");
  EXPECT_NE(error_of("stripe OR OR x"), "");
  EXPECT_NE(error_of("stripe -"), "");
  for (const char* ws : {"stripe - x", "stripe -\tx", "stripe -\nx", "stripe -\rx", "stripe -\r"}) {
    EXPECT_NE(error_of(ws), "") << "a minus followed by whitespace: " << ws;
  }
  EXPECT_NE(error_of("-stripe"), "");
  EXPECT_NE(error_of("type:agent.message"), "");
  EXPECT_NE(error_of("x type:"), "");
  EXPECT_NE(error_of("x type:<b>"), "");
  EXPECT_NE(error_of("a OR -b"), "");
  EXPECT_NE(error_of("\"\" x"), "");
  EXPECT_NE(error_of(std::string(kMaxQueryBytes + 1, 'a')), "");
  std::string many;
  for (size_t i = 0; i <= kMaxQueryTerms; ++i) many += "w" + std::to_string(i) + " ";
  EXPECT_NE(error_of(many), "");
}

TEST(SearchQuery, PunctuationOnlyTokensAreIgnored) {
  EXPECT_EQ(error_of("webhook !!!"), "");
}

}  // namespace
}  // namespace ds
