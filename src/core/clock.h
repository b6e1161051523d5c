// Time helpers: wall-clock milliseconds and RFC 3339 parsing/formatting (UTC).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ds {

// Milliseconds since the Unix epoch (system clock).
int64_t now_unix_millis();

// Parses an RFC 3339 timestamp ("2026-01-02T03:04:05Z", fractional seconds and numeric offsets
// allowed) into Unix milliseconds; nullopt when malformed.
std::optional<int64_t> parse_rfc3339(std::string_view s);

// "2026-01-02T03:04:05.678Z"
std::string format_rfc3339_millis(int64_t unix_millis);

}  // namespace ds
