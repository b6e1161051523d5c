// core/clock: RFC 3339 formatting (cached per second) and parsing agree, across second
// boundaries and in any call order.
#include "core/clock.h"

#include <gtest/gtest.h>

namespace ds {
namespace {

TEST(ClockTest, FormatsMillisecondsInUtc) {
  EXPECT_EQ(format_rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(format_rfc3339_millis(1732800000123), "2024-11-28T13:20:00.123Z");
  EXPECT_EQ(format_rfc3339_millis(1732800000999), "2024-11-28T13:20:00.999Z");
  EXPECT_EQ(format_rfc3339_millis(1732800001000), "2024-11-28T13:20:01.000Z");
  EXPECT_EQ(format_rfc3339_millis(1732800000005), "2024-11-28T13:20:00.005Z");  // back again
  EXPECT_EQ(format_rfc3339_millis(253402300799999), "9999-12-31T23:59:59.999Z");
}

TEST(ClockTest, FormatAndParseRoundTrip) {
  for (int64_t ms = 1732800000000; ms < 1732800000000 + 5000; ms += 7) {
    auto back = parse_rfc3339(format_rfc3339_millis(ms));
    ASSERT_TRUE(back.has_value()) << ms;
    EXPECT_EQ(*back, ms);
  }
}

}  // namespace
}  // namespace ds

namespace ds {
namespace {

TEST(ClockTest, ParseRejectsDatesThatDoNotExist) {
  EXPECT_TRUE(parse_rfc3339("2024-02-29T00:00:00Z"));   // leap year
  EXPECT_TRUE(parse_rfc3339("2000-02-29T00:00:00Z"));   // divisible by 400
  EXPECT_TRUE(parse_rfc3339("2020-04-30T23:59:60Z"));   // leap second
  EXPECT_TRUE(parse_rfc3339("2020-01-01T00:00:00.123456789+23:59"));
  for (const char* bad : {"2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2020-02-30T00:00:00Z",
                          "2020-04-31T00:00:00Z", "2020-01-32T00:00:00Z", "2020-01-01T00:00:00+25:00",
                          "2020-01-01T00:00:00+01:60", "2020-01-01T00:00:00.1234567890Z"}) {
    EXPECT_FALSE(parse_rfc3339(bad)) << bad;
  }
}

}  // namespace
}  // namespace ds
