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

// Decimal strings without leading zeros: numeric order.
bool decimal_greater(const std::string& a, const std::string& b) {
  return a.size() != b.size() ? a.size() > b.size() : a > b;
}

// §10.1: a client cursor at or past the current interval gets a strictly greater one back, however
// large (decimal arithmetic: no overflow into a negative, backwards cursor); leading zeros do not
// change its value.
TEST(NextCursorTest, HugeClientCursorsGetAGreaterCursorWithoutOverflow) {
  for (std::string huge : {std::to_string(std::numeric_limits<int64_t>::max()),
                           std::to_string(std::numeric_limits<int64_t>::max() - 100),
                           std::string("99999999999999999999999"), std::string(64, '9')}) {
    std::string c = next_cursor(&huge);
    EXPECT_TRUE(decimal_greater(c, huge)) << huge << " -> " << c;
    EXPECT_LE(c.size(), huge.size() + 1) << huge;
    EXPECT_EQ(c.find_first_not_of("0123456789"), std::string::npos) << c;
  }
  int64_t now = std::stoll(next_cursor(nullptr));
  std::string padded = "000" + std::to_string(now + 5);
  EXPECT_GT(std::stoll(next_cursor(&padded)), now + 5);
  std::string longer(300, '9');  // any length: still strictly greater
  std::string c = next_cursor(&longer);
  EXPECT_TRUE(decimal_greater(c, longer)) << c.size();
}

}  // namespace
}  // namespace ds
