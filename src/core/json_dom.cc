#include "core/json_dom.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace ds {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Length of the number RFC 8259 §6 reads at s[i] (0 if none starts there).
size_t number_length(std::string_view s, size_t i) {
  size_t j = i;
  if (j < s.size() && s[j] == '-') ++j;
  if (j >= s.size()) return 0;
  if (s[j] == '0') {
    ++j;
  } else if (s[j] >= '1' && s[j] <= '9') {
    while (j < s.size() && is_digit(s[j])) ++j;
  } else {
    return 0;
  }
  if (j < s.size() && s[j] == '.') {
    size_t d = ++j;
    while (j < s.size() && is_digit(s[j])) ++j;
    if (j == d) return 0;
  }
  if (j < s.size() && (s[j] == 'e' || s[j] == 'E')) {
    ++j;
    if (j < s.size() && (s[j] == '+' || s[j] == '-')) ++j;
    size_t d = j;
    while (j < s.size() && is_digit(s[j])) ++j;
    if (j == d) return 0;
  }
  return j - i;
}

// Whether simdjson can represent the (grammatical) number `n`.
bool representable(std::string_view n) {
  if (n.find_first_of(".eE") == std::string_view::npos) {
    if (n.front() == '-') {
      int64_t v;
      auto r = std::from_chars(n.data(), n.data() + n.size(), v);
      return r.ec == std::errc() && r.ptr == n.data() + n.size();
    }
    uint64_t v;
    auto r = std::from_chars(n.data(), n.data() + n.size(), v);
    return r.ec == std::errc() && r.ptr == n.data() + n.size();
  }
  std::string copy(n);
  errno = 0;
  double d = std::strtod(copy.c_str(), nullptr);
  return std::isfinite(d);
}

}  // namespace

simdjson::error_code parse_json_dom(simdjson::dom::parser& parser, std::string_view json,
                                    simdjson::dom::element* root) {
  simdjson::error_code err = parser.parse(json.data(), json.size()).get(*root);
  if (err != simdjson::NUMBER_ERROR) return err;
  // Replace each number simdjson cannot represent with 0, after checking it against the
  // grammar; anything else wrong stays wrong in the copy and is refused by the second parse.
  std::string shadow;
  shadow.reserve(json.size());
  bool replaced = false;
  for (size_t i = 0; i < json.size();) {
    char c = json[i];
    if (c == '"') {
      size_t j = i + 1;
      while (j < json.size() && json[j] != '"') j += json[j] == '\\' ? 2 : 1;
      j = std::min(j + 1, json.size());
      shadow.append(json.substr(i, j - i));
      i = j;
      continue;
    }
    if (c == '-' || is_digit(c)) {
      size_t n = number_length(json, i);
      if (n == 0) return simdjson::NUMBER_ERROR;
      size_t end = i + n;
      if (end < json.size() && (is_digit(json[end]) || json[end] == '.' || json[end] == 'e' ||
                                json[end] == 'E' || json[end] == '+' || json[end] == '-')) {
        return simdjson::NUMBER_ERROR;  // e.g. 01, 1.2.3
      }
      std::string_view number = json.substr(i, n);
      if (representable(number)) {
        shadow.append(number);
      } else {
        shadow.push_back('0');
        replaced = true;
      }
      i = end;
      continue;
    }
    shadow.push_back(c);
    ++i;
  }
  if (!replaced) return err;  // the number error is not one of those
  return parser.parse(shadow).get(*root);
}

}  // namespace ds
