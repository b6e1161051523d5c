#include "core/clock.h"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace ds {

int64_t now_unix_millis() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

namespace {
bool digits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}
}  // namespace

std::optional<int64_t> parse_rfc3339(std::string_view s) {
  int Y, M, D, h, m, sec;
  if (!digits(s, 0, 4, &Y) || s.size() < 20 || s[4] != '-' || !digits(s, 5, 2, &M) ||
      s[7] != '-' || !digits(s, 8, 2, &D) || (s[10] != 'T' && s[10] != 't') ||
      !digits(s, 11, 2, &h) || s[13] != ':' || !digits(s, 14, 2, &m) || s[16] != ':' ||
      !digits(s, 17, 2, &sec)) {
    return std::nullopt;
  }
  static constexpr int kDaysIn[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
  if (M < 1 || M > 12 || D < 1 || h > 23 || m > 59 || sec > 60) return std::nullopt;
  if (D > kDaysIn[M - 1] + (M == 2 && leap ? 1 : 0)) return std::nullopt;  // e.g. 02-30
  size_t p = 19;
  int64_t millis = 0;
  if (p < s.size() && s[p] == '.') {
    ++p;
    size_t start = p;
    int scale = 100;
    while (p < s.size() && s[p] >= '0' && s[p] <= '9') {
      millis += (s[p] - '0') * scale;
      scale /= 10;
      ++p;
    }
    if (p == start || p - start > 9) return std::nullopt;  // 1 to 9 digits (nanoseconds)
  }
  int64_t offset_min = 0;
  if (p < s.size() && (s[p] == 'Z' || s[p] == 'z')) {
    ++p;
  } else if (p < s.size() && (s[p] == '+' || s[p] == '-')) {
    int oh, om;
    if (!digits(s, p + 1, 2, &oh) || p + 3 >= s.size() || s[p + 3] != ':' ||
        !digits(s, p + 4, 2, &om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset_min = (oh * 60 + om) * (s[p] == '-' ? -1 : 1);
    p += 6;
  } else {
    return std::nullopt;
  }
  if (p != s.size()) return std::nullopt;
  int64_t days = days_from_civil(Y, static_cast<unsigned>(M), static_cast<unsigned>(D));
  int64_t secs = days * 86400 + h * 3600 + m * 60 + sec - offset_min * 60;
  return secs * 1000 + millis;
}

std::string format_rfc3339_millis(int64_t unix_millis) {
  if (unix_millis >= 0) {
    // The date and time up to the second change once a second: format them once per thread and
    // second (this runs for every access-log line and event).
    thread_local int64_t cached_sec = -1;
    thread_local char cached[48];
    thread_local int cached_len = 0;
    int64_t sec = unix_millis / 1000;
    if (sec != cached_sec) {
      time_t t_secs = static_cast<time_t>(sec);
      struct tm t;
      gmtime_r(&t_secs, &t);
      cached_len = std::snprintf(cached, sizeof cached, "%04d-%02d-%02dT%02d:%02d:%02d.",
                                 t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min,
                                 t.tm_sec);
      cached_sec = sec;
    }
    int ms = static_cast<int>(unix_millis % 1000);
    std::string out(cached, static_cast<size_t>(cached_len));
    out += static_cast<char>('0' + ms / 100);
    out += static_cast<char>('0' + ms / 10 % 10);
    out += static_cast<char>('0' + ms % 10);
    out += 'Z';
    return out;
  }
  time_t secs = static_cast<time_t>(unix_millis / 1000);
  struct tm t;
  gmtime_r(&secs, &t);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", t.tm_year + 1900,
                t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
                static_cast<int>(unix_millis % 1000));
  return buf;
}

}  // namespace ds
