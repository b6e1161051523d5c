// parse_json_dom: simdjson's DOM parser, for every document JSON's grammar allows.
//
// simdjson refuses numbers it cannot represent — integers below -2^63 or above 2^64 - 1,
// decimals beyond the range of a double (1e400) — with NUMBER_ERROR, although RFC 8259's grammar
// allows them, and other parsers read them (JavaScript's JSON.parse as floating point). The server
// stores JSON as its client sent it and reads only some fields back, so such a document must not
// be refused (an agent's tool result holding 30! as a number was a 400) nor skipped when read.
//
// Guarantee: returns simdjson's own result for any document simdjson accepts, and refuses every
// document simdjson refuses for any reason other than such numbers. For a document whose only
// problem is such numbers, *root is the document with each of them read as 0 (every object,
// array, key, string, literal and other number as in the text); callers that store or forward
// the text copy it from the text, never re-serialise *root. The text and *root live until the
// parser's next parse.
#pragma once

#include <simdjson.h>

#include <string_view>

namespace ds {

simdjson::error_code parse_json_dom(simdjson::dom::parser& parser, std::string_view json,
                                    simdjson::dom::element* root);

}  // namespace ds
