// The session API at /v1/sessions…: Anthropic Managed Agents wire compatibility (create,
// retrieve, update, list, archive, delete; send, list and stream events) plus the Durable
// Sessions extensions on the events endpoint (offset, live=long-poll|sse, type filters, Durable
// Streams append headers). See SPEC §3 and reference/anthropic-sessions-wire.md.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <string>

#include "api/context.h"
#include "http/responder.h"

namespace ds {

// `rest` is the path after "/v1/sessions" ("" or "/{id}…").
boost::asio::awaitable<void> handle_sessions(ApiContext& ctx, const std::string& tenant,
                                             const std::string& rest, HttpRequest& req,
                                             Responder& res);

// Client-chosen session ids match [A-Za-z0-9._:~-]{1,128}.
bool valid_session_id(std::string_view id);

}  // namespace ds
