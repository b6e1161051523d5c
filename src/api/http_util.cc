#include "api/http_util.h"

#include <algorithm>
#include <cstdio>

#include <simdjson.h>
#include <spdlog/spdlog.h>

#include "core/content_type.h"

namespace ds {

namespace {
int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Without the optional whitespace (spaces, tabs) around a header list element.
std::string_view trim_ows(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

constexpr const char* kExposedHeaders =
    "Stream-Next-Offset, Stream-Cursor, Stream-Up-To-Date, Stream-Closed, Stream-TTL, "
    "Stream-Expires-At, Stream-Seq, Stream-SSE-Data-Encoding, Producer-Epoch, Producer-Seq, "
    "Producer-Expected-Seq, Producer-Received-Seq, ETag, Location, Content-Type, request-id, "
    "Retry-After, x-should-retry";
constexpr const char* kAllowedHeaders =
    "Content-Type, Authorization, x-api-key, If-None-Match, Stream-Seq, Stream-TTL, "
    "Stream-Expires-At, Stream-Closed, Stream-Forked-From, Stream-Fork-Offset, "
    "Stream-Fork-Sub-Offset, Producer-Id, Producer-Epoch, Producer-Seq, anthropic-version, "
    "anthropic-beta, anthropic-workspace-id, x-stainless-lang, x-stainless-package-version, "
    "x-stainless-os, x-stainless-arch, x-stainless-runtime, x-stainless-runtime-version, "
    "x-stainless-retry-count, x-stainless-timeout, x-stainless-helper-method";
}  // namespace

std::string normalize_percent_escapes(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    int hi = 0, lo = 0;
    if (s[i] != '%' || i + 2 >= s.size() || (hi = hexval(s[i + 1])) < 0 ||
        (lo = hexval(s[i + 2])) < 0) {
      out.push_back(s[i]);
      continue;
    }
    char c = static_cast<char>(hi * 16 + lo);
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[hi]);
      out.push_back(kHex[lo]);
    }
    i += 2;
  }
  return out;
}

bool header_tokens_within(const std::string* value,
                          std::initializer_list<std::string_view> allowed) {
  if (value == nullptr) return true;
  std::string_view rest = *value;
  for (;;) {
    size_t comma = rest.find(',');
    std::string_view item = trim_ows(rest.substr(0, comma));
    if (!item.empty() && std::none_of(allowed.begin(), allowed.end(), [&](std::string_view a) {
          return iequals_ascii(item, a);
        })) {
      return false;
    }
    if (comma == std::string_view::npos) return true;
    rest.remove_prefix(comma + 1);
  }
}

std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
      if (h < 0 || l < 0) return std::nullopt;
      out.push_back(static_cast<char>(h * 16 + l));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::optional<QueryParams> QueryParams::parse(std::string_view query) {
  QueryParams q;
  size_t pos = 0;
  while (pos <= query.size() && !query.empty()) {
    size_t amp = query.find('&', pos);
    std::string_view part = query.substr(pos, amp == std::string_view::npos ? amp : amp - pos);
    if (!part.empty()) {
      size_t eq = part.find('=');
      auto k = percent_decode(part.substr(0, eq), true);
      auto v = percent_decode(eq == std::string_view::npos ? "" : part.substr(eq + 1), true);
      if (!k || !v) return std::nullopt;
      q.items_.emplace_back(std::move(*k), std::move(*v));
    }
    if (amp == std::string_view::npos) break;
    pos = amp + 1;
  }
  return q;
}

const std::string* QueryParams::get(std::string_view key) const {
  for (const auto& [k, v] : items_) {
    if (k == key) return &v;
  }
  return nullptr;
}

size_t QueryParams::count(std::string_view key) const {
  size_t n = 0;
  for (const auto& [k, v] : items_) n += k == key;
  return n;
}

std::vector<std::string> QueryParams::all(std::string_view key) const {
  std::vector<std::string> out;
  for (const auto& [k, v] : items_) {
    if (k == key) out.push_back(v);
  }
  return out;
}

namespace {
// Length of the valid UTF-8 sequence starting at s[i], or 0 if it is not one (RFC 3629: no
// overlong forms, no surrogates, nothing above U+10FFFF).
size_t utf8_sequence(std::string_view s, size_t i) {
  auto at = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = at(0);
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;  // below: overlong
    if (c == 0xED) hi = 0x9F;  // above: UTF-16 surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;  // below: overlong
    if (c == 0xF4) hi = 0x8F;  // above: past U+10FFFF
  } else {
    return 0;
  }
  if (i + n > s.size() || at(1) < lo || at(1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if ((at(k) & 0xC0) != 0x80) return 0;
  }
  return n;
}
}  // namespace

std::string encode_path_chars(std::string_view raw_path) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  // pchar (unreserved, sub-delims, ':', '@'), '/', and '%' (escapes already there stay).
  auto path_char = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("-._~!$&'()*+,;=:@/%").find(c) != std::string_view::npos;
  };
  std::string out;
  out.reserve(raw_path.size());
  for (char c : raw_path) {
    if (path_char(c)) {
      out.push_back(c);
    } else {
      unsigned char b = static_cast<unsigned char>(c);
      out.push_back('%');
      out.push_back(kHex[b >> 4]);
      out.push_back(kHex[b & 15]);
    }
  }
  return out;
}

std::string absolute_location(const std::string* host, std::string_view raw_path) {
  auto host_char = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view(".-:[]").find(c) != std::string_view::npos;
  };
  bool host_ok = host != nullptr && !host->empty() && host->size() <= 255 &&
                 std::all_of(host->begin(), host->end(), host_char);
  return "http://" + (host_ok ? *host : std::string("localhost")) + encode_path_chars(raw_path);
}

std::string json_quote(std::string_view s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      // Keep valid UTF-8; replace anything else with U+FFFD so the output is always valid JSON.
      size_t n = utf8_sequence(s, i);
      if (n == 0) {
        out += "\\ufffd";
      } else {
        out.append(s.substr(i, n));
        i += n - 1;
      }
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char b[8];
          std::snprintf(b, sizeof b, "\\u%04x", c);
          out += b;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out += "\"";
  return out;
}

bool if_none_match_matches(std::string_view header, std::string_view etag) {
  if (trim_ows(header) == "*") return true;
  size_t start = 0;
  while (start <= header.size()) {
    // Tags are quoted and hold no '"'; a ',' can only appear inside one, so split outside quotes.
    size_t end = start;
    bool quoted = false;
    while (end < header.size() && (quoted || header[end] != ',')) {
      if (header[end] == '"') quoted = !quoted;
      ++end;
    }
    std::string_view tag = trim_ows(header.substr(start, end - start));
    if (tag.starts_with("W/")) tag.remove_prefix(2);
    if (tag == etag) return true;
    start = end + 1;
  }
  return false;
}

std::vector<std::string> requested_event_types(const QueryParams& q) {
  std::vector<std::string> out;
  for (auto& v : q.all("types[]")) {
    if (!v.empty()) out.push_back(std::move(v));
  }
  for (const char* key : {"type", "types"}) {
    for (const auto& v : q.all(key)) {
      size_t start = 0;
      for (;;) {
        size_t comma = v.find(',', start);
        std::string t = v.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (!t.empty()) out.push_back(std::move(t));
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    }
  }
  return out;
}

bool json_unquote(std::string_view escaped, std::string* out) {
  thread_local simdjson::dom::parser parser;
  std::string literal;
  literal.reserve(escaped.size() + 2);
  literal.push_back('"');
  literal.append(escaped);
  literal.push_back('"');
  std::string_view v;
  if (parser.parse(simdjson::padded_string(literal)).get(v)) return false;
  out->assign(v);
  return true;
}

const char* error_type_for_status(int status) {
  switch (status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 409: return "conflict_error";
    case 410: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 503: return "overloaded_error";
    case 507: return "api_error";
    default: return status >= 500 ? "api_error" : "invalid_request_error";
  }
}

HttpResponse error_response(int status, std::string_view type, std::string_view message,
                            const std::string& request_id) {
  HttpResponse r(status);
  r.set("Content-Type", "application/json");
  r.body = "{\"type\":\"error\",\"error\":{\"type\":" + json_quote(type) +
           ",\"message\":" + json_quote(message) + "},\"request_id\":" + json_quote(request_id) +
           "}";
  return r;
}

std::pair<int, const char*> http_status_for(const Status& s) {
  using C = Status::Code;
  switch (s.code()) {
    case C::kOk: return {200, ""};
    case C::kNotFound: return {404, "not_found_error"};
    case C::kInvalid: return {400, "invalid_request_error"};
    case C::kConflict: return {409, "conflict_error"};
    case C::kGone: return {410, "not_found_error"};
    case C::kNoSpace: return {507, "api_error"};
    case C::kUnavailable: return {503, "overloaded_error"};
    case C::kTooLarge: return {413, "request_too_large"};
    case C::kForbidden: return {403, "permission_error"};
    case C::kIoError:
    case C::kCorruption: return {503, "overloaded_error"};
  }
  return {500, "api_error"};
}

HttpResponse error_response(const Status& s, const std::string& request_id) {
  auto [status, type] = http_status_for(s);
  // Storage failures: the detail (file names, errno text) goes to the server log only.
  std::string message = s.message();
  using C = Status::Code;
  if (s.code() == C::kCorruption && message.find("damaged log") != std::string::npos) {
    // StreamLog refused a log damaged before its active segment: retrying cannot help.
    spdlog::error("request {}: {}", request_id, message);
    return error_response(500, "api_error",
                          "the stream's stored data is damaged; it is kept as it is for recovery "
                          "(see the server log)",
                          request_id);
  }
  if (s.code() == C::kNoSpace || s.code() == C::kIoError || s.code() == C::kCorruption) {
    spdlog::error("request {}: storage failure: {}", request_id, s.message());
    message = s.code() == C::kNoSpace
                  ? "the server's disk is full: nothing was stored; retry later"
                  : "storage error: nothing was stored; retry later";
  }
  HttpResponse r = error_response(status, type, message, request_id);
  if (status == 503 || status == 507) r.set("Retry-After", "1");
  return r;
}

namespace {
std::vector<std::string>& cors_origins() {
  static std::vector<std::string> origins;  // empty = any origin
  return origins;
}
}  // namespace

void set_cors_origins(const std::string& origins) {
  cors_origins().clear();
  if (origins == "*" || origins.empty()) return;
  size_t start = 0;
  while (start <= origins.size()) {
    size_t comma = origins.find(',', start);
    std::string o = origins.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    while (!o.empty() && o.front() == ' ') o.erase(o.begin());
    while (!o.empty() && o.back() == ' ') o.pop_back();
    if (!o.empty()) cors_origins().push_back(o);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
}

bool cors_origin_allowed(const std::string& origin) {
  const auto& allowed = cors_origins();
  return std::find(allowed.begin(), allowed.end(), origin) != allowed.end();
}

void add_common_headers(const HttpRequest& req, HttpResponse* res) {
  const std::string* origin = req.header("origin");
  const auto& allowed = cors_origins();
  // The same few headers go on nearly every response: static, not copied per response.
  static const HttpResponse::FixedHeader kCommon[] = {
      {"Access-Control-Allow-Origin", "*"},
      {"Access-Control-Expose-Headers", kExposedHeaders},
      {"X-Content-Type-Options", "nosniff"},
      {"Cross-Origin-Resource-Policy", "cross-origin"},
  };
  if (allowed.empty()) {
    res->fixed_headers = kCommon;
    return;
  }
  if (origin && cors_origin_allowed(*origin)) {
    res->set("Access-Control-Allow-Origin", *origin);
    res->set("Vary", "Origin");
  }
  res->fixed_headers = std::span(kCommon).subspan(1);
}

HttpResponse preflight_response(const HttpRequest& req) {
  HttpResponse r(204);
  add_common_headers(req, &r);
  r.set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, HEAD, OPTIONS");
  const std::string* asked = req.header("access-control-request-headers");
  r.set("Access-Control-Allow-Headers", asked && !asked->empty() ? *asked : kAllowedHeaders);
  r.set("Access-Control-Max-Age", "86400");
  return r;
}

}  // namespace ds
