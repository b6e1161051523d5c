// Helpers shared by the api handlers: query-string parsing, error bodies in Anthropic's format,
// and the headers every response carries (CORS, browser security headers).
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/message.h"
#include "store/status.h"

namespace ds {

// Percent-decodes `s`; '+' becomes a space when plus_is_space. nullopt on a malformed escape.
std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space);

// RFC 3986 §6.2.2 normalisation of percent-encoding: escapes of unreserved characters (letters,
// digits, "-._~") decoded, the hex digits of every other escape upper-cased; everything else,
// malformed escapes included, as given.
std::string normalize_percent_escapes(std::string_view s);

// Whether every element of a comma-separated header value (e.g. Content-Encoding) is one of
// `allowed` (lower case; compared case-insensitively). An absent header passes.
bool header_tokens_within(const std::string* value, std::initializer_list<std::string_view> allowed);

// The decoded key/value pairs of a query string, in order (keys may repeat).
class QueryParams {
 public:
  // Fails (returns nullopt) on malformed percent-encoding.
  static std::optional<QueryParams> parse(std::string_view query);
  // First value of `key`.
  const std::string* get(std::string_view key) const;
  size_t count(std::string_view key) const;
  std::vector<std::string> all(std::string_view key) const;
  const std::vector<std::pair<std::string, std::string>>& items() const { return items_; }

 private:
  std::vector<std::pair<std::string, std::string>> items_;
};

// The event types a request asks for: each `types[]` value whole (the SDKs' array form, so a
// type may contain a comma), `type` and `types` split on commas; empty values dropped.
std::vector<std::string> requested_event_types(const QueryParams& q);

// Anthropic-format error: {"type":"error","error":{"type":..,"message":..},"request_id":..}.
HttpResponse error_response(int status, std::string_view type, std::string_view message,
                            const std::string& request_id);
// Maps a Status code to (HTTP status, error type).
std::pair<int, const char*> http_status_for(const Status& s);
HttpResponse error_response(const Status& s, const std::string& request_id);
const char* error_type_for_status(int status);

// Sets the CORS allow-list once at start-up: "*" (default: any origin), or a comma-separated
// list of origins that are echoed back when they match.
// True when `origin` is one of the origins --cors-origin lists by name (never for the default
// "*").
bool cors_origin_allowed(const std::string& origin);
void set_cors_origins(const std::string& origins);

// Adds CORS and browser security headers (X-Content-Type-Options, Cross-Origin-Resource-Policy).
void add_common_headers(const HttpRequest& req, HttpResponse* res);
// The answer to a CORS preflight (OPTIONS).
HttpResponse preflight_response(const HttpRequest& req);

// `raw_path` with every byte outside RFC 3986's path characters (pchar and '/') percent-encoded;
// '%' is kept, so escapes already there stay as they are.
std::string encode_path_chars(std::string_view raw_path);

// The absolute URL of `raw_path` (the request's path as sent) on `host` (the Host header, null
// when absent), for a Location header: bytes outside RFC 3986's path characters are
// percent-encoded, and a host with anything but letters, digits and ".-:[]" (or none) is
// replaced by "localhost", so the header holds plain ASCII whatever the request held.
std::string absolute_location(const std::string* host, std::string_view raw_path);

// Whether an If-None-Match header value matches `etag` (a strong tag, with its quotes), as
// RFC 9110 §13.1.2 says for GET: "*", or a comma-separated list with `etag` in it, compared
// weakly (W/"x" matches "x").
bool if_none_match_matches(std::string_view header, std::string_view etag);

// JSON string literal (with quotes) for `s`. Valid UTF-8 is kept; every byte that is not part of
// a valid sequence (RFC 3629) becomes \ufffd, so the result is always valid JSON in UTF-8.
std::string json_quote(std::string_view s);

// The inverse for the inside of a JSON string literal (no quotes): `escaped` as it appears
// between the quotes, decoded into *out. False if it is not a valid string body.
bool json_unquote(std::string_view escaped, std::string* out);

}  // namespace ds
