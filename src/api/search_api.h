// The search endpoints (SPEC §3.7): GET /v1/search across a tenant's sessions, and the `q=` form
// of GET /v1/sessions/{id}/events. Both wait (bounded by --search-wait) until the index has
// caught up with the tails the searched sessions had when the request arrived, so an event whose
// append was acknowledged before the search is found. Malformed queries answer 400 with the
// parser's message.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <string>

#include "api/context.h"
#include "http/responder.h"

namespace ds {

// GET /v1/search?q=…[&type=…][&session_id=…][&metadata[KEY]=VALUE][&limit=…][&page=…]
boost::asio::awaitable<void> handle_search(ApiContext& ctx, const std::string& tenant,
                                           HttpRequest& req, Responder& res);

// GET /v1/sessions/{id}/events?q=…[&type=…][&limit=…][&page=…]: events ranked by score, each
// with `score` and `snippet` added.
boost::asio::awaitable<void> handle_session_search(ApiContext& ctx, const std::string& tenant,
                                                   const std::string& session_id,
                                                   HttpRequest& req, Responder& res);

}  // namespace ds
