// fuzz_offset_query: offsets and integers (store/offset.h), query strings and percent-decoding
// (api/http_util.h), RFC 3339 timestamps (core/clock.h), each on the same arbitrary bytes.
//
// Checked beyond "no crash":
//   parse_offset:          format_offset(p) parses back to p; a 16-digit token is its own format
//   parse_canonical_uint:  the value prints back as the input and respects `max`
//   percent_decode:        output no longer than input; input without '%' ('+') is unchanged
//   QueryParams::parse:    succeeds exactly when every part percent-decodes; get() == all()[0]
//   parse_rfc3339:         format_rfc3339_millis(t) parses back to t (years 1970-9999)
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "api/http_util.h"
#include "core/clock.h"
#include "store/offset.h"

namespace {

[[noreturn]] void fail(const char* what, std::string_view input) {
  std::fprintf(stderr, "fuzz_offset_query: INVARIANT VIOLATED: %s (input %zu bytes: %.*s)\n", what,
               input.size(), static_cast<int>(std::min<size_t>(input.size(), 200)), input.data());
  abort();
}

constexpr int64_t kMaxMillis = 253402300799999;  // 9999-12-31T23:59:59.999Z

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);

  if (auto p = ds::parse_offset(in)) {
    std::string f = ds::format_offset(*p);
    if (ds::parse_offset(f) != p) fail("format_offset does not parse back", in);
    if (in.size() == ds::kOffsetWidth && in.find('_') == std::string_view::npos && f != in) {
      fail("a 16-digit token is not its own canonical form", in);
    }
  }

  uint64_t max = size > 0 ? (uint64_t{1} << (data[0] % 64)) : 9007199254740991ULL;
  for (uint64_t m : {uint64_t{9007199254740991ULL}, max}) {
    if (auto v = ds::parse_canonical_uint(in, m)) {
      if (*v > m) fail("parse_canonical_uint above max", in);
      if (std::to_string(*v) != in) fail("parse_canonical_uint accepted a non-canonical form", in);
    }
  }

  for (bool plus : {false, true}) {
    auto d = ds::percent_decode(in, plus);
    if (d) {
      if (d->size() > in.size()) fail("percent_decode grew the input", in);
      if (in.find('%') == std::string_view::npos && (!plus || in.find('+') == std::string_view::npos) &&
          *d != in) {
        fail("percent_decode changed input without escapes", in);
      }
    } else if (in.find('%') == std::string_view::npos) {
      fail("percent_decode rejected input without '%'", in);
    }
  }

  auto q = ds::QueryParams::parse(in);
  bool decodes = ds::percent_decode(in, true).has_value();
  if (decodes && !q) fail("QueryParams rejected a query that percent-decodes", in);
  if (q) {
    for (const auto& [k, v] : q->items()) {
      const std::string* first = q->get(k);
      auto all = q->all(k);
      if (!first || all.empty() || *first != all[0] || q->count(k) != all.size()) {
        fail("QueryParams get/all/count disagree", in);
      }
    }
  }

  if (auto t = ds::parse_rfc3339(in)) {
    if (*t >= 0 && *t <= kMaxMillis) {
      std::string f = ds::format_rfc3339_millis(*t);
      if (ds::parse_rfc3339(f) != t) fail("format_rfc3339_millis does not parse back", in);
    }
  }
  return 0;
}
