#include "api/subscriptions_api.h"

#include <strings.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <vector>

#include "api/blocking.h"
#include "api/http_util.h"
#include "api/router.h"
#include "api/streams_api.h"
#include "core/signing_keys.h"
#include "core/subscriptions.h"
#include "store/tier.h"

namespace ds {

namespace asio = boost::asio;

namespace {

constexpr std::string_view kStreamRoot = "/v1/stream/";
constexpr size_t kMaxControlBody = 1u << 20;

std::vector<std::string> split(std::string_view s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t slash = s.find('/', start);
    out.emplace_back(s.substr(start, slash == std::string_view::npos ? std::string_view::npos
                                                                        : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return out;
}

asio::awaitable<void> send_json(const HttpRequest& req, Responder& res, int status,
                                std::string body) {
  HttpResponse r(status);
  if (status != 204) {
    r.set("Content-Type", "application/json");
    r.body = std::move(body);
  }
  r.set("Cache-Control", "no-store");
  if (status == 503) r.set("Retry-After", "1");  // the bucket lags (--durability s3)
  add_common_headers(req, &r);
  co_await res.send(std::move(r));
}

// Error bodies carry the protocol's `code` and, like every error of this server, the
// Anthropic-style `type` for the status.
asio::awaitable<void> send_error(const HttpRequest& req, Responder& res, int status,
                                 std::string_view code, std::string_view message) {
  std::string body = std::string("{\"type\":\"error\",\"error\":{\"type\":\"") +
                     error_type_for_status(status) + "\",\"code\":" + json_quote(code) +
                     ",\"message\":" + json_quote(message) + "}}";
  co_await send_json(req, res, status, std::move(body));
}

// --durability s3: a change of a subscription (create, delete, membership) is acknowledged once
// the bucket has it, like an append. The record is committed locally either way, so the 503's
// retry finds it (an identical PUT answers 200 and waits for the bucket again); without a retry
// the next mirror pass uploads it. Claims and acks are not waited for: losing one in a disaster
// only delivers its events again (at least once).
asio::awaitable<void> mirror_in_s3_mode(const ApiContext& ctx, Subscriptions::Reply* r) {
  if (ctx.tier == nullptr || r->http >= 300) co_return;
  // On the tier's mirror thread: a bucket that does not answer holds this request, not one of
  // the control pool's threads (which claims and acks of every tenant need).
  Status up = co_await await_callback<Status>([&](auto done) {
    ctx.tier->when_mirrored(Tier::kSubscriptionsMirror, std::move(done));
  });
  if (!up) {
    r->http = 503;
    r->code = "UNAVAILABLE";
    r->body = "{\"type\":\"error\",\"error\":{\"code\":\"UNAVAILABLE\",\"message\":" +
              json_quote("the change is stored locally but not yet in the S3 bucket (" +
                         up.message() + "); retry later") +
              "}}";
  }
}

asio::awaitable<void> send_reply(const HttpRequest& req, Responder& res,
                                 Subscriptions::Reply r) {
  if (r.http >= 400) {
    std::error_code ec;
    boost::json::value v = boost::json::parse(r.body, ec);
    if (!ec && v.is_object() && v.as_object().contains("error") &&
        v.as_object()["error"].is_object()) {
      v.as_object()["error"].as_object()["type"] = error_type_for_status(r.http);
      r.body = boost::json::serialize(v);
    }
  }
  co_await send_json(req, res, r.http, std::move(r.body));
}

asio::awaitable<void> method_not_allowed(const HttpRequest& req, Responder& res,
                                         const char* allow) {
  HttpResponse r = error_response(405, "invalid_request_error", "method not allowed",
                                  req.request_id);
  r.set("Allow", allow);
  add_common_headers(req, &r);
  co_await res.send(std::move(r));
}

// A stream path from a subscription body or URL: characters a path may not hold are
// percent-encoded, then the name is canonicalised as stream names are. "" (and *why) when it
// is not a valid application stream path.
std::string canonical_member_path(std::string_view raw, std::string* why) {
  std::string encoded = encode_path_chars(raw);
  std::string name = canonical_stream_name(encoded);
  if (std::string err = validate_stream_name(name); !err.empty()) {
    *why = err;
    return "";
  }
  if (name == "__ds" || name.starts_with("__ds/")) {
    *why = "paths under __ds are reserved";
    return "";
  }
  return name;
}

std::string bearer(const HttpRequest& req) {
  const std::string* a = req.header("authorization");
  if (a && a->size() > 7 && strncasecmp(a->c_str(), "Bearer ", 7) == 0) return a->substr(7);
  return "";
}

asio::awaitable<void> send_jwks(ApiContext& ctx, const HttpRequest& req, Responder& res) {
  if (req.method != "GET" && req.method != "HEAD") {
    co_return co_await method_not_allowed(req, res, "GET, HEAD, OPTIONS");
  }
  HttpResponse r(200);
  r.set("Content-Type", "application/jwk-set+json");
  r.set("Cache-Control", "public, max-age=300");
  r.body = ctx.signing_keys->jwks_json();
  add_common_headers(req, &r);
  co_await res.send(std::move(r));
}

}  // namespace

bool is_token_route(const std::string& path) {
  if (path.rfind(std::string(kStreamRoot) + "__ds/", 0) != 0) return false;
  std::vector<std::string> seg = split(std::string_view(path).substr(kStreamRoot.size()));
  if (seg.size() == 2 && seg[1] == "jwks.json") return true;
  return seg.size() == 4 && seg[1] == "subscriptions" &&
         (seg[3] == "ack" || seg[3] == "release" || seg[3] == "callback");
}

asio::awaitable<void> handle_token_route(ApiContext& ctx, HttpRequest& req, Responder& res,
                                         std::string* tenant_out) {
  if (ctx.subscriptions == nullptr) {
    co_return co_await send_error(req, res, 501, "NOT_IMPLEMENTED", "subscriptions are disabled");
  }
  std::vector<std::string> seg = split(std::string_view(req.path).substr(kStreamRoot.size()));
  if (seg.size() == 2) co_return co_await send_jwks(ctx, req, res);
  if (req.method != "POST") co_return co_await method_not_allowed(req, res, "POST, OPTIONS");
  if (req.body.size() > kMaxControlBody) {
    co_return co_await send_error(req, res, 413, "BODY_TOO_LARGE", "body larger than 1 MiB");
  }
  const std::string id = seg[2];
  const std::string token = bearer(req);
  // Checked here (an HMAC) so that requests without a valid token cost no pool thread.
  auto t = ctx.subscriptions->token_tenant(token);
  if (!t) {
    co_return co_await send_error(req, res, 401, "UNAUTHORIZED",
                                  "missing or invalid wake token (Authorization: Bearer)");
  }
  *tenant_out = *t;
  // The tenant's request rate applies to its wake tokens too.
  if (std::optional<HttpResponse> limited = rate_limit_refusal(ctx, *t, req)) {
    co_return co_await res.send(std::move(*limited));
  }
  Subscriptions::Reply r;
  co_await run_blocking(ctx.control_pool, [&] {
    if (seg[3] == "release") {
      r = ctx.subscriptions->release(token, id, req.body);
    } else {
      r = ctx.subscriptions->ack(token, id, req.body, seg[3] == "callback");
    }
  });
  co_await send_reply(req, res, std::move(r));
}

asio::awaitable<void> handle_reserved(ApiContext& ctx, const std::string& tenant,
                                      const std::string& name, HttpRequest& req,
                                      Responder& res) {
  if (ctx.subscriptions == nullptr) {
    co_return co_await send_error(req, res, 501, "NOT_IMPLEMENTED", "subscriptions are disabled");
  }
  std::vector<std::string> seg = split(name);
  if (seg.size() == 2 && seg[1] == "jwks.json") co_return co_await send_jwks(ctx, req, res);
  if (seg.size() < 3 || seg[1] != "subscriptions") {
    co_return co_await send_error(req, res, 404, "NOT_FOUND",
                                  "no such control API: paths under __ds are reserved");
  }
  const std::string id = seg[2];
  if (!valid_subscription_id(id)) {
    co_return co_await send_error(req, res, 400, "INVALID_REQUEST",
                                  "subscription id must be 1-256 characters of A-Z a-z 0-9 - _ . : ~");
  }
  if (req.body.size() > kMaxControlBody) {
    co_return co_await send_error(req, res, 413, "BODY_TOO_LARGE", "body larger than 1 MiB");
  }
  Subscriptions& subs = *ctx.subscriptions;
  const std::string& m = req.method;
  Subscriptions::Reply r;
  if (seg.size() == 3) {
    if (m == "PUT") {
      SubscriptionConfig config;
      std::string code, why;
      if (!parse_subscription_config(req.body, canonical_member_path, subs.webhook_targets(),
                                     &config, &code, &why)) {
        co_return co_await send_error(req, res, 400, code, why);
      }
      std::string base = absolute_location(req.header("host"), "");
      co_await run_blocking(ctx.control_pool, [&] { r = subs.put(tenant, id, config, base); });
      co_await mirror_in_s3_mode(ctx, &r);
    } else if (m == "GET" || m == "HEAD") {
      co_await run_blocking(ctx.control_pool, [&] { r = subs.get(tenant, id); });
      if (m == "HEAD") r.body.clear();
    } else if (m == "DELETE") {
      co_await run_blocking(ctx.control_pool, [&] { r = subs.remove(tenant, id); });
      co_await mirror_in_s3_mode(ctx, &r);
    } else {
      co_return co_await method_not_allowed(req, res, "GET, HEAD, PUT, DELETE, OPTIONS");
    }
    co_return co_await send_reply(req, res, std::move(r));
  }
  const std::string& action = seg[3];
  if (action == "streams" && seg.size() == 4) {
    if (m != "POST") co_return co_await method_not_allowed(req, res, "POST, OPTIONS");
    std::vector<std::string> paths;
    std::string why;
    if (!parse_stream_list(req.body, canonical_member_path, &paths, &why)) {
      co_return co_await send_error(req, res, 400, "INVALID_REQUEST", why);
    }
    co_await run_blocking(ctx.control_pool, [&] { r = subs.add_streams(tenant, id, paths); });
    co_await mirror_in_s3_mode(ctx, &r);
    co_return co_await send_reply(req, res, std::move(r));
  }
  if (action == "streams" && seg.size() > 4) {
    if (m != "DELETE") co_return co_await method_not_allowed(req, res, "DELETE, OPTIONS");
    std::string raw = name.substr(name.find("/streams/") + 9);
    auto decoded = percent_decode(raw, false);
    std::string why;
    std::string path = decoded ? canonical_member_path(*decoded, &why) : "";
    if (path.empty()) {
      if (!decoded) why = "malformed percent-escape in the path";  // no ?: in a co_await (GCC 12)
      co_return co_await send_error(req, res, 400, "INVALID_REQUEST", why);
    }
    co_await run_blocking(ctx.control_pool, [&] { r = subs.remove_stream(tenant, id, path); });
    co_await mirror_in_s3_mode(ctx, &r);
    co_return co_await send_reply(req, res, std::move(r));
  }
  if (seg.size() == 4 && action == "claim") {
    if (m != "POST") co_return co_await method_not_allowed(req, res, "POST, OPTIONS");
    std::string worker;
    if (!parse_worker(req.body, &worker)) {
      co_return co_await send_error(req, res, 400, "INVALID_REQUEST",
                                    "body must be {\"worker\": name} (1-256 bytes)");
    }
    co_await run_blocking(ctx.control_pool, [&] { r = subs.claim(tenant, id, worker); });
    co_return co_await send_reply(req, res, std::move(r));
  }
  if (seg.size() == 4 && (action == "ack" || action == "release" || action == "callback")) {
    // Reached with an API key (the router sends token requests straight to handle_token_route
    // when the path matches); the wake token is still what authorises them.
    std::string tenant_of_token;
    co_return co_await handle_token_route(ctx, req, res, &tenant_of_token);
  }
  const std::string message = "no such subscription API: " + action;
  co_await send_error(req, res, 404, "NOT_FOUND", message);
}

}  // namespace ds
