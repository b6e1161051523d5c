// api/event_body: session append bodies become stored events that are valid JSON, keep the
// client's values as sent, and carry the server's fields exactly once — including for bodies
// whose keys repeat or are written with escapes.
#include "api/event_body.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <string>
#include <vector>

namespace ds {
namespace {

constexpr int64_t kMillis = 1'700'000'000'000;

// The stored event's members as simdjson sees them (unescaped keys, duplicates kept, in order).
std::vector<std::pair<std::string, std::string>> members(const std::string& event) {
  thread_local simdjson::dom::parser p;
  simdjson::dom::object o;
  EXPECT_FALSE(p.parse(event).get(o)) << "not a JSON object: " << event;
  std::vector<std::pair<std::string, std::string>> out;
  for (auto f : o) out.emplace_back(std::string(f.key), simdjson::minify(f.value));
  return out;
}

size_t count_key(const std::string& event, const std::string& key) {
  size_t n = 0;
  for (const auto& [k, v] : members(event)) n += k == key;
  return n;
}

ParsedEvents parse_ok(const std::string& body) {
  ParsedEvents out;
  Status s = parse_event_body(body, 100, kMillis, &out);
  EXPECT_TRUE(s) << body << ": " << s.message();
  return out;
}

TEST(EventBodyTest, AcceptsTheThreeShapesAndKeepsValuesAsSent) {
  for (const std::string body : {R"({"events":[{"type":"user.message","n":1.50,"x":[1,{"a":"\u00e9"}]}]})",
                                 R"([{"type":"user.message","n":1.50,"x":[1,{"a":"\u00e9"}]}])",
                                 R"({"type":"user.message","n":1.50,"x":[1,{"a":"\u00e9"}]})"}) {
    ParsedEvents p = parse_ok(body);
    ASSERT_EQ(p.events.size(), 1u) << body;
    EXPECT_EQ(p.types[0], "user.message");
    EXPECT_NE(p.events[0].find(R"("n":1.50,"x":[1,{"a":"\u00e9"}])"), std::string::npos)
        << p.events[0];
    for (const char* k : {"id", "offset", "type", "created_at", "processed_at"}) {
      EXPECT_EQ(count_key(p.events[0], k), 1u) << k << " in " << p.events[0];
    }
  }
}

// simdjson's lookup takes the first "events"; the events copied must be that list's too. (A
// later list of strings used to be copied instead: invalid JSON stored, or a read past the end.)
TEST(EventBodyTest, RepeatedEventsKeyUsesTheFirstListThroughout) {
  for (const std::string body : {R"({"events":[{"type":"x"},{"type":"y"}],"events":["a}","}"]})",
                                 R"({"events":[{"type":"x"}],"events":["a}"]})",
                                 R"({"events":[{"type":"x"}],"events":[1]})",
                                 R"({"events":[{"type":"x","k":"v"}],"events":[{"type":"z"}]})"}) {
    ParsedEvents p = parse_ok(body);
    ASSERT_FALSE(p.events.empty()) << body;
    EXPECT_EQ(p.types[0], "x");
    for (const auto& e : p.events) members(e);  // each one valid JSON
  }
  ParsedEvents p = parse_ok(R"({"events":[{"type":"x","k":"v"}],"events":[{"type":"z"}]})");
  EXPECT_NE(p.events[0].find(R"("k":"v")"), std::string::npos) << p.events[0];
}

// The first "events" member not being an array makes the body one event, whatever follows.
TEST(EventBodyTest, FirstEventsKeyNotAnArrayMeansOneEvent) {
  ParsedEvents p = parse_ok(R"({"type":"x","events":5,"events":[{"type":"y"}]})");
  ASSERT_EQ(p.events.size(), 1u);
  EXPECT_EQ(p.types[0], "x");
  EXPECT_EQ(count_key(p.events[0], "events"), 2u) << p.events[0];
}

// Keys written with escapes are the same keys: a client cannot add a second id or type.
TEST(EventBodyTest, EscapedServerFieldKeysAreDropped) {
  ParsedEvents p = parse_ok(
      R"({"type":"user.message","\u0069d":"evt_SPOOF","\u0074ype":"session.deleted","\u006ffset":"1","created\u005fat":"x","ok\u0021":1})");
  ASSERT_EQ(p.events.size(), 1u);
  const std::string& e = p.events[0];
  for (const char* k : {"id", "offset", "type", "created_at", "processed_at"}) {
    EXPECT_EQ(count_key(e, k), 1u) << k << " in " << e;
  }
  EXPECT_EQ(e.find("SPOOF"), std::string::npos) << e;
  EXPECT_EQ(e.find("session.deleted"), std::string::npos) << e;
  EXPECT_EQ(count_key(e, "ok!"), 1u) << e;  // other escaped keys are kept as sent
  EXPECT_NE(e.find(R"("ok\u0021":1)"), std::string::npos) << e;
}

TEST(EventBodyTest, RejectsWhatIsNotAnEventList) {
  ParsedEvents out;
  for (const std::string body : {"", "1", R"("x")", "{", R"({"events":[]})", "[]", R"([1])",
                                 R"([{"type":""}])", R"([{"type":1}])", R"([{"n":1}])"}) {
    EXPECT_FALSE(parse_event_body(body, 100, kMillis, &out)) << body;
  }
  EXPECT_FALSE(parse_event_body(R"([{"type":"a"},{"type":"b"}])", 1, kMillis, &out));
}

TEST(EventBodyTest, TypeLengthIsBounded) {
  ParsedEvents out;
  std::string at_limit(kMaxEventTypeBytes, 't');
  EXPECT_TRUE(parse_event_body(R"({"type":")" + at_limit + R"("})", 100, kMillis, &out));
  Status s = parse_event_body(R"({"type":")" + at_limit + R"(t"})", 100, kMillis, &out);
  EXPECT_FALSE(s);
  EXPECT_NE(s.message().find("longer than 128 bytes"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace ds
