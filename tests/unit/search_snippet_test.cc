// search/snippet: the excerpt marks matching words (exact forms and stems), escapes HTML, keeps a
// short text whole, centres a long one on the heaviest window of matches (rarer words weigh
// more), cuts at word boundaries with "…", stays within its length, and keeps UTF-8 valid.
#include "search/snippet.h"

#include <gtest/gtest.h>

#include <string>
#include <unordered_map>

namespace ds {
namespace {

size_t plain_bytes(std::string s) {
  for (const char* tag : {"<mark>", "</mark>", "…", "&lt;", "&gt;", "&amp;"}) {
    for (size_t at; (at = s.find(tag)) != std::string::npos;) {
      s.replace(at, std::string(tag).size(), std::string(tag)[0] == '&' ? "x" : "");
    }
  }
  return s.size();
}

bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

TEST(SnippetTest, AShortTextIsKeptWholeEscapedWithMatchesMarked) {
  EXPECT_EQ(make_snippet("<script>steal()</script>", {{"Zscript", 1.0}, {"script", 1.0}}),
            "&lt;<mark>script</mark>&gt;steal()&lt;/<mark>script</mark>&gt;");
  EXPECT_EQ(make_snippet("Fix the webhook & retry", {{"Zwebhook", 2.0}}),
            "Fix the <mark>webhook</mark> &amp; retry");
}

TEST(SnippetTest, StemsMatchOtherFormsAndExactFormsMatchThemselves) {
  EXPECT_EQ(make_snippet("Running runs ran", {{"Zrun", 1.0}}),
            "<mark>Running</mark> <mark>runs</mark> ran");
  EXPECT_EQ(make_snippet("running runs", {{"runs", 1.0}}), "running <mark>runs</mark>");
}

TEST(SnippetTest, ALongTextIsCutAroundTheHeaviestWindow) {
  std::string text;
  for (int i = 0; i < 40; ++i) text += "common words here ";
  text += "the rare needle is here ";
  for (int i = 0; i < 40; ++i) text += "filler text again ";
  std::string s = make_snippet(text, {{"Zcommon", 0.1}, {"Zneedl", 5.0}});
  EXPECT_NE(s.find("<mark>needle</mark>"), std::string::npos) << s;
  EXPECT_EQ(s.rfind("…", 0), 0u) << s;                       // cut before
  EXPECT_EQ(s.substr(s.size() - std::string("…").size()), "…");  // and after
  EXPECT_LE(plain_bytes(s), kSnippetBytes);
  EXPECT_GE(plain_bytes(s), kSnippetBytes - 20);  // uses the length
  // Without the rare word, the common ones decide, from the start.
  std::string c = make_snippet(text, {{"Zcommon", 0.1}});
  EXPECT_EQ(c.rfind("<mark>common</mark>", 0), 0u) << c;
}

TEST(SnippetTest, NoMatchGivesTheBeginningCutAtAWord) {
  std::string text;
  for (int i = 0; i < 100; ++i) text += "alpha" + std::to_string(i) + " ";
  std::string s = make_snippet(text, {{"Zzzz", 1.0}});
  EXPECT_EQ(s.rfind("alpha0 alpha1", 0), 0u) << s;
  EXPECT_EQ(s.find("<mark>"), std::string::npos);
  EXPECT_LE(plain_bytes(s), kSnippetBytes);
  std::string before = s.substr(0, s.size() - std::string("…").size());
  EXPECT_EQ(before.back(), text[before.size() - 1]);
  EXPECT_NE(before.back(), ' ') << s;  // ends with a whole word
}

TEST(SnippetTest, MultiByteTextStaysValidUtf8) {
  std::string text;
  for (int i = 0; i < 200; ++i) text += "ελληνικά—κείμενο ";
  text += "στόχος ";
  for (int i = 0; i < 200; ++i) text += "日本語のテキスト。";
  for (const auto& w : std::unordered_map<std::string, double>{{"στόχος", 3.0}, {"Zx", 1.0}}) {
    std::string s = make_snippet(text, {w});
    EXPECT_TRUE(valid_utf8(s)) << s;
    EXPECT_LE(plain_bytes(s), kSnippetBytes + 8);
  }
  std::string no_words;  // no word boundary to cut at: cut at a character boundary
  for (int i = 0; i < 500; ++i) no_words += "—";
  std::string cut = make_snippet(no_words, {{"x", 1.0}});
  EXPECT_TRUE(valid_utf8(cut)) << cut;
  EXPECT_LE(plain_bytes(cut), kSnippetBytes);
  EXPECT_EQ(make_snippet("", {{"x", 1.0}}), "");
}

}  // namespace
}  // namespace ds
