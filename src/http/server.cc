// The only translation unit that includes Boost.Beast.
#include "http/server.h"

#include <boost/asio.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

namespace ds {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

namespace {

std::string make_request_id() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string id = "req_";
  uint64_t a = rng(), b = rng();
  for (int i = 0; i < 16; ++i) id += hex[(a >> (i * 4)) & 15];
  for (int i = 0; i < 8; ++i) id += hex[(b >> (i * 4)) & 15];
  return id;
}

struct Connection {
  explicit Connection(tcp::socket s) : stream(std::move(s)) {}
  beast::tcp_stream stream;
  std::atomic<bool> busy{false};
};

}  // namespace

struct HttpServer::Impl {
  ServerOptions options;
  Handler handler;
  // Declared before the io_contexts so that they outlive them: destroying an io_context destroys
  // the coroutines still suspended in it (requests past the shutdown drain), whose connection
  // guards (serve()) update these.
  std::atomic<size_t> connections{0};
  std::mutex conns_mu;
  std::set<std::shared_ptr<Connection>> conns;
  // One io_context per I/O thread (each run by exactly one thread, so a connection's handlers
  // never need a strand and never hop threads); ioc is the first, which also accepts, handles
  // signals and runs stop(). Connections are dealt out round-robin.
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  asio::io_context& ioc;
  size_t next_context = 0;
  tcp::acceptor acceptor{ioc};
  std::atomic<bool> stopping{false};
  std::function<void()> on_shutdown;
  std::vector<std::thread> threads;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> work;

  static std::vector<std::unique_ptr<asio::io_context>> make_contexts(int n) {
    std::vector<std::unique_ptr<asio::io_context>> v;
    for (int i = 0; i < std::max(1, n); ++i) v.push_back(std::make_unique<asio::io_context>(1));
    return v;
  }

  Impl(ServerOptions o, Handler h)
      : options(std::move(o)),
        handler(std::move(h)),
        contexts(make_contexts(options.threads)),
        ioc(*contexts.front()) {}

  asio::io_context& pick_context() { return *contexts[next_context++ % contexts.size()]; }
  void stop_all() {
    work.clear();
    for (auto& c : contexts) c->stop();
  }

  asio::awaitable<void> accept_loop();
  asio::awaitable<void> serve(std::shared_ptr<Connection> c);
};

namespace {

class BeastResponder final : public Responder {
 public:
  BeastResponder(HttpServer::Impl* server, beast::tcp_stream& stream, const HttpRequest& req)
      : server_(server), stream_(stream), req_(req) {}

  ~BeastResponder() override { stop_watching(); }

  bool done() const { return done_; }
  bool failed() const { return failed_; }
  bool streamed() const { return streamed_; }

  // A complete response is serialised by hand into one header block and written together with
  // the body in one gathered send; only what does not fit in the socket buffer is written
  // asynchronously (under the 30 s timeout). Same bytes as Beast's serializer would produce:
  // handler headers in order, request-id, Content-Length, Connection: close when not keeping
  // the connection.
  asio::awaitable<void> send(HttpResponse r) override {
    status_ = r.status;
    thread_local std::string head;
    head.clear();
    head += "HTTP/1.1 ";
    head += std::to_string(r.status);
    head += ' ';
    head += http::obsolete_reason(static_cast<http::status>(r.status));
    head += "\r\n";
    bool has_id = false;
    for (const auto& [k, v] : r.headers) {
      if (!has_id && beast::iequals(k, "request-id")) has_id = true;
      append_field(&head, k, v);
    }
    for (const auto& [k, v] : r.fixed_headers) append_static_field(&head, k, v);
    if (!has_id) append_field(&head, "request-id", req_.request_id);
    append_field(&head, "Content-Length", std::to_string(r.body.size()));
    if (!req_.keep_alive || server_->stopping.load()) append_field(&head, "Connection", "close");
    head += "\r\n";
    // HEAD responses describe the body they would have had.
    std::string_view body = req_.method == "HEAD" ? std::string_view() : std::string_view(r.body);
    std::array<asio::const_buffer, 2> bufs{asio::buffer(head), asio::buffer(body)};
    size_t total = head.size() + body.size();
    beast::error_code ec;
    // The socket is non-blocking (set at accept): this either writes or reports would_block.
    size_t sent = stream_.socket().write_some(bufs, ec);
    if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
      failed_ = true;
    } else if (sent < total) {
      // The rest goes out asynchronously; `head` is thread_local, so keep our own copy.
      std::string rest_head = sent < head.size() ? head.substr(sent) : std::string();
      size_t body_from = sent > head.size() ? sent - head.size() : 0;
      std::array<asio::const_buffer, 2> rest{asio::buffer(rest_head),
                                             asio::buffer(body.substr(body_from))};
      stream_.expires_after(std::chrono::seconds(30));
      auto [wec, n] = co_await asio::async_write(stream_, rest, use_nothrow);
      failed_ = static_cast<bool>(wec);
    }
    done_ = true;
  }

  asio::awaitable<bool> start_stream(HttpResponse head) override {
    status_ = head.status;
    http::response<http::empty_body> res{static_cast<http::status>(head.status), 11};
    fill(res, head);
    res.chunked(true);
    http::response_serializer<http::empty_body> sr{res};
    stream_.expires_after(std::chrono::seconds(30));
    auto [ec, n] = co_await http::async_write_header(stream_, sr, use_nothrow);
    streamed_ = true;
    if (ec) failed_ = true;
    co_return !failed_;
  }

  asio::awaitable<bool> write(std::string_view data) override {
    if (failed_) co_return false;
    if (data.empty()) co_return true;
    // One chunk as three buffers (size line, data, CRLF) handed to the kernel in one sendmsg.
    char size_line[24];
    auto [end, _] = std::to_chars(size_line, size_line + 16, data.size(), 16);
    *end++ = '\r';
    *end++ = '\n';
    std::array<asio::const_buffer, 3> chunk{asio::const_buffer(size_line, end - size_line),
                                            asio::const_buffer(data.data(), data.size()),
                                            asio::const_buffer("\r\n", 2)};
    beast::buffers_suffix<std::array<asio::const_buffer, 3>> rest(chunk);
    // Fast path: a live write nearly always fits in the socket's send buffer. Try it at once,
    // without arming the timeout or suspending (one sendmsg); only what does not fit is written
    // asynchronously under the 30 s timeout (a stuck reader is still cut off).
    // The socket is non-blocking (set at accept): this either writes or reports would_block.
    beast::error_code ec;
    size_t n = stream_.socket().write_some(rest, ec);
    if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
      failed_ = true;
      co_return false;
    }
    if (!ec) rest.consume(n);
    if (beast::buffer_bytes(rest) > 0) {
      stream_.expires_after(std::chrono::seconds(30));
      auto [wec, n] = co_await asio::async_write(stream_, rest, use_nothrow);
      if (wec) failed_ = true;
    }
    co_return !failed_ && !server_->stopping.load();
  }

  asio::awaitable<void> finish() override {
    if (!failed_) {
      stream_.expires_after(std::chrono::seconds(30));
      auto [ec, n] = co_await asio::async_write(stream_, http::make_chunk_last(), use_nothrow);
      if (ec) failed_ = true;
    }
    done_ = true;
  }

  bool shutting_down() const override {
    return server_->stopping.load() || (watch_ && watch_->gone);
  }

  void watch_peer_close(std::function<void()> on_gone) override {
    if (watch_) return;
    watch_ = std::make_shared<PeerWatch>();
    watch_->on_gone = std::move(on_gone);
    // Readiness, not a read: the request's bytes stay unconsumed if the client pipelines.
    stream_.socket().async_wait(
        tcp::socket::wait_read,
        [w = watch_, fd = stream_.socket().native_handle()](const beast::error_code& ec) {
          if (ec || !w->active) return;  // cancelled: the handler returned
          char byte;
          ssize_t n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
          if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))) {
            return;  // more data (or nothing after all): the client is still there
          }
          w->gone = true;  // EOF or a reset
          auto cb = std::move(w->on_gone);
          if (cb) cb();
        });
  }

  // Called when the handler has returned: the watch may not call back into its frame any more.
  void stop_watching() {
    if (!watch_ || !watch_->active) return;
    watch_->active = false;
    watch_->on_gone = nullptr;
    if (!watch_->gone) {
      beast::error_code ignored;
      stream_.socket().cancel(ignored);  // only the readiness wait is outstanding now
    }
  }
  int status() const override { return status_; }

  void abort() override {
    failed_ = true;
    beast::error_code ignored;
    stream_.socket().close(ignored);
  }

 private:
  // Appends "name: value\r\n"; a CR or LF in a value (never produced by the handlers; request
  // headers cannot carry them) becomes a space so that no value can inject a header.
  static void append_field(std::string* out, std::string_view name, std::string_view value) {
    size_t at = out->size() + name.size() + 2;
    append_static_field(out, name, value);
    if (std::memchr(value.data(), '\r', value.size()) == nullptr &&
        std::memchr(value.data(), '\n', value.size()) == nullptr) {
      return;
    }
    for (size_t i = at; i < at + value.size(); ++i) {
      char& c = (*out)[i];
      if (c == '\r' || c == '\n') c = ' ';
    }
  }
  // The same for a header written by the handlers' code itself (HttpResponse::fixed_headers:
  // string literals), which has no CR or LF to replace.
  static void append_static_field(std::string* out, std::string_view name, std::string_view value) {
    out->append(name);
    out->append(": ");
    out->append(value);
    out->append("\r\n");
  }

  template <typename Message>
  void fill(Message& m, const HttpResponse& r) {
    for (const auto& [k, v] : r.headers) m.insert(k, v);
    for (const auto& [k, v] : r.fixed_headers) m.insert(k, v);
    if (m.find("request-id") == m.end()) m.set("request-id", req_.request_id);
    m.keep_alive(req_.keep_alive && !server_->stopping.load());
  }

  HttpServer::Impl* server_;
  beast::tcp_stream& stream_;
  const HttpRequest& req_;
  bool done_ = false;
  bool failed_ = false;
  bool streamed_ = false;
  int status_ = 0;
  struct PeerWatch {
    bool active = true;  // false once the handler returned
    bool gone = false;   // the client closed the connection
    std::function<void()> on_gone;
  };
  std::shared_ptr<PeerWatch> watch_;  // set by watch_peer_close()
};

// Writes a minimal error for requests that never reach the handler.
asio::awaitable<void> write_early_error(beast::tcp_stream& stream, http::status status,
                                        std::string type, std::string message) {
  http::response<http::string_body> res{status, 11};
  std::string id = make_request_id();
  res.set(http::field::content_type, "application/json");
  res.set("request-id", id);
  res.set("x-content-type-options", "nosniff");
  if (status == http::status::unauthorized) {
    res.set(http::field::www_authenticate, "Bearer");
    // Browser clients with a wrong key must be able to read why (the body holds nothing else).
    res.set(http::field::access_control_allow_origin, "*");
  }
  res.keep_alive(false);
  res.body() = "{\"type\":\"error\",\"error\":{\"type\":\"" + type + "\",\"message\":\"" + message +
               "\"},\"request_id\":\"" + id + "\"}";
  res.prepare_payload();
  stream.expires_after(std::chrono::seconds(5));
  co_await http::async_write(stream, res, use_nothrow);
}

constexpr uint64_t kMaxDrainBytes = 64ull << 20;

// Reads and discards `length` body bytes (part may already be in `buffer`).
asio::awaitable<void> drain(beast::tcp_stream& stream, beast::flat_buffer& buffer, uint64_t length) {
  uint64_t have = std::min<uint64_t>(buffer.size(), length);
  buffer.consume(have);
  length -= have;
  std::vector<char> scratch(64 * 1024);
  // One deadline for the whole body: a client trickling it cannot hold the connection longer.
  stream.expires_after(std::chrono::seconds(30));
  while (length > 0) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(length, scratch.size()));
    auto [ec, n] = co_await stream.async_read_some(asio::buffer(scratch.data(), want), use_nothrow);
    if (ec) co_return;
    length -= n;
  }
}

}  // namespace

asio::awaitable<void> HttpServer::Impl::accept_loop() {
  auto last_warning = std::chrono::steady_clock::time_point{};
  for (;;) {
    auto [ec, sock] = co_await acceptor.async_accept(pick_context(), use_nothrow);
    if (ec) {
      if (stopping.load() || ec == asio::error::operation_aborted) co_return;
      // Typically EMFILE/ENFILE: back off instead of spinning, and warn at most once a second.
      auto now = std::chrono::steady_clock::now();
      if (now - last_warning >= std::chrono::seconds(1)) {
        spdlog::warn("accept failed: {} (backing off)", ec.message());
        last_warning = now;
      }
      asio::steady_timer pause(ioc, std::chrono::milliseconds(50));
      co_await pause.async_wait(use_nothrow);
      continue;
    }
    beast::error_code ignored;
    sock.set_option(tcp::no_delay(true), ignored);
    // Non-blocking for synchronous writes too: send() and write() try one write_some first and
    // fall back to an asynchronous write only when the socket buffer is full.
    sock.non_blocking(true, ignored);
    auto ex = sock.get_executor();
    auto c = std::make_shared<Connection>(std::move(sock));
    asio::co_spawn(ex, serve(std::move(c)), asio::detached);
  }
}

asio::awaitable<void> HttpServer::Impl::serve(std::shared_ptr<Connection> c) {
  size_t n = ++connections;
  struct Guard {
    Impl* self;
    std::shared_ptr<Connection> c;
    ~Guard() {
      --self->connections;
      std::lock_guard lk(self->conns_mu);
      self->conns.erase(c);
    }
  } guard{this, c};
  {
    std::lock_guard lk(conns_mu);
    conns.insert(c);
  }
  if (n > options.max_connections) {
    co_await write_early_error(c->stream, http::status::service_unavailable, "overloaded_error",
                               "too many open connections (limit --max-connections)");
    c->stream.socket().close();
    co_return;
  }
  beast::flat_buffer buffer;
  for (;;) {
    if (stopping.load()) break;
    http::request_parser<http::string_body> parser;
    parser.body_limit(boost::none);  // checked below, once the header is known
    parser.header_limit(static_cast<std::uint32_t>(options.max_header));
    c->stream.expires_after(options.idle_timeout);
    auto [hec, hbytes] = co_await http::async_read_header(c->stream, buffer, parser, use_nothrow);
    beast::error_code ec = hec;
    size_t bytes = hbytes;
    HttpRequest req;
    if (!ec) {
      const auto& head = parser.get();
      req.method = std::string(head.method_string());
      req.target = std::string(head.target());
      size_t q = req.target.find('?');
      req.path = req.target.substr(0, q);
      if (q != std::string::npos) req.query = req.target.substr(q + 1);
      req.headers.reserve(16);
      for (const auto& f : head) {
        std::string name(f.name_string());
        for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        req.headers.emplace_back(std::move(name), std::string(f.value()));
      }
      // RFC 9112 6.3: a request whose last transfer coding is not chunked has no reliable
      // length (and a front end may frame it otherwise: request smuggling) — 400 and close.
      // Every Transfer-Encoding field counts (an empty first one must not hide a second). Beast
      // itself refuses Transfer-Encoding together with Content-Length.
      if (head.count(http::field::transfer_encoding) > 0) {
        std::string codings;
        auto [first, last] = head.equal_range(http::field::transfer_encoding);
        for (auto it = first; it != last; ++it) {
          if (!codings.empty()) codings += ',';
          codings.append(it->value().data(), it->value().size());
        }
        for (auto& ch : codings) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        std::string_view final_coding(codings);
        if (size_t comma = final_coding.rfind(','); comma != std::string_view::npos) {
          final_coding.remove_prefix(comma + 1);
        }
        while (!final_coding.empty() && (final_coding.front() == ' ' || final_coding.front() == '\t')) {
          final_coding.remove_prefix(1);
        }
        while (!final_coding.empty() && (final_coding.back() == ' ' || final_coding.back() == '\t')) {
          final_coding.remove_suffix(1);
        }
        if (final_coding != "chunked") {
          co_await write_early_error(c->stream, http::status::bad_request, "invalid_request_error",
                                     "Transfer-Encoding must end with chunked");
          break;
        }
      }
      if (options.credentials_ok && !options.credentials_ok(req)) {
        // Refused before the body: none of it is buffered (a bounded one is read and discarded
        // so that the client sees the answer rather than a reset); the connection closes.
        // (Not with Expect: 100-continue: that client sends no body before a 100, RFC 9110
        // 10.1.1.)
        auto length = parser.content_length();
        if (length && *length <= kMaxDrainBytes && head[http::field::expect].empty()) {
          co_await drain(c->stream, buffer, *length);
        }
        co_await write_early_error(c->stream, http::status::unauthorized, "authentication_error",
                                   "missing or invalid API key (send Authorization: Bearer <key> "
                                   "or x-api-key: <key>)");
        break;
      }
    }
    if (!ec) {
      auto length = parser.content_length();
      if (length && *length > options.max_body) {
        // Read and discard a declared-too-large body (bounded) before answering 413, so clients
        // that are still sending see the answer instead of a connection reset.
        if (*length <= kMaxDrainBytes) co_await drain(c->stream, buffer, *length);
        co_await write_early_error(c->stream, http::status::payload_too_large,
                                   "request_too_large", "request body exceeds --max-body");
        break;
      }
      parser.body_limit(options.max_body);
      if (!parser.is_done() && length && buffer.size() >= *length) {
        // The whole body arrived with the header (the common case for small appends): parse it
        // from the buffer at once instead of starting another asynchronous read.
        size_t used = parser.put(buffer.data(), ec);
        buffer.consume(used);
        bytes += used;
      }
      if (!ec && !parser.is_done()) {
        c->stream.expires_after(options.idle_timeout);
        auto [bec, bbytes] = co_await http::async_read(c->stream, buffer, parser, use_nothrow);
        ec = bec;
        bytes += bbytes;
      }
    }
    if (ec) {
      if (ec == http::error::body_limit) {
        co_await write_early_error(c->stream, http::status::payload_too_large, "request_too_large",
                                   "request body exceeds --max-body");
      } else if (ec == http::error::header_limit) {
        co_await write_early_error(c->stream, http::status::request_header_fields_too_large,
                                   "invalid_request_error", "request headers too large");
      } else if (ec != http::error::end_of_stream && ec != beast::error::timeout &&
                 ec != asio::error::operation_aborted && ec != asio::error::eof &&
                 ec != asio::error::connection_reset && (bytes > 0 || buffer.size() > 0)) {
        // Something arrived (parsed or not: a refused request line leaves it in the buffer).
        co_await write_early_error(c->stream, http::status::bad_request, "invalid_request_error",
                                   "malformed HTTP request");
      }
      break;
    }
    c->busy = true;
    auto& msg = parser.get();
    req.body = std::move(msg.body());
    req.keep_alive = msg.keep_alive();
    req.request_id = make_request_id();

    BeastResponder responder(this, c->stream, req);
    co_await handler(req, responder);
    responder.stop_watching();  // the handler's frame is gone: no more peer-close callbacks
    if (!responder.done() && !responder.failed()) {
      if (responder.streamed()) {
        co_await responder.finish();
      } else {
        HttpResponse r(500);
        r.body = "handler produced no response";
        co_await responder.send(std::move(r));
      }
    }
    c->busy = false;
    if (responder.failed() || !req.keep_alive || stopping.load()) break;
  }
  beast::error_code ignored;
  c->stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  c->stream.socket().close(ignored);
}

HttpServer::HttpServer(ServerOptions options, Handler handler)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler))) {}

HttpServer::~HttpServer() {
  if (!impl_->threads.empty()) {
    impl_->stop_all();
    for (auto& t : impl_->threads) t.join();
  }
}

Status HttpServer::listen() {
  beast::error_code ec;
  auto addr = asio::ip::make_address(impl_->options.host, ec);
  if (ec) return Status::invalid("bad listen address " + impl_->options.host);
  tcp::endpoint ep(addr, impl_->options.port);
  impl_->acceptor.open(ep.protocol(), ec);
  if (!ec) impl_->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl_->acceptor.bind(ep, ec);
  if (!ec) impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    const std::string& h = impl_->options.host;
    std::string where = (h.find(':') != std::string::npos ? "[" + h + "]" : h) + ":" +
                        std::to_string(impl_->options.port);
    return Status::io_error("listen on " + where + ": " + ec.message());
  }
  return Status::ok();
}

uint16_t HttpServer::port() const { return impl_->acceptor.local_endpoint().port(); }
asio::io_context& HttpServer::io() { return impl_->ioc; }
void HttpServer::set_on_shutdown(std::function<void()> fn) { impl_->on_shutdown = std::move(fn); }
size_t HttpServer::open_connections() const { return impl_->connections.load(); }

void HttpServer::run() {
  asio::co_spawn(impl_->ioc, impl_->accept_loop(), asio::detached);
  // The other contexts have no work of their own until a connection arrives: keep them running
  // until stop_all().
  for (size_t i = 1; i < impl_->contexts.size(); ++i) {
    asio::io_context* c = impl_->contexts[i].get();
    impl_->work.push_back(asio::make_work_guard(*c));
    impl_->threads.emplace_back([c] { c->run(); });
  }
  impl_->ioc.run();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
}

void HttpServer::stop() {
  asio::post(impl_->ioc, [this] {
    if (impl_->stopping.exchange(true)) return;
    beast::error_code ec;
    impl_->acceptor.close(ec);
    if (impl_->on_shutdown) impl_->on_shutdown();
    // Close idle keep-alive connections; busy ones close after their response.
    std::vector<std::shared_ptr<Connection>> conns;
    {
      std::lock_guard lk(impl_->conns_mu);
      conns.assign(impl_->conns.begin(), impl_->conns.end());
    }
    for (auto& c : conns) {
      asio::post(c->stream.get_executor(), [c] {
        if (!c->busy) c->stream.cancel();
      });
    }
    // Wait (bounded) for in-flight requests, then stop the loop.
    auto timer = std::make_shared<asio::steady_timer>(impl_->ioc);
    auto deadline = std::chrono::steady_clock::now() + impl_->options.drain_timeout;
    auto poll = std::make_shared<std::function<void()>>();
    *poll = [this, timer, deadline, poll] {
      if (impl_->connections.load() == 0 || std::chrono::steady_clock::now() > deadline) {
        impl_->stop_all();
        *poll = nullptr;
        return;
      }
      timer->expires_after(std::chrono::milliseconds(20));
      timer->async_wait([poll](const beast::error_code&) {
        if (*poll) (*poll)();
      });
    };
    (*poll)();
  });
}

}  // namespace ds
