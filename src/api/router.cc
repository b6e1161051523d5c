#include "api/router.h"

#include <strings.h>

#include "api/http_util.h"
#include "api/sessions_api.h"
#include "api/streams_api.h"

namespace ds {

namespace asio = boost::asio;

namespace {

// The tenant a request acts for, or nullopt when it must be refused (401). With no active keys
// the server runs open and everything is tenant "default".
std::optional<std::string> authenticate(ApiContext& ctx, const HttpRequest& req) {
  if (ctx.keys == nullptr || !ctx.keys->any_active()) return std::string("default");
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

bool starts_with_segment(const std::string& p, std::string_view prefix) {
  return p.rfind(prefix, 0) == 0 && (p.size() == prefix.size() || p[prefix.size()] == '/');
}

}  // namespace

asio::awaitable<void> route(ApiContext& ctx, HttpRequest& req, Responder& res) {
  if (req.method == "OPTIONS") co_return co_await res.send(preflight_response(req));
  const std::string& p = req.path;
  if (p == "/healthz" || p == "/readyz") {
    bool ok = p == "/healthz" || ctx.ready.load();
    HttpResponse r(ok ? 200 : 503);
    r.set("Content-Type", "application/json");
    r.set("Cache-Control", "no-store");
    r.body = ok ? "{\"status\":\"ok\"}" : "{\"status\":\"starting\"}";
    add_common_headers(req, &r);
    co_return co_await res.send(std::move(r));
  }
  auto tenant = authenticate(ctx, req);
  if (!tenant) {
    HttpResponse r = error_response(401, "authentication_error",
                                    "missing or invalid API key (send Authorization: Bearer <key> "
                                    "or x-api-key: <key>)",
                                    req.request_id);
    r.set("WWW-Authenticate", "Bearer");
    add_common_headers(req, &r);
    co_return co_await res.send(std::move(r));
  }
  constexpr std::string_view kStream = "/v1/stream/";
  if (p.rfind(kStream, 0) == 0) {
    co_return co_await handle_stream(ctx, *tenant, p.substr(kStream.size()), req, res);
  }
  if (starts_with_segment(p, "/v1/sessions")) {
    co_return co_await handle_sessions(ctx, *tenant, p.substr(12), req, res);
  }
  std::string message = "no such endpoint: " + req.method + " " + p;
  if (starts_with_segment(p, "/v1/agents") || starts_with_segment(p, "/v1/environments")) {
    message = "durable-sessions is a session store: it does not manage agents or environments "
              "(keep agent definitions in your own code and run your own sandbox)";
  }
  HttpResponse r = error_response(404, "not_found_error", message, req.request_id);
  add_common_headers(req, &r);
  co_await res.send(std::move(r));
}

}  // namespace ds
