// api/sse_writer: text messages survive an SSE parser that follows the WHATWG rules (one space
// after "data:" is dropped; data lines of an event are joined with '\n'): leading spaces included.
#include "api/sse_writer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ds {
namespace {

// The data of each `event: data` in `sse`, as an EventSource-style parser delivers it.
std::vector<std::string> parse_data_events(const std::string& sse) {
  std::vector<std::string> out;
  std::string data, event;
  bool has_data = false;
  size_t start = 0;
  while (start < sse.size()) {
    size_t nl = sse.find('\n', start);
    std::string line = sse.substr(start, nl - start);
    start = nl + 1;
    if (line.empty()) {
      if (event == "data" && has_data) out.push_back(data);
      data.clear();
      event.clear();
      has_data = false;
      continue;
    }
    size_t colon = line.find(':');
    std::string field = line.substr(0, colon);
    std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
    if (!value.empty() && value[0] == ' ') value.erase(0, 1);
    if (field == "event") event = value;
    if (field == "data") {
      if (has_data) data += '\n';
      data += value;
      has_data = true;
    }
  }
  return out;
}

TEST(SseWriter, TextLinesKeepTheirLeadingSpaces) {
  const std::vector<std::string> texts = {"  indented line\n leading space\nplain", " x", "no space",
                                          "a\n\n  b", "   "};
  for (const auto& t : texts) {
    std::string sse;
    append_sse_data(SseEncoding::kText, std::vector<std::string>{t}, &sse);
    auto got = parse_data_events(sse);
    ASSERT_EQ(got.size(), 1u) << sse;
    EXPECT_EQ(got[0], t) << sse;
  }
  // Lines without a leading space are written as before ("data:" then the line).
  std::string sse;
  append_sse_data(SseEncoding::kText, std::vector<std::string>{"plain"}, &sse);
  EXPECT_NE(sse.find("data:plain\n"), std::string::npos) << sse;
}

}  // namespace
}  // namespace ds
