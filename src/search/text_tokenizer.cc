#include "search/text_tokenizer.h"

#include <xapian.h>

#include <cstring>

namespace ds {
namespace {

constexpr size_t kBlockBytes = 64 * 1024;  // term text arena block
constexpr size_t kInitialSlots = 1 << 16;

// 64-bit hash of a short string: 8-byte words folded with a multiply and rotate, then a final
// avalanche. Only needs to spread terms over a power-of-two table.
inline uint64_t hash_bytes(std::string_view s) {
  uint64_t h = 0x9e3779b97f4a7c15ull ^ s.size();
  const char* p = s.data();
  size_t n = s.size();
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdull;
    h = (h << 29) | (h >> 35);
    p += 8;
    n -= 8;
  }
  uint64_t w = 0;
  if (n) std::memcpy(&w, p, n);
  h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 29;
  return h;
}

struct AsciiTable {
  bool word[128];
  constexpr AsciiTable() : word() {
    for (int c = 0; c < 128; ++c)
      word[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '_';
  }
};
constexpr AsciiTable kAscii;

inline bool cont(unsigned char c) { return (c & 0xc0) == 0x80; }

// Decodes the code point at p[i] (i < n); returns its length in bytes. Invalid sequences are read
// as one Latin-1 byte.
inline size_t decode(const unsigned char* p, size_t n, size_t i, unsigned& cp) {
  unsigned c = p[i];
  if (c < 0x80) {
    cp = c;
    return 1;
  }
  if (c >= 0xc2 && c < 0xe0 && i + 1 < n && cont(p[i + 1])) {
    cp = ((c & 0x1f) << 6) | (p[i + 1] & 0x3f);
    return 2;
  }
  if (c >= 0xe0 && c < 0xf0 && i + 2 < n && cont(p[i + 1]) && cont(p[i + 2])) {
    unsigned v = ((c & 0x0f) << 12) | ((p[i + 1] & 0x3f) << 6) | (p[i + 2] & 0x3f);
    if (v >= 0x800) {
      cp = v;
      return 3;
    }
  }
  if (c >= 0xf0 && c < 0xf5 && i + 3 < n && cont(p[i + 1]) && cont(p[i + 2]) && cont(p[i + 3])) {
    unsigned v = ((c & 0x07) << 18) | ((p[i + 1] & 0x3f) << 12) | ((p[i + 2] & 0x3f) << 6) |
                 (p[i + 3] & 0x3f);
    if (v >= 0x10000 && v <= 0x10ffff) {
      cp = v;
      return 4;
    }
  }
  cp = c;
  return 1;
}

inline bool is_wc(unsigned cp) {
  return cp < 128 ? kAscii.word[cp] : Xapian::Unicode::is_wordchar(cp);
}
inline unsigned lower(unsigned cp) {
  if (cp < 128) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
  return Xapian::Unicode::tolower(cp);
}
inline bool is_digit(unsigned cp) {
  if (cp < 128) return cp >= '0' && cp <= '9';
  return Xapian::Unicode::get_category(cp) == Xapian::Unicode::DECIMAL_DIGIT_NUMBER;
}
inline void put(std::string& s, unsigned cp) {
  if (cp < 128)
    s.push_back(char(cp));
  else
    Xapian::Unicode::append_utf8(s, cp);
}
constexpr unsigned kIgnore = 0xffffffffu;
inline bool invisible(unsigned cp) {
  return cp >= 0x200b && (cp <= 0x200d || cp == 0x2060 || cp == 0xfeff);
}
// Joins two letter runs: apostrophes, '&', middle dots; zero-width characters join and vanish.
inline unsigned join_words(unsigned cp) {
  switch (cp) {
    case '\'':
    case '&':
    case 0xb7:
    case 0x5f4:
    case 0x2027:
      return cp;
    case 0x2019:
    case 0x201b:
      return '\'';
  }
  return invisible(cp) ? kIgnore : 0;
}
// Joins two digit runs: "1,000", "3.14", and their Unicode cousins.
inline unsigned join_digits(unsigned cp) {
  switch (cp) {
    case ',':
    case '.':
    case ';':
    case 0x37e:
    case 0x589:
    case 0x60d:
    case 0x7f8:
    case 0x2044:
    case 0xfe10:
    case 0xfe13:
    case 0xfe14:
      return cp;
  }
  return invisible(cp) ? kIgnore : 0;
}

// Splits `text` into words; calls emit(word, begin, end) for each, in order, with the
// lower-cased word and its byte range in `text`.
template <typename Emit>
void split_words(std::string_view text, std::string& w, Emit&& emit) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0, len = 0;
  unsigned cp = 0;
  for (;;) {
    // Find the next word character.
    for (;;) {
      if (i >= n) return;
      if (p[i] < 0x80) {
        cp = p[i];
        len = 1;
        if (kAscii.word[cp]) break;
        ++i;
        continue;
      }
      len = decode(p, n, i, cp);
      if (is_wc(cp)) break;
      i += len;
    }
    const size_t begin = i;
    w.clear();
    if (cp >= 'A' && cp <= 'Z') {  // initials: A.B.C
      size_t j = i;
      unsigned c = cp;
      for (;;) {
        w.push_back(char(c + 32));
        ++j;
        if (j >= n || p[j] != '.') break;
        ++j;
        if (j >= n || !(p[j] >= 'A' && p[j] <= 'Z')) break;
        c = p[j];
      }
      if (w.size() > 1) {
        unsigned after = 0;
        bool word_follows = j < n && (decode(p, n, j, after), is_wc(after));
        if (!word_follows) {
          i = j;
          emit(w, begin, j);
          continue;
        }
      }
      w.clear();
    }
    unsigned ch = lower(cp);
    bool at_end = false;
    for (;;) {
      unsigned prev;
      for (;;) {  // a run of word characters
        put(w, ch);
        prev = ch;
        i += len;
        if (i >= n) {
          at_end = true;
          break;
        }
        if (p[i] < 0x80) {
          cp = p[i];
          len = 1;
        } else {
          len = decode(p, n, i, cp);
        }
        if (!is_wc(cp)) break;
        ch = lower(cp);
      }
      if (at_end) break;
      size_t nx = i + len;  // a single joining character between two runs?
      if (nx >= n) break;
      unsigned ncp;
      size_t nlen = decode(p, n, nx, ncp);
      if (!is_wc(ncp)) break;
      unsigned j = (is_digit(prev) && is_digit(ncp)) ? join_digits(cp) : join_words(cp);
      if (!j) break;
      if (j != kIgnore) put(w, j);
      ch = lower(ncp);
      i = nx;
      len = nlen;
    }
    size_t end = i;
    if (!at_end) {  // up to three '+' / '#' suffixes (C++, C#), not when a word follows
      size_t keep = w.size();
      unsigned count = 0;
      bool dropped = false;
      while (cp == '+' || cp == '#') {
        if (++count > 3) {
          w.resize(keep);
          dropped = true;
          break;
        }
        w.push_back(char(cp));
        i += len;
        if (i >= n) {
          at_end = true;
          break;
        }
        len = decode(p, n, i, cp);
      }
      if (!at_end && !dropped && is_wc(cp)) {
        w.resize(keep);
        dropped = true;
      }
      if (!dropped) end = i;
    }
    emit(w, begin, end);
  }
}

}  // namespace

TextTokenizer::TextTokenizer() : stemmer_(std::make_unique<Xapian::Stem>("english")) { clear(); }

TextTokenizer::~TextTokenizer() = default;

void TextTokenizer::clear() {
  std::vector<Info>().swap(info_);
  info_.reserve(1 << 12);
  std::vector<uint64_t>(kInitialSlots, 0).swap(slots_);
  mask_ = slots_.size() - 1;
  blocks_.clear();
  block_used_ = kBlockBytes;  // the next store() starts a block
}

size_t TextTokenizer::terms() const { return info_.size(); }

size_t TextTokenizer::memory() const {
  return info_.capacity() * sizeof(Info) + slots_.capacity() * sizeof(uint64_t) +
         blocks_.size() * kBlockBytes;
}

std::string_view TextTokenizer::term(uint32_t id) const {
  if (id >= info_.size()) return {};
  return std::string_view(info_[id].text, info_[id].size);
}

const char* TextTokenizer::store(std::string_view w) {
  // Words are at most a few hundred bytes (a word is cut at 64 bytes before it gets here, an
  // exact word is at most 4 bytes per code point of the longest kept word): a block always fits.
  if (w.size() > kBlockBytes) w = w.substr(0, kBlockBytes);
  if (block_used_ + w.size() > kBlockBytes) {
    blocks_.push_back(std::make_unique<char[]>(kBlockBytes));
    block_used_ = 0;
  }
  char* at = blocks_.back().get() + block_used_;
  if (!w.empty()) std::memcpy(at, w.data(), w.size());
  block_used_ += w.size();
  return at;
}

void TextTokenizer::grow() {
  std::vector<uint64_t> old(slots_.size() * 2, 0);
  old.swap(slots_);
  mask_ = slots_.size() - 1;
  for (uint64_t s : old) {
    if (!s) continue;
    uint32_t id = uint32_t(s) - 1;
    size_t i = hash_bytes(term(id)) & mask_;
    while (slots_[i]) i = (i + 1) & mask_;
    slots_[i] = s;
  }
}

// Returns the id of `w`, adding it (and, for a word, stemming it once) if new.
uint32_t TextTokenizer::id(std::string_view w, bool is_word) {
  uint64_t h = hash_bytes(w);
  uint32_t tag = uint32_t(h >> 32);
  size_t i = h & mask_;
  while (uint64_t s = slots_[i]) {
    if (uint32_t(s >> 32) == tag) {
      uint32_t id = uint32_t(s) - 1;
      const Info& in = info_[id];
      if (in.size == w.size() && std::memcmp(in.text, w.data(), w.size()) == 0) return id;
    }
    i = (i + 1) & mask_;
  }
  uint32_t id = uint32_t(info_.size());
  info_.push_back({store(w), uint32_t(w.size()), kNoStem});
  slots_[i] = (uint64_t(tag) << 32) | (id + 1);
  if (info_.size() * 2 > slots_.size()) grow();
  if (is_word) {
    unsigned char c = static_cast<unsigned char>(w[0]);
    bool stem;
    if (c < 0x80) {
      stem = c >= 'a' && c <= 'z';  // lower-cased already; digits and '_' are not letters
    } else {
      Xapian::Utf8Iterator u(w.data(), w.size());
      auto cat = Xapian::Unicode::get_category(*u);
      stem = cat == Xapian::Unicode::LOWERCASE_LETTER ||
             cat == Xapian::Unicode::TITLECASE_LETTER ||
             cat == Xapian::Unicode::MODIFIER_LETTER || cat == Xapian::Unicode::OTHER_LETTER;
    }
    if (stem) {
      std::string st = (*stemmer_)(std::string(w));
      if (!st.empty()) {
        st.insert(st.begin(), 'Z');
        uint32_t z = this->id(st, false);
        info_[id].stem = z;
      }
    }
  }
  return id;
}

void TextTokenizer::words(std::string_view text, std::vector<Word>* out) {
  if (text.size() >= 0xffffffffu) text = text.substr(0, 0xfffffffeu);
  split_words(text, word_, [&](const std::string& w, size_t begin, size_t end) {
    if (w.size() > kMaxWordBytes) return;
    uint32_t e = id(w, true);
    out->push_back({e, info_[e].stem, uint32_t(begin), uint32_t(end)});
  });
}

}  // namespace ds
