#include "store/offset.h"

#include <cstdio>

namespace ds {

std::string format_offset(uint64_t position) {
  // "%016llu" without printf (this runs several times per request).
  char buf[20];
  size_t n = 0;
  do {
    buf[sizeof buf - 1 - n++] = static_cast<char>('0' + position % 10);
    position /= 10;
  } while (position != 0);
  std::string out;
  if (n < 16) out.assign(16 - n, '0');
  out.append(buf + sizeof buf - n, n);
  return out;
}

namespace {
std::optional<uint64_t> parse_digits(std::string_view s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}
}  // namespace

std::optional<uint64_t> parse_offset(std::string_view token) {
  size_t us = token.find('_');
  if (us == std::string_view::npos) return parse_digits(token);
  auto a = parse_digits(token.substr(0, us));
  auto b = parse_digits(token.substr(us + 1));
  if (!a || !b) return std::nullopt;
  return a;
}

std::optional<uint64_t> parse_canonical_uint(std::string_view s, uint64_t max) {
  if (s.empty() || s.size() > 16) return std::nullopt;
  if (s.size() > 1 && s[0] == '0') return std::nullopt;
  auto v = parse_digits(s);
  if (!v || *v > max) return std::nullopt;
  return v;
}

}  // namespace ds
