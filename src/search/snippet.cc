#include "search/snippet.h"

#include <algorithm>
#include <vector>

#include "search/text_tokenizer.h"

namespace ds {

namespace {

// A tokenizer per thread; its dictionary is dropped when it grows large.
TextTokenizer& tokenizer() {
  thread_local TextTokenizer t;
  if (t.memory() > (64u << 20)) t.clear();
  return t;
}

void escape(std::string_view s, std::string* out) {
  for (char c : s) {
    switch (c) {
      case '<':
        out->append("&lt;");
        break;
      case '>':
        out->append("&gt;");
        break;
      case '&':
        out->append("&amp;");
        break;
      default:
        out->push_back(c);
    }
  }
}

// The largest UTF-8 character boundary ≤ i.
size_t char_floor(std::string_view s, size_t i) {
  while (i > 0 && i < s.size() && (static_cast<unsigned char>(s[i]) & 0xc0) == 0x80) --i;
  return i;
}

}  // namespace

std::string make_snippet(std::string_view text,
                         const std::unordered_map<std::string, double>& weights, size_t length) {
  TextTokenizer& tok = tokenizer();
  std::vector<TextTokenizer::Word> words;
  tok.words(text, &words);
  // Weight of each word (0: no match).
  std::vector<double> weight(words.size(), 0);
  auto weight_of = [&](uint32_t id) {
    if (id == TextTokenizer::kNoStem) return 0.0;
    auto it = weights.find(std::string(tok.term(id)));
    return it == weights.end() ? 0.0 : std::max(it->second, 1e-6);
  };
  std::vector<size_t> matched;
  for (size_t i = 0; i < words.size(); ++i) {
    weight[i] = std::max(weight_of(words[i].exact), weight_of(words[i].stem));
    if (weight[i] > 0) matched.push_back(i);
  }
  // The window of matched words [best_i, best_j] within `length` bytes with the most weight.
  size_t a = 0, b = 0;  // byte range of the chosen matches
  if (!matched.empty()) {
    double best = -1, sum = 0;
    size_t best_i = 0, best_j = 0;
    for (size_t i = 0, j = 0; j < matched.size(); ++j) {
      sum += weight[matched[j]];
      while (words[matched[j]].end - words[matched[i]].begin > length && i < j) {
        sum -= weight[matched[i]];
        ++i;
      }
      if (sum > best + 1e-12) {
        best = sum;
        best_i = i;
        best_j = j;
      }
    }
    a = words[matched[best_i]].begin;
    b = std::max<size_t>(words[matched[best_j]].end, a);
    if (b - a > length) b = a + length;  // one word longer than the whole snippet
  }
  // Widen to `length`: half of the rest before the matches, the remainder after them.
  size_t room = length > b - a ? length - (b - a) : 0;
  size_t start = a > room / 2 ? a - room / 2 : 0;
  size_t end = std::min(text.size(), b + (room - (a - start)));
  if (end == text.size()) start = end > length ? end - length : 0;
  start = std::min(start, a);
  // Cut at word boundaries: start at the first word beginning at or after `start`, end at the
  // last word ending at or before `end` (keeping the matches); else at character boundaries.
  if (start > 0) {
    auto w = std::lower_bound(words.begin(), words.end(), start,
                              [](const TextTokenizer::Word& x, size_t s) { return x.begin < s; });
    start = (w != words.end() && w->begin <= a) ? w->begin : char_floor(text, start);
  }
  if (end < text.size()) {
    auto w = std::upper_bound(words.begin(), words.end(), end,
                              [](size_t e, const TextTokenizer::Word& x) { return e < x.end; });
    if (w != words.begin() && std::prev(w)->end >= b) {
      end = std::prev(w)->end;
    } else {
      end = std::max(b, char_floor(text, end));
    }
  }
  std::string out;
  out.reserve(end - start + 64);
  if (start > 0) out.append("…");
  size_t at = start;
  for (size_t i : matched) {
    const auto& w = words[i];
    if (w.begin < start || w.end > end) continue;
    escape(text.substr(at, w.begin - at), &out);
    out.append("<mark>");
    escape(text.substr(w.begin, w.end - w.begin), &out);
    out.append("</mark>");
    at = w.end;
  }
  escape(text.substr(at, end - at), &out);
  if (end < text.size()) out.append("…");
  return out;
}

}  // namespace ds
