#include "core/ulid.h"

#include <mutex>
#include <random>

#include "core/clock.h"

namespace ds {

std::string new_ulid() {
  static std::mutex mu;
  static int64_t last_ms = 0;
  static uint64_t hi = 0, lo = 0;  // 80 random bits: 16 in hi, 64 in lo
  static std::mt19937_64 rng{std::random_device{}()};
  static const char* kAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  int64_t ms;
  uint64_t h, l;
  {
    std::lock_guard lk(mu);
    ms = now_unix_millis();
    if (ms <= last_ms) {
      ms = last_ms;
      if (++lo == 0) hi = (hi + 1) & 0xFFFF;  // monotonic increment within the millisecond
    } else {
      last_ms = ms;
      hi = rng() & 0xFFFF;
      lo = rng();
    }
    h = hi;
    l = lo;
  }
  char out[26];
  uint64_t t = static_cast<uint64_t>(ms);
  for (int i = 9; i >= 0; --i) {
    out[i] = kAlphabet[t & 31];
    t >>= 5;
  }
  // 80 bits of randomness -> 16 characters.
  for (int i = 25; i >= 10; --i) {
    out[i] = kAlphabet[l & 31];
    l = (l >> 5) | ((h & 31) << 59);
    h >>= 5;
  }
  return std::string(out, 26);
}

}  // namespace ds
