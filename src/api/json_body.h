// JSON-mode body handling: validates a request body as JSON and splits it into stored messages,
// flattening exactly one level of a top-level array (Durable Streams §9.1).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "store/status.h"

namespace ds {

// Appends the messages of `body` to *out, each minified (whitespace outside strings removed;
// numbers, escapes and key order exactly as sent). An empty top-level array yields no
// messages (callers decide whether that is allowed). kInvalid with the parser's message when the
// body is not valid JSON.
Status split_json_messages(std::string_view body, std::vector<std::string>* out);

}  // namespace ds
