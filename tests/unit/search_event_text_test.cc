// search/event_text: what of a stored event is searchable.
#include "search/event_text.h"

#include <gtest/gtest.h>

#include <string>

namespace ds {
namespace {

std::string stored(const std::string& type, const std::string& fields) {
  return R"({"id":"evt_01HZZZZZZZZZZZZZZZZZZZZZZZ","offset":"0000000000000007","type":")" + type +
         "\"," + fields + R"(,"created_at":"2025-01-01T00:00:00.000Z","processed_at":"2025-01-01T00:00:00.000Z"})";
}

TEST(SearchEventText, IndexesTypeTextBlocksToolNamesInputsAndOutputs) {
  std::string type;
  std::string t = extract_event_text(
      stored("agent.tool_use", R"("name":"bash","input":{"command":"grep -r webhook src/","flags":["-n"]})"),
      &type);
  EXPECT_EQ(type, "agent.tool_use");
  EXPECT_NE(t.find("agent.tool_use"), std::string::npos);
  EXPECT_NE(t.find("bash"), std::string::npos);
  EXPECT_NE(t.find("grep -r webhook src/"), std::string::npos);
  EXPECT_NE(t.find("-n"), std::string::npos);
  std::string r = extract_event_text(stored(
      "user.tool_result",
      R"("tool_use_id":"toolu_1","content":[{"type":"text","text":"FAIL test_refund: expected 200"}],"is_error":true)"));
  EXPECT_NE(r.find("FAIL test_refund: expected 200"), std::string::npos);
  EXPECT_NE(r.find("toolu_1"), std::string::npos);
}

TEST(SearchEventText, SkipsServerFieldsKeysNumbersAndNestedTypeValues) {
  std::string t = extract_event_text(
      stored("user.message", R"("content":[{"type":"text","text":"hello"}],"tokens":42,"ok":true)"));
  EXPECT_EQ(t, "user.message\nhello");
}

TEST(SearchEventText, SkipsBase64SourceData) {
  std::string blob(400, 'A');
  std::string t = extract_event_text(stored(
      "user.message",
      R"("content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBOR)" +
          blob + R"("}},{"type":"text","text":"what is in this picture"}])"));
  EXPECT_EQ(t.find("iVBOR"), std::string::npos);
  EXPECT_NE(t.find("image/png"), std::string::npos);
  EXPECT_NE(t.find("what is in this picture"), std::string::npos);
}

TEST(SearchEventText, SkipsLongOpaqueStringsButKeepsLongProse) {
  std::string hash(128, 'f');
  std::string prose;
  for (int i = 0; i < 40; ++i) prose += "word ";
  std::string t = extract_event_text(
      stored("agent.message", R"("sig":")" + hash + R"(","text":")" + prose + R"(")"));
  EXPECT_EQ(t.find(hash), std::string::npos);
  EXPECT_NE(t.find("word word"), std::string::npos);
  EXPECT_TRUE(is_opaque_string(hash));
  EXPECT_FALSE(is_opaque_string("short"));
  EXPECT_FALSE(is_opaque_string(prose));
}

TEST(SearchEventText, CapsTextAtLimitOnUtf8Boundary) {
  std::string big;
  while (big.size() < kMaxIndexedTextBytes + 1000) big += "h\xC3\xA9llo ";
  std::string t = extract_event_text(stored("agent.message", R"("text":")" + big + R"(")"));
  EXPECT_LE(t.size(), kMaxIndexedTextBytes);
  // Never ends inside a multi-byte sequence.
  unsigned char last = static_cast<unsigned char>(t.back());
  EXPECT_TRUE(last < 0x80);
}

TEST(SearchEventText, InvalidJsonGivesEmptyText) {
  EXPECT_EQ(extract_event_text("{not json"), "");
}

}  // namespace
}  // namespace ds
