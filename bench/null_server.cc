// ds_null_server: the HTTP ceiling. A minimal Boost.Beast server that reads each request
// (headers and body) and answers 204 No Content, keeping the connection alive. No storage, no
// routing, no JSON: whatever a real server does costs on top of this.
//
//   ds_null_server [--listen 127.0.0.1:0] [--threads 2]
//
// Prints "listening on HOST:PORT" once accepting. Stops on SIGINT/SIGTERM.
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  explicit Session(tcp::socket s) : stream_(std::move(s)) {}
  void start() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read(); });
  }

 private:
  void read() {
    parser_.emplace();
    parser_->body_limit(64 * 1024 * 1024);
    http::async_read(stream_, buf_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec) return close();
    const auto& req = parser_->get();
    res_ = {};
    res_.result(http::status::no_content);
    res_.version(req.version());
    res_.set(http::field::server, "ds-null");
    res_.keep_alive(req.keep_alive());
    http::async_write(stream_, res_,
                      [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_write(ec); });
  }

  void on_write(beast::error_code ec) {
    if (ec || !res_.keep_alive()) return close();
    read();
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buf_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::empty_body> res_;
};

class Listener {
 public:
  Listener(asio::io_context& ioc, tcp::endpoint ep) : ioc_(ioc), acceptor_(ioc) {
    acceptor_.open(ep.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen(asio::socket_base::max_listen_connections);
  }
  tcp::endpoint local() const { return acceptor_.local_endpoint(); }
  void accept() {
    acceptor_.async_accept(asio::make_strand(ioc_), [this](beast::error_code ec, tcp::socket s) {
      if (!ec) {
        s.set_option(tcp::no_delay(true), ec);
        std::make_shared<Session>(std::move(s))->start();
      }
      if (acceptor_.is_open()) accept();
    });
  }
  void stop() {
    beast::error_code ignored;
    acceptor_.close(ignored);
  }

 private:
  asio::io_context& ioc_;
  tcp::acceptor acceptor_;
};

}  // namespace

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:0";
  int threads = 2;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "--listen" || a == "--threads") && i + 1 < argc) {
      if (a == "--listen") listen = argv[++i];
      else threads = std::atoi(argv[++i]);
    } else if (a.rfind("--listen=", 0) == 0) {
      listen = a.substr(9);
    } else if (a.rfind("--threads=", 0) == 0) {
      threads = std::atoi(a.c_str() + 10);
    } else {
      std::fprintf(stderr, "usage: ds_null_server [--listen HOST:PORT] [--threads N]\n");
      return a == "-h" || a == "--help" ? 0 : 2;
    }
  }
  if (threads < 1) threads = 1;
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) {
    std::fprintf(stderr, "ds_null_server: --listen needs HOST:PORT\n");
    return 2;
  }
  try {
    auto addr = asio::ip::make_address(listen.substr(0, colon));
    auto port = static_cast<unsigned short>(std::atoi(listen.c_str() + colon + 1));
    asio::io_context ioc(threads);
    Listener listener(ioc, tcp::endpoint(addr, port));
    listener.accept();
    asio::signal_set signals(ioc, SIGINT, SIGTERM);
    signals.async_wait([&](beast::error_code, int) {
      listener.stop();
      ioc.stop();
    });
    auto ep = listener.local();
    std::printf("listening on %s:%u\n", ep.address().to_string().c_str(), ep.port());
    std::fflush(stdout);
    std::vector<std::thread> pool;
    for (int i = 1; i < threads; ++i) pool.emplace_back([&ioc] { ioc.run(); });
    ioc.run();
    for (auto& t : pool) t.join();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ds_null_server: %s\n", e.what());
    return 1;
  }
  return 0;
}
