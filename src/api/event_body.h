// Session event bodies: parsing an append body into stored events.
//
// Accepted bodies: {"events":[…]}, a bare array […], or a single event object {…}. Each event
// must be a JSON object with a non-empty string `type`. The stored form is
//
//   {"id":"evt_<ULID>","offset":"<16 digits>","type":<type>, <client fields…>,
//    "created_at":"<RFC 3339 ms>","processed_at":"<same>"}
//
// where the server fields replace any the client sent and the offset digits are a placeholder the
// stream fills in with the event's position when it is written (kOffsetDigitsAt).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "store/status.h"

namespace ds {

inline constexpr size_t kOffsetDigitsAt = 49;  // index of the offset digits in a stored event
// Longest accepted event `type`, in bytes (as decoded). Types are short names
// ("agent.tool_use"); the bound keeps them usable as index filter terms (Xapian terms are at most
// 245 bytes) and in SSE `event:` lines.
inline constexpr size_t kMaxEventTypeBytes = 128;

struct ParsedEvents {
  std::vector<std::string> events;  // stored form, placeholder offsets
  std::vector<std::string> types;
};

// kInvalid with a message naming what is wrong. `max_events` bounds the batch.
Status parse_event_body(std::string_view body, size_t max_events, int64_t unix_millis,
                        ParsedEvents* out);

// Builds one stored event from already-validated parts (used for server-made events such as
// session.updated). `fields` is a JSON object body without braces (may be empty).
std::string make_stored_event(std::string_view type, std::string_view fields, int64_t unix_millis);

// Fast accessors on the stored form.
std::string_view stored_event_type(std::string_view event);          // without quotes/escapes
std::string_view stored_event_processed_at(std::string_view event);  // RFC 3339 text

}  // namespace ds
