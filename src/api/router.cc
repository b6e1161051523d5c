#include "api/router.h"

#include <arpa/inet.h>
#include <strings.h>

#include <chrono>
#include <set>

#include <fmt/compile.h>
#include <fmt/format.h>

#include "core/clock.h"
#include "core/metrics.h"
#include "core/subscriptions.h"

#include "api/http_util.h"
#include "api/search_api.h"
#include "api/sessions_api.h"
#include "api/streams_api.h"
#include "api/subscriptions_api.h"

namespace ds {

namespace asio = boost::asio;

namespace {

// The tenant a request acts for, or nullopt when it must be refused (401). With no active keys
// the server runs open and everything is tenant "default" — where it may (ctx.open_allowed).
std::optional<std::string> authenticate(ApiContext& ctx, const HttpRequest& req) {
  if (ctx.keys == nullptr || !ctx.keys->any_active()) {
    if (ctx.open_allowed) return std::string("default");
    return std::nullopt;  // keys were all revoked on a server that may not run open
  }
  std::string key;
  if (const std::string* a = req.header("authorization")) {
    if (a->size() > 7 && strncasecmp(a->c_str(), "Bearer ", 7) == 0) key = a->substr(7);
  }
  if (key.empty()) {
    if (const std::string* x = req.header("x-api-key")) key = *x;
  }
  if (key.empty()) return std::nullopt;
  return ctx.keys->tenant_for(key);
}

// The tenant of a request: as the head check found it, else authenticated now.
std::optional<std::string> tenant_of(ApiContext& ctx, const HttpRequest& req) {
  if (req.principal) return req.principal;
  return authenticate(ctx, req);
}

// The name of a single-valued header that the request carries more than once, or nullptr.
const char* repeated_singleton_header(const HttpRequest& req) {
  static constexpr const char* kSingletons[] = {
      "authorization",    "x-api-key",          "content-type",        "producer-id",
      "producer-epoch",   "producer-seq",       "stream-seq",          "stream-ttl",
      "stream-expires-at", "stream-closed",     "stream-forked-from",  "stream-fork-offset",
      "stream-fork-sub-offset"};
  const auto& h = req.headers;
  for (size_t i = 0; i < h.size(); ++i) {
    for (const char* name : kSingletons) {
      if (h[i].first != name) continue;
      for (size_t j = i + 1; j < h.size(); ++j) {
        if (h[j].first == name) return name;
      }
    }
  }
  return nullptr;
}

bool starts_with_segment(const std::string& p, std::string_view prefix) {
  return p.rfind(prefix, 0) == 0 && (p.size() == prefix.size() || p[prefix.size()] == '/');
}

// A low-cardinality label for metrics.
std::string route_label(const std::string& p) {
  if (p.rfind("/v1/stream/", 0) == 0) return "stream";
  if (p == "/v1/sessions" || p == "/v1/sessions/") return "sessions";
  if (p.rfind("/v1/sessions/", 0) == 0) {
    if (p.ends_with("/events")) return "session_events";
    if (p.ends_with("/stream")) return "session_stream";
    if (p.ends_with("/archive")) return "session_archive";
    if (p.ends_with("/export")) return "session_export";
    return p.find('/', 13) == std::string::npos ? "session" : "session_other";
  }
  if (p == "/v1/search") return "search";
  if (p == "/healthz" || p == "/readyz" || p == "/metrics") return "ops";
  return "other";
}

// Requests answered without an API key (everything else needs one when keys exist), judged from
// the head: bodiless preflights and health checks, and subscription token routes whose bearer
// token verifies (or that read the public JWKS).
bool needs_no_key(ApiContext& ctx, const HttpRequest& req) {
  const std::string& p = req.path;
  const std::string* length = req.header("content-length");
  const bool bodiless = req.header("transfer-encoding") == nullptr && (!length || *length == "0");
  if (req.method == "OPTIONS" || p == "/healthz" || p == "/readyz") return bodiless;
  if (!is_token_route(p)) return false;
  if (p.ends_with("/jwks.json")) return bodiless;
  const std::string* a = req.header("authorization");
  if (ctx.subscriptions == nullptr || a == nullptr || a->size() <= 7 ||
      strncasecmp(a->c_str(), "Bearer ", 7) != 0) {
    return false;
  }
  return ctx.subscriptions->token_tenant(a->substr(7)).has_value();
}

// Lower-cased, without one trailing dot ("LocalHost." is "localhost").
std::string host_name_key(std::string_view name) {
  std::string n(name);
  for (auto& ch : n) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (!n.empty() && n.back() == '.') n.pop_back();
  return n;
}

// A dotted-decimal IPv4 literal (inet_pton: four parts, nothing else); *first is its first part.
bool ipv4_literal(const std::string& s, int* first) {
  in_addr a{};
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) return false;
  *first = static_cast<int>(reinterpret_cast<const unsigned char*>(&a.s_addr)[0]);
  return true;
}

// Names this machine answers to without DNS (a rebound attacker domain cannot be one).
bool local_name(const std::string& n) {
  return n == "localhost" || n.ends_with(".localhost") || n == "localhost.localdomain" ||
         n == "host.docker.internal";
}

bool loopback_host_name(std::string_view host) {
  if (!host.empty() && host.front() == '[') return true;  // an IPv6 literal: no rebinding
  if (size_t colon = host.rfind(':'); colon != std::string_view::npos) host = host.substr(0, colon);
  std::string n = host_name_key(host);
  if (local_name(n)) return true;
  // A name with a dot that is not an IPv4 literal could be an attacker's domain rebound to this
  // machine; IP literals and single-label names cannot.
  int first = 0;
  return n.find('.') == std::string::npos || ipv4_literal(n, &first);
}

// An Origin on this machine: http(s)://localhost, *.localhost, 127.0.0.0/8 or [::1], any port.
bool loopback_origin(std::string_view origin) {
  for (std::string_view scheme : {"http://", "https://"}) {
    if (!origin.starts_with(scheme)) continue;
    std::string_view host = origin.substr(scheme.size());
    if (host.find('/') != std::string_view::npos || host.find('@') != std::string_view::npos) {
      return false;  // an Origin is scheme://host[:port], nothing more
    }
    if (host.starts_with('[')) return host.substr(0, host.find(']') + 1) == "[::1]";
    std::string n = host_name_key(host.substr(0, host.find(':')));
    int first = 0;
    return local_name(n) || (ipv4_literal(n, &first) && first == 127);
  }
  return false;
}

// Open on loopback (no keys): a web page the developer visits can still send requests here.
// Refused: a request (not a preflight) with a cross-site Origin (not loopback, not --cors-origin)
// — simple writes need no preflight — and a Host name that could be a rebound attacker domain.
// nullopt: the request may go on.
std::optional<HttpResponse> browser_refusal(ApiContext& ctx, const HttpRequest& req) {
  if (!ctx.open_loopback_only || (ctx.keys && ctx.keys->any_active())) return std::nullopt;
  const char* why = nullptr;
  if (const std::string* h = req.header("host"); h && !loopback_host_name(*h)) {
    why = "this server runs without API keys and answers only requests addressed to it by a "
          "loopback name or address (Host)";
  } else if (req.method == "OPTIONS") {
    // A preflight only describes what would be allowed (the protocol's conformance suite asks
    // one from any origin); the request that follows it carries the Origin and is refused.
  } else if (const std::string* o = req.header("origin");
             o && *o != "null" && !loopback_origin(*o) && !cors_origin_allowed(*o)) {
    why = "this server runs without API keys and refuses cross-site browser requests; create an "
          "API key or list the origin with --cors-origin";
  } else if (const std::string* o2 = req.header("origin"); o2 && *o2 == "null") {
    why = "this server runs without API keys and refuses requests from opaque origins";
  }
  if (why == nullptr) return std::nullopt;
  HttpResponse r = error_response(403, "permission_error", why, req.request_id);
  return r;
}

bool is_live_read(const HttpRequest& req) {
  if (req.method != "GET") return false;
  if (req.path.ends_with("/stream")) return true;
  // Keys as the handlers see them (percent-decoded): `li%76e=sse` is a live read too.
  if (req.query.find('=') == std::string::npos) return false;
  auto q = QueryParams::parse(req.query);
  return q && q->count("live") > 0;
}

asio::awaitable<void> dispatch(ApiContext& ctx, HttpRequest& req, Responder& res,
                               std::string* tenant_out);

}  // namespace

bool still_authorized(ApiContext& ctx, const HttpRequest& req, const std::string& tenant) {
  std::optional<std::string> t = authenticate(ctx, req);
  return t && *t == tenant;
}

bool credentials_ok(ApiContext& ctx, HttpRequest& head) {
  if (needs_no_key(ctx, head)) return true;
  head.principal = authenticate(ctx, head);
  return head.principal.has_value();
}

std::optional<HttpResponse> rate_limit_refusal(ApiContext& ctx, const std::string& tenant,
                                               const HttpRequest& req) {
  int retry_after = 1;
  if (ctx.limits == nullptr || ctx.limits->admit(tenant, &retry_after)) return std::nullopt;
  Metrics::get().rate_limited++;
  HttpResponse r = error_response(429, "rate_limit_error",
                                  "request rate limit exceeded (--rate-limit)", req.request_id);
  r.set("Retry-After", std::to_string(retry_after));
  add_common_headers(req, &r);
  return r;
}

asio::awaitable<void> route(ApiContext& ctx, HttpRequest& req, Responder& res) {
  auto start = std::chrono::steady_clock::now();
  const size_t bytes_in = req.body.size();  // handlers may move the body out
  std::string tenant;
  co_await dispatch(ctx, req, res, &tenant);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::string label = route_label(req.path);
  // Labels come from fixed sets only: a client must not be able to invent metric series.
  static const std::set<std::string> kMethods = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"};
  const std::string method = kMethods.count(req.method) ? req.method : "OTHER";
  Metrics::get().observe_request(label, method, res.status(), secs);
  if (ctx.access_log) {
    thread_local fmt::memory_buffer line;
    line.clear();
    fmt::format_to(std::back_inserter(line), FMT_COMPILE(
        "{{\"ts\":\"{}\",\"request_id\":\"{}\",\"method\":\"{}\",\"route\":\"{}\",\"path\":{},"
        "\"status\":{},\"ms\":{:.3f},\"tenant\":{},\"bytes_in\":{}}}"),
        format_rfc3339_millis(now_unix_millis()), req.request_id, req.method, label,
        json_quote(req.path.size() > 256 ? req.path.substr(0, 256) : req.path), res.status(),
        secs * 1000, json_quote(tenant), bytes_in);
    ctx.access_log->write(std::string_view(line.data(), line.size()));
  }
}

namespace {

asio::awaitable<void> dispatch(ApiContext& ctx, HttpRequest& req, Responder& res,
                               std::string* tenant_out) {
  if (std::optional<HttpResponse> refused = browser_refusal(ctx, req)) {
    co_return co_await res.send(std::move(*refused));
  }
  if (req.method == "OPTIONS") co_return co_await res.send(preflight_response(req));
  const std::string& p = req.path;
  if (req.target.size() > ctx.options.max_url) {
    HttpResponse r = error_response(414, "invalid_request_error",
                                    "request target longer than --max-url bytes", req.request_id);
    add_common_headers(req, &r);
    co_return co_await res.send(std::move(r));
  }
  // Bodies are stored as sent, so a coded one would be stored coded: refuse codings instead
  // (RFC 9110 15.5.16 / RFC 9112 6.1). Only "identity" and chunked framing are understood.
  if (!header_tokens_within(req.header("transfer-encoding"), {"chunked", "identity"})) {
    HttpResponse r = error_response(501, "invalid_request_error",
                                    "Transfer-Encoding other than chunked is not supported",
                                    req.request_id);
    add_common_headers(req, &r);
    co_return co_await res.send(std::move(r));
  }
  if (!header_tokens_within(req.header("content-encoding"), {"identity"})) {
    HttpResponse r = error_response(415, "invalid_request_error",
                                    "Content-Encoding is not supported: send the body uncompressed",
                                    req.request_id);
    r.set("Accept-Encoding", "identity");
    add_common_headers(req, &r);
    co_return co_await res.send(std::move(r));
  }
  // A header the protocols read as one value, sent twice, is ambiguous (RFC 9110 §5.3): which
  // Producer-Seq or API key did the client mean? Refused rather than guessed.
  if (const char* dup = repeated_singleton_header(req)) {
    HttpResponse r = error_response(400, "invalid_request_error",
                                    std::string("header ") + dup + " appears more than once",
                                    req.request_id);
    add_common_headers(req, &r);
    co_return co_await res.send(std::move(r));
  }
  if (p == "/metrics" && !tenant_of(ctx, req)) {
    // Counts of every tenant's traffic: any tenant's key may read them (Prometheus sends one as
    // a bearer token), nobody without one.
    HttpResponse r = error_response(401, "authentication_error",
                                    "/metrics needs an API key (Authorization: Bearer <key>)",
                                    req.request_id);
    r.set("WWW-Authenticate", "Bearer");
    co_return co_await res.send(std::move(r));
  }
  if (p == "/metrics") {
    HttpResponse r(200);
    r.set("Content-Type", "text/plain; version=0.0.4");
    r.body = Metrics::get().render();
    co_return co_await res.send(std::move(r));
  }
  if (p == "/healthz" || p == "/readyz") {
    bool ok = p == "/healthz" || ctx.ready.load();
    HttpResponse r(ok ? 200 : 503);
    r.set("Content-Type", "application/json");
    r.set("Cache-Control", "no-store");
    r.body = ok ? "{\"status\":\"ok\"}" : "{\"status\":\"starting\"}";
    add_common_headers(req, &r);
    co_return co_await res.send(std::move(r));
  }
  // Wake tokens (not API keys) authorise subscription acks and callbacks; the JWKS is public.
  if (is_token_route(p)) co_return co_await handle_token_route(ctx, req, res, tenant_out);
  auto tenant = tenant_of(ctx, req);
  if (!tenant) {
    HttpResponse r = error_response(401, "authentication_error",
                                    "missing or invalid API key (send Authorization: Bearer <key> "
                                    "or x-api-key: <key>)",
                                    req.request_id);
    r.set("WWW-Authenticate", "Bearer");
    add_common_headers(req, &r);
    co_return co_await res.send(std::move(r));
  }
  *tenant_out = *tenant;
  if (std::optional<HttpResponse> limited = rate_limit_refusal(ctx, *tenant, req)) {
    co_return co_await res.send(std::move(*limited));
  }
  bool live = ctx.limits && is_live_read(req);
  if (live && !ctx.limits->acquire_live(*tenant)) {
    HttpResponse r = error_response(429, "rate_limit_error",
                                    "too many open live reads for this tenant (--max-live-per-tenant)",
                                    req.request_id);
    r.set("Retry-After", "1");
    add_common_headers(req, &r);
    co_return co_await res.send(std::move(r));
  }
  struct LiveSlot {
    TenantLimits* l;
    const std::string* t;
    ~LiveSlot() {
      if (l) l->release_live(*t);
    }
  } slot{live ? ctx.limits : nullptr, tenant_out};
  constexpr std::string_view kStream = "/v1/stream/";
  if (p.rfind(kStream, 0) == 0) {
    co_return co_await handle_stream(ctx, *tenant, p.substr(kStream.size()), req, res);
  }
  if (starts_with_segment(p, "/v1/sessions")) {
    co_return co_await handle_sessions(ctx, *tenant, p.substr(12), req, res);
  }
  if (p == "/v1/search") co_return co_await handle_search(ctx, *tenant, req, res);
  std::string message = "no such endpoint: " + req.method + " " + p;
  if (starts_with_segment(p, "/v1/agents") || starts_with_segment(p, "/v1/environments")) {
    message = "durable-sessions is a session store: it does not manage agents or environments "
              "(keep agent definitions in your own code and run your own sandbox)";
  }
  HttpResponse r = error_response(404, "not_found_error", message, req.request_id);
  add_common_headers(req, &r);
  co_await res.send(std::move(r));
}

}  // namespace

}  // namespace ds
