// The Durable Streams append headers, shared by /v1/stream and /v1/sessions/{id}/events:
// parsing Stream-Closed, Producer-Id/-Epoch/-Seq and Stream-Seq, and turning the writer-state
// outcomes of an append (stale epoch, sequence gap, Stream-Seq regression) into responses.
#pragma once

#include <optional>
#include <string>

#include "core/stream.h"
#include "http/message.h"

namespace ds {

struct AppendHeaders {
  bool close = false;  // Stream-Closed: true (case-insensitive; any other value is ignored)
  std::optional<ProducerStamp> producer;
  std::optional<std::string> stream_seq;
};

// Returns an error message (for a 400) when the headers are malformed, else "".
std::string parse_append_headers(const HttpRequest& req, AppendHeaders* out);

// The response for the producer and Stream-Seq outcomes (403 stale epoch with Producer-Epoch,
// 400 new epoch not at seq 0, 409 gap with Producer-Expected-Seq/-Received-Seq, 409 Stream-Seq
// regression), or nullopt for every other outcome, which the caller answers itself.
std::optional<HttpResponse> writer_state_rejection(const AppendResult& r,
                                                   const std::string& request_id);

// Producer-Epoch and Producer-Seq on a successful (or deduplicated) producer append.
void set_producer_headers(const AppendResult& r, HttpResponse* res);

}  // namespace ds
