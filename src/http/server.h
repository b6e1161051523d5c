// HttpServer: HTTP/1.1 on Boost.Beast with C++20 coroutines — one coroutine per connection, a
// fixed set of I/O threads each running its own io_context (a connection lives on one thread for
// its whole life, so its handlers never need a strand), no thread per connection.
//
// Guarantees: keep-alive and chunked request bodies; request bodies over max_body answer 413 and
// headers over max_header answer 431 without reaching the handler; connections idle longer than
// idle_timeout, or slower than that to send a request, are closed; at most max_connections are
// open (extra ones get 503 and are closed). Every response carries a request-id header.
// stop() is graceful: no new connections, idle keep-alive connections close, in-flight requests
// finish (live handlers see shutting_down() and the on_shutdown hook fires) for at most
// drain_timeout, then run() returns; requests still in progress then are abandoned (their
// coroutines are destroyed with the server, never resumed).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "http/responder.h"
#include "store/status.h"

namespace boost::asio {
class io_context;
}

namespace ds {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 4437;
  size_t max_body = 8u << 20;
  size_t max_header = 16u << 10;
  int threads = 2;
  std::chrono::seconds idle_timeout{120};
  size_t max_connections = 10000;
  std::chrono::milliseconds drain_timeout{10000};  // stop(): how long in-flight requests get
  // Called with each request's head (method, target, headers; no body yet). False refuses it
  // with 401 before its body is read — a client without valid credentials cannot make the
  // server buffer bodies — and closes the connection. It may set head.principal, which the
  // handler then sees. Unset: every request is read.
  std::function<bool(HttpRequest& head)> credentials_ok;
};

class HttpServer {
 public:
  HttpServer(ServerOptions options, Handler handler);
  ~HttpServer();

  Status listen();   // binds and listens; port() is valid afterwards
  void run();        // serves on `threads` threads until stop() completes
  void stop();       // graceful shutdown; safe from any thread (and signal handlers via asio)
  uint16_t port() const;
  boost::asio::io_context& io();
  void set_on_shutdown(std::function<void()> fn);
  size_t open_connections() const;

  struct Impl;  // defined in server.cc (keeps Beast out of this header)

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace ds
