// The Durable Streams control APIs under the reserved first segment `__ds` of the stream root
// (protocol §6–7): subscriptions, their stream membership, pull-wake claim/ack/release, the
// webhook callback, and the webhook signing keys (JWKS).
//
//   PUT|GET|DELETE /v1/stream/__ds/subscriptions/{id}
//   POST           /v1/stream/__ds/subscriptions/{id}/streams          {"streams":[…]}
//   DELETE         /v1/stream/__ds/subscriptions/{id}/streams/{path}   (path URL-encoded)
//   POST           /v1/stream/__ds/subscriptions/{id}/claim            {"worker":…}
//   POST           /v1/stream/__ds/subscriptions/{id}/ack|release|callback   (wake token)
//   GET            /v1/stream/__ds/jwks.json
//
// Errors are {"type":"error","error":{"code":…,"message":…}} with the protocol's codes
// (FENCED, ALREADY_CLAIMED, WEBHOOK_URL_REJECTED, …).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <string>

#include "api/context.h"
#include "http/responder.h"

namespace ds {

// `name` is the canonical stream name starting with "__ds" (after API-key authentication).
boost::asio::awaitable<void> handle_reserved(ApiContext& ctx, const std::string& tenant,
                                             const std::string& name, HttpRequest& req,
                                             Responder& res);

// Requests that authenticate without an API key: the JWKS (public) and the endpoints a wake
// token authorises (ack, release, callback), whose tenant the token names. `path` is the
// request path. Returns false when the request is not one of them.
bool is_token_route(const std::string& path);
boost::asio::awaitable<void> handle_token_route(ApiContext& ctx, HttpRequest& req, Responder& res,
                                                std::string* tenant_out);

}  // namespace ds
