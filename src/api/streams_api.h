// The Durable Streams protocol at /v1/stream/{path}: PUT (create, fork), POST (append, close),
// GET (catch-up, long-poll, SSE), HEAD, DELETE. See reference/durable-streams-PROTOCOL.md.
//
// Offsets are 16-digit positions (store/offset.h); byte-mode streams store one message per append
// and reads return the concatenated bytes; JSON-mode streams store one message per flattened
// element and reads return a JSON array.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <string>
#include <string_view>

#include "api/context.h"
#include "http/responder.h"

namespace ds {

// `name` is the raw (still percent-encoded) stream path after "/v1/stream/"; the stream is the
// one named by its canonical form (canonical_stream_name).
boost::asio::awaitable<void> handle_stream(ApiContext& ctx, const std::string& tenant,
                                           const std::string& name, HttpRequest& req,
                                           Responder& res);

// The name a stream path is stored under (RFC 3986 §6.2.2): percent-escapes of unreserved
// characters (letters, digits, "-._~") decoded, the hex digits of every other escape upper-cased;
// all else as sent. So /v1/stream/%41 and /v1/stream/A are one stream, and a%2Fb and a/b are two.
std::string canonical_stream_name(std::string_view raw);

// Validates a stream name: non-empty, at most 1024 bytes, no NUL, no ".." segment (after
// percent-decoding). Returns an error message, or empty when valid.
std::string validate_stream_name(const std::string& name);

}  // namespace ds
