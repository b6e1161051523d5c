// api/http_util: json_quote always produces valid JSON holding valid UTF-8, whatever bytes it is
// given (error messages quote request lines and paths as they arrived).
#include "api/http_util.h"

#include <gtest/gtest.h>

#include <string>

namespace ds {
namespace {

TEST(JsonQuoteTest, EscapesJsonSpecialsAndControls) {
  EXPECT_EQ(json_quote("a\"b\\c\nd\re\tf"), R"("a\"b\\c\nd\re\tf")");
  EXPECT_EQ(json_quote(std::string("\x01\x1f", 2)), R"("\u0001\u001f")");
  EXPECT_EQ(json_quote(std::string("a\0b", 3)), R"("a\u0000b")");
}

TEST(JsonQuoteTest, KeepsValidUtf8) {
  for (const char* s : {"\xC2\xA9", "\xE2\x82\xAC", "\xE0\xA0\x80", "\xED\x9F\xBF", "\xEF\xBF\xBF",
                        "\xF0\x90\x80\x80", "\xF4\x8F\xBF\xBF"}) {
    EXPECT_EQ(json_quote(s), "\"" + std::string(s) + "\"") << s;
  }
}

TEST(JsonQuoteTest, ReplacesEveryInvalidByteWithU_FFFD) {
  struct Case {
    std::string in;
    std::string out;
  };
  const Case cases[] = {
      {"\x80", R"("\ufffd")"},                                   // lone continuation byte
      {"\xC0\xAF", R"("\ufffd\ufffd")"},                         // overlong 2-byte
      {"\xC1\xBF", R"("\ufffd\ufffd")"},                         // overlong 2-byte
      {"\xE0\x82\xA9", R"("\ufffd\ufffd\ufffd")"},               // overlong 3-byte (CI's case)
      {"\xE0\x9F\xBF", R"("\ufffd\ufffd\ufffd")"},               // overlong 3-byte
      {"\xED\xA0\x80", R"("\ufffd\ufffd\ufffd")"},               // UTF-16 surrogate
      {"\xF0\x8F\xBF\xBF", R"("\ufffd\ufffd\ufffd\ufffd")"},     // overlong 4-byte
      {"\xF4\x90\x80\x80", R"("\ufffd\ufffd\ufffd\ufffd")"},     // past U+10FFFF
      {"\xF5\x80\x80\x80", R"("\ufffd\ufffd\ufffd\ufffd")"},     // no such lead byte
      {"\xFF", R"("\ufffd")"},                                   // no such lead byte
      {"\xE2\x82", R"("\ufffd\ufffd")"},                         // truncated
      {"\xE2\x82x", R"("\ufffd\ufffdx")"},                       // truncated, then ASCII
  };
  for (const auto& c : cases) EXPECT_EQ(json_quote(c.in), c.out) << testing::PrintToString(c.in);
}

// Whatever the input, the output decodes as UTF-8: every byte sequence of length 1–4 over a set
// of bytes that covers each boundary of the UTF-8 tables.
TEST(JsonQuoteTest, OutputIsValidUtf8ForAnyInput) {
  const unsigned char bytes[] = {0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2,
                                 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4,
                                 0xF5, 0xFF};
  auto valid_utf8 = [](const std::string& s) {
    // Reference decoder: code points by arithmetic, not by byte-range tables.
    for (size_t i = 0; i < s.size();) {
      unsigned char c = static_cast<unsigned char>(s[i]);
      size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
      if (n == 0 || i + n > s.size()) return false;
      uint32_t cp = n == 1 ? c : c & (0x7F >> n);
      for (size_t k = 1; k < n; ++k) {
        unsigned char d = static_cast<unsigned char>(s[i + k]);
        if ((d & 0xC0) != 0x80) return false;
        cp = (cp << 6) | (d & 0x3F);
      }
      const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
      if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
      i += n;
    }
    return true;
  };
  size_t kept = 0;
  const size_t m = sizeof bytes;
  for (size_t len = 1; len <= 4; ++len) {
    size_t total = 1;
    for (size_t k = 0; k < len; ++k) total *= m;
    for (size_t x = 0; x < total; ++x) {
      std::string in;
      for (size_t k = 0, y = x; k < len; ++k, y /= m) in.push_back(static_cast<char>(bytes[y % m]));
      std::string out = json_quote(in);
      ASSERT_TRUE(valid_utf8(out)) << testing::PrintToString(in);
      // Valid input is kept as it is (quotes aside), so nothing valid is lost either.
      if (valid_utf8(in)) {
        EXPECT_EQ(out, "\"" + in + "\"") << testing::PrintToString(in);
        ++kept;
      }
    }
  }
  EXPECT_GT(kept, 1000u);
}

TEST(AbsoluteLocationTest, KeepsAPlainHostAndPath) {
  std::string host = "127.0.0.1:4437";
  EXPECT_EQ(absolute_location(&host, "/v1/stream/a/b%20c"), "http://127.0.0.1:4437/v1/stream/a/b%20c");
  std::string v6 = "[::1]:8080";
  EXPECT_EQ(absolute_location(&v6, "/v1/stream/x"), "http://[::1]:8080/v1/stream/x");
}

TEST(AbsoluteLocationTest, EncodesOddPathBytesAndDropsOddHosts) {
  std::string evil = "evil.example/phish?\xff";
  EXPECT_EQ(absolute_location(&evil, "/v1/stream/h2"), "http://localhost/v1/stream/h2");
  EXPECT_EQ(absolute_location(nullptr, "/v1/stream/h2"), "http://localhost/v1/stream/h2");
  std::string empty;
  EXPECT_EQ(absolute_location(&empty, "/x"), "http://localhost/x");
  std::string host = "h";
  EXPECT_EQ(absolute_location(&host, std::string("/a\xc0\xaf b\"<\0", 9)),
            "http://h/a%C0%AF%20b%22%3C%00");
}

TEST(IfNoneMatchTest, ListsWeakTagsAndStarMatch) {
  const std::string etag = R"("s1:0000000000000000:0000000000000002")";
  EXPECT_TRUE(if_none_match_matches(etag, etag));
  EXPECT_TRUE(if_none_match_matches("W/" + etag, etag));
  EXPECT_TRUE(if_none_match_matches(R"("x", )" + etag, etag));
  EXPECT_TRUE(if_none_match_matches(etag + R"(,"x")", etag));
  EXPECT_TRUE(if_none_match_matches(" * ", etag));
  EXPECT_FALSE(if_none_match_matches(R"("x")", etag));
  EXPECT_FALSE(if_none_match_matches(R"("x", W/"y")", etag));
  EXPECT_FALSE(if_none_match_matches("", etag));
  EXPECT_FALSE(if_none_match_matches(R"("a,b")", R"("a")"));  // a comma inside a tag
  EXPECT_TRUE(if_none_match_matches(R"("a,b")", R"("a,b")"));
}

}  // namespace
}  // namespace ds

TEST(JsonUnquoteTest, InvertsJsonQuote) {
  for (std::string s : {std::string(""), std::string("plain.type"), std::string("a\"b"),
                        std::string("back\\slash"), std::string("tab\tnl\n\x01"),
                        std::string("caf\xc3\xa9 \xf0\x9f\x98\x80"), std::string("a,b")}) {
    std::string q = ds::json_quote(s);
    std::string back;
    ASSERT_TRUE(ds::json_unquote(std::string_view(q).substr(1, q.size() - 2), &back)) << q;
    EXPECT_EQ(back, s) << q;
  }
  std::string out;
  EXPECT_TRUE(ds::json_unquote("\\u0069d \\ud83d\\ude00", &out));
  EXPECT_EQ(out, "id \xf0\x9f\x98\x80");
}

TEST(JsonUnquoteTest, RefusesWhatIsNotAStringBody) {
  std::string out;
  EXPECT_FALSE(ds::json_unquote("a\"b", &out));     // an unescaped quote ends the string
  EXPECT_FALSE(ds::json_unquote("bad \\x escape", &out));
  EXPECT_FALSE(ds::json_unquote("trailing \\", &out));
  EXPECT_FALSE(ds::json_unquote("\x01", &out));     // raw control character
}
