// HttpRequest / HttpResponse: the plain, Beast-free view of an HTTP exchange that the api layer
// works with. Header names are stored lower-case; lookups are case-insensitive.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ds {

struct HttpRequest {
  std::string method;   // "GET", "POST", ...
  std::string target;   // raw request target: path and query, percent-encoded
  std::string path;     // raw path part of target
  std::string query;    // raw query part (without '?')
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case
  std::string body;
  std::string request_id;
  bool keep_alive = true;
  // Whom the request acts for, when ServerOptions::credentials_ok already established it from
  // the head (so that it is not worked out twice); unset otherwise.
  std::optional<std::string> principal;

  // First value of a header, or nullptr. `name` must be lower-case.
  const std::string* header(std::string_view name) const;
  size_t header_count(std::string_view name) const;
};

struct HttpResponse {
  using FixedHeader = std::pair<std::string_view, std::string_view>;

  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  // Headers whose names and values live in static storage (the same on most responses), written
  // after `headers` without being copied. Not seen by get()/set().
  std::span<const FixedHeader> fixed_headers;
  std::string body;

  HttpResponse() { headers.reserve(8); }
  explicit HttpResponse(int s) : status(s) { headers.reserve(8); }
  // Replaces any header of that name (case-insensitive).
  void set(std::string_view name, std::string value);
  void add(std::string_view name, std::string value);
  const std::string* get(std::string_view name) const;
};

}  // namespace ds
