// Responder: how a handler answers one request — either one complete response, or a streamed one
// (SSE) written chunk by chunk. Implemented by the HTTP server for each connection.
//
// All calls must be made from the connection's executor (the handler's coroutine). write() returns
// false once the peer is gone or the server is shutting down; the handler should then return.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <functional>
#include <string_view>

#include "http/message.h"

namespace ds {

class Responder {
 public:
  virtual ~Responder() = default;
  virtual boost::asio::awaitable<void> send(HttpResponse response) = 0;
  // Sends the status line and headers of a streamed (chunked) response.
  virtual boost::asio::awaitable<bool> start_stream(HttpResponse head) = 0;
  virtual boost::asio::awaitable<bool> write(std::string_view data) = 0;
  // Ends the streamed response (the connection may be reused).
  virtual boost::asio::awaitable<void> finish() = 0;
  // Ends a streamed response abnormally: the connection is closed without the final chunk, so
  // the client sees a truncated (failed) transfer rather than a clean but incomplete one.
  virtual void abort() = 0;
  // True once the server began a graceful shutdown, or the client closed the connection while
  // watch_peer_close() was watching it; live handlers should wind down.
  virtual bool shutting_down() const = 0;
  // Calls `on_gone` (on the connection's executor) when the client closes the connection while
  // this request is being handled, so that a long-poll or SSE wait ends at once instead of
  // holding the connection (and its live-read slot) until its timeout or next write. Watching
  // stops when the handler returns, and when the client sends more data (a pipelined request:
  // it is still there). At most one watch per request; later calls are ignored.
  virtual void watch_peer_close(std::function<void()> on_gone) { (void)on_gone; }
  // The status sent (0 before anything was sent).
  virtual int status() const = 0;
};

using Handler = std::function<boost::asio::awaitable<void>(HttpRequest&, Responder&)>;

}  // namespace ds
