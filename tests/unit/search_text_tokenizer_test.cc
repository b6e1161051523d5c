// search/text_tokenizer: the terms, wdf and positions of TextTokenizer equal those of
// Xapian::TermGenerator (english stemmer, STEM_SOME) on edge cases and on generated text; byte
// ranges cover the words they came from.
#include "search/text_tokenizer.h"

#include <gtest/gtest.h>
#include <xapian.h>

#include <cctype>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace ds {
namespace {

// term -> (wdf, positions)
using Terms = std::map<std::string, std::pair<uint32_t, std::vector<uint32_t>>>;

Terms xapian_terms(const std::string& text) {
  Xapian::TermGenerator tg;
  tg.set_stemmer(Xapian::Stem("english"));
  tg.set_stemming_strategy(Xapian::TermGenerator::STEM_SOME);
  Xapian::Document doc;
  tg.set_document(doc);
  tg.index_text(text);
  Terms t;
  for (auto it = doc.termlist_begin(); it != doc.termlist_end(); ++it) {
    auto& e = t[*it];
    e.first = it.get_wdf();
    for (auto p = it.positionlist_begin(); p != it.positionlist_end(); ++p) e.second.push_back(*p);
  }
  return t;
}

Terms our_terms(TextTokenizer& tk, const std::string& text) {
  std::vector<TextTokenizer::Word> words;
  tk.words(text, &words);
  Terms t;
  for (size_t i = 0; i < words.size(); ++i) {
    auto& e = t[std::string(tk.term(words[i].exact))];
    ++e.first;
    e.second.push_back(uint32_t(i + 1));
    if (words[i].stem != TextTokenizer::kNoStem) ++t[std::string(tk.term(words[i].stem))].first;
  }
  return t;
}

std::string describe(const Terms& t) {
  std::string s;
  for (auto& [term, e] : t) {
    s += "[" + term + "] wdf " + std::to_string(e.first) + " pos";
    for (uint32_t p : e.second) s += " " + std::to_string(p);
    s += "; ";
  }
  return s;
}

const std::vector<std::string>& edge_cases() {
  static const std::vector<std::string> texts = {
      "",
      "   \n\t  ",
      "Hello world",
      "The quick brown fox jumps over the lazy dog; the dogs were running quickly.",
      "U.S.A. and U.K. are acronyms, as is N.A.T.O and I.B.M.; U.S. Army; A.B.C.D.E.F.G.H.I.J.",
      "U.S.Army A.Bc a.b.c X.Y. Z.",
      "AT&T and M&Ms, R&D; B&&Q",
      "C++ and C# and F#, g++ -O2, C+++ c++++ C++x C#5 a+b",
      "1,000 and 3.14 and 1.2.3 and 10;20 and 1,a and a,1 and 3..14 and 1,,000 and 2,5.",
      "don't can't it's o'clock rock'n'roll 'quoted' dogs' the cat's",
      "don\u2019t it\u2019s l\u00b7l a\u201bb",
      std::string(64, 'a') + " short " + std::string(65, 'b') + " end " + std::string(63, 'c') +
          "d",
      std::string(32, 'e') + "\u00e9" + std::string(31, 'f') + " " + std::string(30, 'g') +
          "\u00e9\u00e9" + std::string(30, 'h'),
      "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00c9COLE stra\u00dfe STRASSE \u00c5ngstr\u00f6m",
      "\u0391\u03b8\u03ae\u03bd\u03b1 \u03ba\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1 "
      "\u039a\u0391\u039b\u0397\u039c\u0395\u03a1\u0391 \u03c3\u03bf\u03c6\u03af\u03b1\u03c2",
      "\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440 \u041c\u041e\u0421\u041a\u0412\u0410",
      "\u4e2d\u6587\u6587\u672c \u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 \ud55c\uad6d\uc5b4 "
      "mixed\u4e2d\u6587text",
      "zero\u200bwidth join\u200cer join\u200der word\u2060joiner bom\ufeffhere \u200bstart end\u200b",
      "combining e\u0301 and n\u0303o and \u0301alone",
      "emoji \U0001F600 smile\U0001F600face and \U0001D400math bold",
      "arabic digits \u0661\u0662\u0663 and \u0661\u066b\u0662 and devanagari \u0967\u0968",
      "invalid \xff\xfe bytes \xc3 here \xe2\x82 and \xf0\x9f\x98 end caf\xe9 \xc0\xaf",
      "int main(int argc, char** argv) { return foo_bar->baz(argv[0]) + 0x1f; } // TODO: fix",
      "std::vector<std::string> v; v.push_back(\"x\"); auto it = m.find(k); if (it != m.end())",
      "$ ls -la /usr/local/bin\ntotal 48\ndrwxr-xr-x  2 root root  4096 Jan  1 12:00 .\n"
      "-rwxr-xr-x  1 root root 12345 Jan  1 12:00 python3.11\nexit status 127",
      "{\"type\":\"tool_use\",\"id\":\"toolu_01ABCdef\",\"input\":{\"path\":\"src/main.cc\","
      "\"n\":42,\"ok\":true,\"list\":[1,2.5,-3e10]}}",
      "snake_case_name __dunder__ _leading trailing_ CamelCaseName mixedCASE ALLCAPS",
      "e-mail user@example.com https://example.com/a/b?c=d&e=f#frag 192.168.0.1 v1.2.3-rc1",
      "'''''' &&& ... ,,, ;;; +++ ### ___ a'b'c a&b&c 1.2,3;4",
      "Running runs ran runner; connection connected connecting; generously generous",
      "ab\u00b7cd \u00b7x y\u00b7 1\u00b72 a\u2027b c\u05f4d",
      "tab\tseparated\tvalues\r\nwindows\rline",
      "x",
      "I A a",
      "A.B",
      "A.",
      "1.5GHz 2x 3rd 4th 1st 100% $5.00 \u20ac10,50",
  };
  return texts;
}

TEST(TextTokenizerTest, EdgeCasesMatchTermGenerator) {
  TextTokenizer tk;
  for (const std::string& text : edge_cases()) {
    Terms want = xapian_terms(text);
    Terms got = our_terms(tk, text);
    EXPECT_EQ(got, want) << "text: " << text << "\n ours: " << describe(got)
                         << "\n xapian: " << describe(want);
  }
}

TEST(TextTokenizerTest, EmptyTextHasNoWords) {
  TextTokenizer tk;
  std::vector<TextTokenizer::Word> words;
  tk.words("", &words);
  tk.words(" ,.;!? ", &words);
  EXPECT_TRUE(words.empty());
}

TEST(TextTokenizerTest, WordsOver64BytesAreDroppedWithoutAPosition) {
  TextTokenizer tk;
  std::vector<TextTokenizer::Word> words;
  tk.words("a " + std::string(65, 'x') + " b " + std::string(64, 'y'), &words);
  ASSERT_EQ(words.size(), 3u);
  EXPECT_EQ(tk.term(words[0].exact), "a");
  EXPECT_EQ(tk.term(words[1].exact), "b");
  EXPECT_EQ(tk.term(words[2].exact), std::string(64, 'y'));
}

TEST(TextTokenizerTest, StemsOnlyForWordsStartingWithALetter) {
  TextTokenizer tk;
  std::vector<TextTokenizer::Word> words;
  tk.words("running 3rd _under", &words);
  ASSERT_EQ(words.size(), 3u);
  ASSERT_NE(words[0].stem, TextTokenizer::kNoStem);
  EXPECT_EQ(tk.term(words[0].stem), "Zrun");
  EXPECT_EQ(words[1].stem, TextTokenizer::kNoStem);
  EXPECT_EQ(words[2].stem, TextTokenizer::kNoStem);
}

TEST(TextTokenizerTest, SameWordGetsSameIdsAcrossCalls) {
  TextTokenizer tk;
  std::vector<TextTokenizer::Word> a, b;
  tk.words("Connection", &a);
  size_t n = tk.terms();
  tk.words("connection CONNECTION", &b);
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(a[0].exact, b[0].exact);
  EXPECT_EQ(a[0].exact, b[1].exact);
  EXPECT_EQ(a[0].stem, b[1].stem);
  EXPECT_EQ(tk.terms(), n);
}

TEST(TextTokenizerTest, ClearForgetsIdsAndStaysCorrect) {
  TextTokenizer tk;
  std::vector<TextTokenizer::Word> w;
  tk.words("alpha beta gamma", &w);
  EXPECT_GT(tk.terms(), 0u);
  tk.clear();
  EXPECT_EQ(tk.terms(), 0u);
  std::string text = "gamma delta alpha";
  EXPECT_EQ(our_terms(tk, text), xapian_terms(text));
}

// Random text mixing ASCII words, capitals and initials, digits with separators, punctuation
// and infixes, accented, Greek, Cyrillic and CJK letters, combining marks, zero-width
// characters, emoji; always valid UTF-8.
std::string random_text(std::mt19937& rng) {
  static const std::vector<std::string> vocab = {
      "the",      "running",  "connection", "Agent",     "tool_use", "ERROR",   "files",
      "don't",    "AT&T",     "C++",        "C#",        "U.S.A.",   "x86_64",  "ls",
      "généreux", "Straße",   "ÉCOLE",      "καλημέρα",  "ΣΟΦΙΑ",    "Привет",  "中文",
      "日本語",   "naïve",    "e\u0301t\u0301e", "zero\u200bwidth", "smile\U0001F600", "rock\u2019n",
      "1,000",    "3.14",     "v1.2.3",     "0x1F",      "π",        "ǅemal",   "ﬁnance",
      "İstanbul", "ΌΨΗ",      "l·l",        "\u0661\u0662", "A.B",    "a+b",     "c+++",
      "generously", "quickly", "happiness", "fished",    "argued",   "dying",   "skies"};
  static const std::vector<std::string> seps = {" ", " ", " ", "  ", "\n", "\t", ", ", ". ",
                                                "; ", ": ", "-", "/", "'", "&", ".", ",", "+",
                                                "#", "_", "(", ")", "\"", "\u00b7", "\u200b",
                                                "\u2019", "\u3000", "!", "?", "=", "->"};
  std::uniform_int_distribution<int> pick(0, 99);
  std::string s;
  int words = std::uniform_int_distribution<int>(0, 60)(rng);
  for (int i = 0; i < words; ++i) {
    int r = pick(rng);
    if (r < 45) {
      s += vocab[size_t(pick(rng)) % vocab.size()];
    } else if (r < 65) {  // random ASCII word, sometimes capitalised, sometimes long
      int len = pick(rng) < 3 ? 60 + pick(rng) % 10 : 1 + pick(rng) % 12;
      bool cap = pick(rng) < 20;
      for (int k = 0; k < len; ++k) {
        char c = char('a' + pick(rng) % 26);
        if (cap && (k == 0 || pick(rng) < 30)) c = char(std::toupper(c));
        s += c;
      }
    } else if (r < 75) {  // digits
      s += std::to_string(pick(rng) * 37);
      if (pick(rng) < 40) s += (pick(rng) < 50 ? "." : ",") + std::to_string(pick(rng));
    } else if (r < 80) {  // initials
      int n = 1 + pick(rng) % 4;
      for (int k = 0; k < n; ++k) {
        s += char('A' + pick(rng) % 26);
        if (pick(rng) < 80) s += '.';
      }
    } else {
      s += seps[size_t(pick(rng)) % seps.size()];
    }
    s += seps[size_t(pick(rng)) % seps.size()];
  }
  return s;
}

TEST(TextTokenizerTest, GeneratedTextsMatchTermGenerator) {
  std::mt19937 rng(20261129);
  TextTokenizer tk;
  int bad = 0;
  for (int i = 0; i < 4000; ++i) {
    std::string text = random_text(rng);
    if (i == 2000) tk.clear();
    Terms want = xapian_terms(text);
    Terms got = our_terms(tk, text);
    if (got != want && ++bad <= 5)
      ADD_FAILURE() << "doc " << i << " text: " << text << "\n ours: " << describe(got)
                    << "\n xapian: " << describe(want);
  }
  EXPECT_EQ(bad, 0);
}

std::string lower_ascii(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = char(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

TEST(TextTokenizerTest, ByteRangesAreAscendingAndCoverTheirWords) {
  std::mt19937 rng(7);
  TextTokenizer tk;
  std::vector<std::string> texts = edge_cases();
  for (int i = 0; i < 1000; ++i) texts.push_back(random_text(rng));
  for (const std::string& text : texts) {
    std::vector<TextTokenizer::Word> words;
    tk.words(text, &words);
    uint32_t prev_end = 0;
    for (const auto& w : words) {
      ASSERT_LT(w.begin, w.end) << text;
      ASSERT_LE(w.end, text.size()) << text;
      ASSERT_GE(w.begin, prev_end) << text;
      prev_end = w.end;
      std::string_view span(text.data() + w.begin, w.end - w.begin);
      bool plain = true;
      for (char c : span) plain = plain && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
      if (plain) {
        EXPECT_EQ(lower_ascii(span), tk.term(w.exact)) << text;
      }
    }
  }
}

TEST(TextTokenizerTest, ByteRangesIncludeInfixesAndSuffixes) {
  TextTokenizer tk;
  std::string text = "Don't use C++ or C#, U.S.A. AT&T 1,000 caf\u00e9 zero\u200bwidth c+++x";
  std::vector<TextTokenizer::Word> words;
  tk.words(text, &words);
  std::vector<std::string> spans;
  for (const auto& w : words) spans.push_back(text.substr(w.begin, w.end - w.begin));
  std::vector<std::string> want = {"Don't", "use",   "C++",   "or",
                                   "C#",    "U.S.A.", "AT&T", "1,000",
                                   "caf\u00e9", "zero\u200bwidth", "c", "x"};
  EXPECT_EQ(spans, want);
}

}  // namespace
}  // namespace ds
