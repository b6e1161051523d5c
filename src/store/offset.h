// Offsets: a record's position in its stream as a token.
//
// Tokens are 16 zero-padded decimal digits ("0000000000000145"): fixed width, URL-safe,
// lexicographically ordered like the positions they name, and never "-1" or "now".
// parse_offset accepts any decimal token (e.g. "00000145" means position 145) and, for
// compatibility with clients written against the upstream reference server, the two-part form
// "AAAA_BBBB", whose first part is taken as the position (the only such token clients construct
// themselves is the all-zero stream start).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ds {

inline constexpr size_t kOffsetWidth = 16;

std::string format_offset(uint64_t position);

// Returns the position named by `token`, or nullopt when it is not a valid token.
// Sentinels ("-1", "now") are not tokens; callers handle them first.
std::optional<uint64_t> parse_offset(std::string_view token);

// Parses a non-negative decimal integer without sign, leading zeros (except "0"), or fraction.
// Used for TTLs, producer epochs/seqs and sub-offsets. Values above `max` are rejected.
std::optional<uint64_t> parse_canonical_uint(std::string_view s,
                                             uint64_t max = 9007199254740991ULL);

}  // namespace ds
