// route(): the single entry point from the HTTP layer — dispatches a request to the handler of
// its endpoint (health, Durable Streams, sessions, search) and applies what every response needs
// (CORS, browser security headers).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <optional>
#include <string>

#include "api/context.h"
#include "http/responder.h"

namespace ds {

boost::asio::awaitable<void> route(ApiContext& ctx, HttpRequest& req, Responder& res);

// For the HTTP layer, with a request's head before its body is read: false when route() would
// refuse it as unauthenticated (401), so its body need not be read or buffered at all. When it
// authenticates an API key, it records the tenant in head.principal for route().
bool credentials_ok(ApiContext& ctx, HttpRequest& head);

// For long-lived responses: whether the request's credentials still act for `tenant` (a key
// revoked since the request began does not).
bool still_authorized(ApiContext& ctx, const HttpRequest& req, const std::string& tenant);

// The 429 answer (with Retry-After and the common headers) when `tenant` is over --rate-limit,
// counted in the rate-limited metric; nullopt when the request may go on.
std::optional<HttpResponse> rate_limit_refusal(ApiContext& ctx, const std::string& tenant,
                                               const HttpRequest& req);

}  // namespace ds
