// The Durable Streams protocol at /v1/stream/{path}: PUT (create, fork), POST (append, close),
// GET (catch-up, long-poll, SSE), HEAD, DELETE. See reference/durable-streams-PROTOCOL.md.
//
// Offsets are 16-digit positions (store/offset.h); byte-mode streams store one message per append
// and reads return the concatenated bytes; JSON-mode streams store one message per flattened
// element and reads return a JSON array.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <string>

#include "api/context.h"
#include "http/responder.h"

namespace ds {

// `name` is the raw (still percent-encoded) stream path after "/v1/stream/".
boost::asio::awaitable<void> handle_stream(ApiContext& ctx, const std::string& tenant,
                                           const std::string& name, HttpRequest& req,
                                           Responder& res);

// Validates a stream name: non-empty, at most 1024 bytes, no NUL, no ".." segment (after
// percent-decoding). Returns an error message, or empty when valid.
std::string validate_stream_name(const std::string& name);

}  // namespace ds
