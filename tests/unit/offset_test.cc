#include "store/offset.h"

#include <gtest/gtest.h>

namespace ds {

TEST(Offset, FormatsSixteenZeroPaddedDigits) {
  EXPECT_EQ(format_offset(0), "0000000000000000");
  EXPECT_EQ(format_offset(145), "0000000000000145");
  EXPECT_EQ(format_offset(1234567890123456), "1234567890123456");
  EXPECT_EQ(format_offset(18446744073709551615ull), "18446744073709551615");  // wider than 16
}

TEST(Offset, TokensSortLikePositions) {
  EXPECT_LT(format_offset(9), format_offset(10));
  EXPECT_LT(format_offset(99999), format_offset(100000));
}

TEST(Offset, AcceptsAnyDecimalWidth) {
  EXPECT_EQ(parse_offset("00000145"), 145u);
  EXPECT_EQ(parse_offset("0000000000000145"), 145u);
}

TEST(Offset, AcceptsReferenceServerTwoPartForm) {
  EXPECT_EQ(parse_offset("0000000000000000_0000000000000000"), 0u);
  EXPECT_EQ(parse_offset("9999999999999999_9999999999999999"), 9999999999999999u);
}

TEST(Offset, RejectsMalformedTokens) {
  for (const char* bad : {"", "-1", "now", "a", "0,1", "0 1", "1_", "_1", "1_2_3", "../x", "12a"}) {
    EXPECT_FALSE(parse_offset(bad).has_value()) << bad;
  }
}

TEST(CanonicalUint, RejectsSignsLeadingZerosAndFractions) {
  EXPECT_EQ(parse_canonical_uint("0"), 0u);
  EXPECT_EQ(parse_canonical_uint("3600"), 3600u);
  for (const char* bad : {"", "+1", "01", "1.5", "1e3", "-1", "abc"}) {
    EXPECT_FALSE(parse_canonical_uint(bad).has_value()) << bad;
  }
}

}  // namespace ds
