// ULIDs: 26-character, lexicographically time-ordered unique ids (Crockford base32: 48-bit
// millisecond timestamp + 80 random bits). Ids made by one process are strictly increasing, even
// within one millisecond.
#pragma once

#include <string>

namespace ds {

std::string new_ulid();

}  // namespace ds
