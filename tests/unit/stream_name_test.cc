// api::canonical_stream_name: equivalent spellings of a stream path (RFC 3986 §6.2.2) name one
// stream; reserved characters stay escaped, so a%2Fb and a/b stay two streams.
#include <gtest/gtest.h>

#include <string>

#include "api/streams_api.h"

namespace ds {
namespace {

TEST(StreamNameTest, UnreservedEscapesAreDecoded) {
  EXPECT_EQ(canonical_stream_name("%41"), "A");
  EXPECT_EQ(canonical_stream_name("%65nc/a/b"), "enc/a/b");
  EXPECT_EQ(canonical_stream_name("%5F_ds/subscriptions/x"), "__ds/subscriptions/x");
  EXPECT_EQ(canonical_stream_name("a%2db%2Ec%5fd%7Ee%30"), "a-b.c_d~e0");
}

TEST(StreamNameTest, OtherEscapesKeepTheirMeaningWithUpperCaseHex) {
  EXPECT_EQ(canonical_stream_name("a%2fb"), "a%2Fb");
  EXPECT_EQ(canonical_stream_name("a%2Fb"), "a%2Fb");
  EXPECT_EQ(canonical_stream_name("x%20y%c3%a9"), "x%20y%C3%A9");
  EXPECT_EQ(canonical_stream_name("%2e%2e"), "..");  // '.' is unreserved: validation sees ".."
  EXPECT_EQ(validate_stream_name(canonical_stream_name("a/%2e%2e/b")),
            "stream path contains a '..' segment");
}

TEST(StreamNameTest, PlainAndMalformedInputIsLeftAsIs) {
  EXPECT_EQ(canonical_stream_name("plain/path-1"), "plain/path-1");
  EXPECT_EQ(canonical_stream_name("bad%zz"), "bad%zz");  // refused later by validation
  EXPECT_EQ(canonical_stream_name("end%4"), "end%4");
  EXPECT_EQ(canonical_stream_name("end%"), "end%");
  EXPECT_NE(validate_stream_name(canonical_stream_name("bad%zz")), "");
}

TEST(StreamNameTest, TheLengthLimitAppliesToTheCanonicalForm) {
  std::string encoded;
  for (int i = 0; i < 342; ++i) encoded += "%41";  // 1,026 bytes sent, 342 meant
  EXPECT_EQ(validate_stream_name(canonical_stream_name(encoded)), "");
}

}  // namespace
}  // namespace ds
