// TextTokenizer: the words of a text exactly as Xapian::TermGenerator (english stemmer,
// STEM_SOME) indexes them, as term ids of a per-tokenizer dictionary.
//
// Guarantee (checked against TermGenerator by search_text_tokenizer_test): for valid UTF-8 text,
// the exact terms (lower-cased word forms) with positions 1, 2, … and wdf = occurrences, and the
// "Z"+stem terms (only for words starting with a letter) without positions, wdf = occurrences of
// words with that stem, are TermGenerator's. Words over 64 bytes (lower-cased UTF-8) are dropped
// without taking a position. Word splitting follows TermGenerator: word characters are letters,
// marks, decimal digits and connector punctuation ('_'); the infixes ' & · (and U+2019, U+201B
// read as ') between word characters and , . ; between digits join words; zero-width characters
// (U+200B-U+200D, U+2060, U+FEFF) inside a word join and vanish; up to three trailing '+'/'#'
// are kept unless a word character follows (C++, C#); initials like "U.S.A." become one word.
//
// Known differences: invalid UTF-8 is read byte by byte as Latin-1 (Xapian's iterator has its
// own rules; they agree on the sequences tested), and TermGenerator's CJK n-gram mode (off unless
// XAPIAN_CJK_NGRAM is set) is not implemented: a CJK run is one word, as TermGenerator's default.
//
// Cost: ASCII takes a table lookup per byte; each distinct word is lower-cased and stemmed once
// (the dictionary is also the stem cache). No heap allocation per word once the dictionary and
// the caller's vector have grown; the dictionary only grows until clear().
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace Xapian {
class Stem;
}

namespace ds {

class TextTokenizer {  // one per thread; not thread-safe
 public:
  struct Word {
    uint32_t exact;       // term id of the lower-cased exact form
    uint32_t stem;        // term id of "Z"+stem, or kNoStem (word not starting with a letter)
    uint32_t begin, end;  // byte range of the word in the text (original bytes, with infixes)
  };
  static constexpr uint32_t kNoStem = 0xffffffff;
  static constexpr size_t kMaxWordBytes = 64;  // TermGenerator's default max_word_length

  TextTokenizer();
  ~TextTokenizer();
  TextTokenizer(const TextTokenizer&) = delete;
  TextTokenizer& operator=(const TextTokenizer&) = delete;

  // Appends the words of `text` in order; the i-th word appended by one call has position i+1.
  // Words over 64 bytes are dropped and take no position (as TermGenerator). Only the first
  // 4 GiB - 1 bytes of a text are read (byte offsets are 32-bit).
  void words(std::string_view text, std::vector<Word>* out);
  // The text of a term id from this tokenizer ("Z"-prefixed for stems). Valid until clear().
  std::string_view term(uint32_t id) const;
  size_t terms() const;  // number of ids handed out
  void clear();          // forgets every id (bounds memory: the dictionary otherwise only grows)
  size_t memory() const;  // approximate bytes held by the dictionary

 private:
  struct Info {
    const char* text;
    uint32_t size;
    uint32_t stem;
  };
  uint32_t id(std::string_view w, bool is_word);
  void grow();
  const char* store(std::string_view w);

  std::vector<Info> info_;
  std::vector<uint64_t> slots_;  // 0 = empty, else (hash high 32 bits << 32) | (id + 1)
  size_t mask_ = 0;
  std::vector<std::unique_ptr<char[]>> blocks_;  // term texts; never moved, so term() is stable
  size_t block_used_ = 0;
  std::string word_;  // scratch: the lower-cased word being read
  std::unique_ptr<Xapian::Stem> stemmer_;
};

}  // namespace ds
