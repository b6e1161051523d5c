// Event text: what of a stored session event is searchable.
//
// The rule (also in docs/search.md):
// - The event `type` is indexed (e.g. "agent.tool_use" is found by "tool_use").
// - Every other JSON string value anywhere in the event is indexed, flattened in document order:
//   text blocks, tool names, tool inputs and outputs, error messages, metadata values, ids.
// - Not indexed: the server fields `id`, `offset`, `created_at`, `processed_at`; object keys;
//   numbers, booleans and nulls; nested `"type"` values (block kinds such as "text" or
//   "tool_result" that would otherwise match nearly every event); the `data` of any object whose
//   `type` is "base64" and any `source.data` (image and document payloads); and opaque strings —
//   a string of at least kOpaqueMinLength bytes with no whitespace in which at least 90% of the
//   bytes are base64/hex alphabet characters (encoded blobs, hashes, signatures).
// - The extracted text is capped at kMaxIndexedTextBytes (cut at a UTF-8 boundary); the rest of
//   a very large tool output is not searchable.
// Pieces are joined with newlines. Deterministic: the same event always gives the same text, so
// snippets can be recomputed from the log at query time.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace ds {

inline constexpr size_t kOpaqueMinLength = 100;
inline constexpr size_t kMaxIndexedTextBytes = 64u << 10;

// The searchable text of a stored event (empty when the event is not valid JSON). When `type` is
// given it receives the event's type (empty if none).
std::string extract_event_text(std::string_view stored_event, std::string* type = nullptr);

// True when `s` looks like an encoded blob rather than words (see the rule above).
bool is_opaque_string(std::string_view s);

}  // namespace ds
