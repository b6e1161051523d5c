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

// §10.1 within one SSE connection: every control event's cursor is at least the previous one
// and greater than the client's (each next_cursor() call adds new jitter, so calling it per event
// went backwards).
TEST(NextCursorTest, AConnectionsCursorsNeverGoBack) {
  std::string client = next_cursor(nullptr);  // a current cursor: jitter applies
  CursorSequence seq(&client);
  std::string prev = seq.next();
  EXPECT_TRUE(decimal_greater(prev, client)) << prev << " vs " << client;
  for (int i = 0; i < 1000; ++i) {
    std::string c = seq.next();
    EXPECT_FALSE(decimal_greater(prev, c)) << prev << " then " << c;
    prev = c;
  }
  std::string before = next_cursor(nullptr);
  CursorSequence fresh(nullptr);  // no client cursor: the current interval, no jitter
  EXPECT_FALSE(decimal_greater(before, fresh.next()));
  EXPECT_FALSE(decimal_greater(fresh.next(), next_cursor(nullptr)));
}

}  // namespace
}  // namespace ds
