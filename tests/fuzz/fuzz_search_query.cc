// fuzz_search_query: the search query parser (search/query.h) on arbitrary text.
//
// Checked beyond "no crash": queries over kMaxQueryBytes are rejected; a rejection carries a
// message; an accepted query is a non-empty Xapian query whose description can be built, and
// parsing is deterministic.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "search/query.h"

namespace {
[[noreturn]] void fail(const char* what, std::string_view in) {
  std::fprintf(stderr, "fuzz_search_query: INVARIANT VIOLATED: %s (input: %.*s)\n", what,
               static_cast<int>(std::min<size_t>(in.size(), 300)), in.data());
  abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  ds::ParsedQuery q;
  ds::Status s = ds::parse_search_query(in, &q);
  if (!s) {
    if (s.message().empty()) fail("rejection without a message", in);
    return 0;
  }
  if (in.size() > ds::kMaxQueryBytes) fail("accepted a query over kMaxQueryBytes", in);
  if (q.query.empty()) fail("accepted query is empty", in);
  std::string d1 = q.query.get_description();
  ds::ParsedQuery again;
  if (!ds::parse_search_query(in, &again) || again.query.get_description() != d1) {
    fail("parsing is not deterministic", in);
  }
  return 0;
}
