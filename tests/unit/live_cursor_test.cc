// api/live: next_cursor() follows the Durable Streams cursor rules and never overflows.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

#include "api/live.h"

namespace ds {
namespace {

TEST(NextCursorTest, MovesPastAClientCursorAndIgnoresGarbage) {
  int64_t now = std::stoll(next_cursor(nullptr));
  std::string ahead = std::to_string(now + 5);
  EXPECT_GT(std::stoll(next_cursor(&ahead)), now + 5);
  for (std::string bad : {"", "abc", "12x", "-5"}) {
    int64_t c = std::stoll(next_cursor(&bad));
    EXPECT_TRUE(c == now || c == now + 1) << bad;  // + 1: a 20 s interval may end meanwhile
  }
}

// A client cursor near INT64_MAX is not one this server gave out: ignored, not overflowed into a
// negative (backwards) cursor.
TEST(NextCursorTest, HugeClientCursorsDoNotOverflow) {
  int64_t now = std::stoll(next_cursor(nullptr));
  for (std::string huge : {std::to_string(std::numeric_limits<int64_t>::max()),
                           std::to_string(std::numeric_limits<int64_t>::max() - 100),
                           std::string("99999999999999999999999")}) {
    int64_t c = std::stoll(next_cursor(&huge));
    EXPECT_GE(c, now) << huge;
    EXPECT_LT(c, now + 1000) << huge;
  }
}

}  // namespace
}  // namespace ds
