// core/json_dom: every document JSON's grammar allows parses, including numbers simdjson cannot
// represent (read as 0 in the DOM, kept as sent by the callers that copy the text); everything
// else simdjson refuses stays refused.
#include "core/json_dom.h"

#include <gtest/gtest.h>

#include <string>

#include "api/event_body.h"
#include "api/json_body.h"
#include "search/event_text.h"

namespace ds {
namespace {

simdjson::error_code parse(const std::string& json, simdjson::dom::element* root) {
  thread_local simdjson::dom::parser p;
  return parse_json_dom(p, json, root);
}

TEST(JsonDomTest, NumbersSimdjsonCannotHoldAreReadAsZeroAndTheRestAsSent) {
  const std::string doc =
      R"({"big":265252859812191058636308480000000,"neg":-9223372036854775809,)"
      R"("huge":1e400,"tokens":42,"max":18446744073709551615,"s":"-1e400 01","list":[1.5e999,7]})";
  simdjson::dom::element root;
  ASSERT_EQ(parse(doc, &root), simdjson::SUCCESS);
  EXPECT_EQ(uint64_t(root["big"]), 0u);
  EXPECT_EQ(int64_t(root["neg"]), 0);
  EXPECT_EQ(uint64_t(root["tokens"]), 42u);
  EXPECT_EQ(uint64_t(root["max"]), UINT64_MAX);
  EXPECT_EQ(std::string_view(root["s"]), "-1e400 01");
  EXPECT_EQ(int64_t(root["list"].at(1)), 7);
}

TEST(JsonDomTest, WhatSimdjsonAcceptsIsParsedAsSimdjsonParsesIt) {
  for (std::string doc : {"[1,2.5,-3e-7,7e-77777000009]", R"({"a":"b"})", "true", "0"}) {
    simdjson::dom::element root;
    EXPECT_EQ(parse(doc, &root), simdjson::SUCCESS) << doc;
    simdjson::dom::parser p;
    EXPECT_EQ(simdjson::minify(root), simdjson::minify(p.parse(doc).value())) << doc;
  }
}

TEST(JsonDomTest, EverythingElseStaysRefused) {
  for (std::string doc : {"01", "1.", "-", "1e", "1.2.3", "[1e400,]", R"({"a":1e400,})", "[1e400",
                          "[1e400 2]", R"({"a":1e400 "b":1})", "-01e400", "[99999999999999999999x]",
                          "1e400 1e400"}) {
    simdjson::dom::element root;
    EXPECT_NE(parse(doc, &root), simdjson::SUCCESS) << doc;
  }
}

TEST(JsonDomTest, BodiesWithSuchNumbersAreStoredAsSent) {
  const std::string n = "265252859812191058636308480000000";
  std::vector<std::string> messages;
  ASSERT_TRUE(split_json_messages("[ {\"v\": " + n + "}, 1e400 ]", &messages));
  EXPECT_EQ(messages, (std::vector<std::string>{"{\"v\":" + n + "}", "1e400"}));

  ParsedEvents parsed;
  ASSERT_TRUE(parse_event_body(R"([{"type":"agent.tool_result","content":)" + n + "}]", 10,
                               1'700'000'000'000, &parsed));
  ASSERT_EQ(parsed.events.size(), 1u);
  EXPECT_NE(parsed.events[0].find("\"content\":" + n), std::string::npos) << parsed.events[0];
  std::string type;
  extract_event_text(parsed.events[0], &type);
  EXPECT_EQ(type, "agent.tool_result");  // the indexer reads such an event too
}

}  // namespace
}  // namespace ds
