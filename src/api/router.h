// route(): the single entry point from the HTTP layer — dispatches a request to the handler of
// its endpoint (health, Durable Streams, sessions, search) and applies what every response needs
// (CORS, browser security headers).
#pragma once

#include <boost/asio/awaitable.hpp>

#include "api/context.h"
#include "http/responder.h"

namespace ds {

boost::asio::awaitable<void> route(ApiContext& ctx, HttpRequest& req, Responder& res);

}  // namespace ds
