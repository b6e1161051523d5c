// HttpServer: complete responses are written exactly (status line, handler headers, request-id,
// Content-Length, Connection: close), also when the body is far bigger than the socket buffer
// and the client reads slowly; HEAD describes the body without sending it; keep-alive serves
// several requests on one connection across the I/O threads; no header value can inject a line;
// a handler watching for the client's close (watch_peer_close) hears of it, and a pipelined next
// request is not mistaken for one.
#include "http/server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace ds {
namespace {

// Body of `n` bytes that differs at every position (so a lost or repeated piece shows).
std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 997) % 26);
  return s;
}

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions o;
    o.port = 0;
    o.threads = 2;
    o.drain_timeout = std::chrono::milliseconds(300);
    server_ = std::make_unique<HttpServer>(
        o, [this](HttpRequest& req, Responder& res) -> boost::asio::awaitable<void> {
          if (req.path == "/stuck") {
            // A request that outlives the shutdown drain (like an append waiting for a bucket
            // that does not answer): parked for a minute, deaf to the client and the shutdown.
            auto ex = co_await boost::asio::this_coro::executor;
            boost::asio::steady_timer park(ex, std::chrono::seconds(60));
            stuck_.set_value();
            co_await park.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
            HttpResponse r(204);
            co_return co_await res.send(std::move(r));
          }
          if (req.path == "/watch" || req.path == "/watch-3s") {
            // Parks like a live read (20 s, or 3 s) until the client goes away.
            auto ex = co_await boost::asio::this_coro::executor;
            boost::asio::steady_timer park(ex, std::chrono::seconds(req.path == "/watch" ? 20 : 3));
            bool called = false;
            res.watch_peer_close([&] {
              called = true;
              park.cancel();
            });
            co_await park.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
            {
              std::lock_guard lk(watch_mu_);
              watch_result_.set_value({called, res.shutting_down()});
            }
            HttpResponse r(204);
            co_return co_await res.send(std::move(r));
          }
          HttpResponse r(200);
          r.set("Content-Type", "text/plain");
          if (req.path == "/big") {
            r.body = pattern(8u << 20);
          } else if (req.path == "/inject") {
            r.set("X-Value", "a\r\nX-Injected: yes");
            r.body = "ok";
          } else if (req.path == "/echo") {
            r.body = req.method + ":" + req.body;
          } else if (req.path == "/empty") {
            r = HttpResponse(204);
          } else {
            r.body = "hello " + req.path;
          }
          co_await res.send(std::move(r));
        });
    ASSERT_TRUE(server_->listen());
    thread_ = std::thread([this] { server_->run(); });
  }
  void TearDown() override {
    if (!server_) return;
    server_->stop();
    thread_.join();
  }

  std::promise<void> stuck_;

  std::mutex watch_mu_;
  std::promise<std::pair<bool, bool>> watch_result_;  // {callback ran, shutting_down()}

  int connect_client(int rcvbuf = 0) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf > 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(server_->port());
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    return fd;
  }

  static void send_all(int fd, const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      ASSERT_GT(n, 0);
      off += static_cast<size_t>(n);
    }
  }

  // Reads one response: head (up to the blank line) and a body of its Content-Length (none for
  // HEAD). Reads in small pieces so that the server meets a full socket buffer.
  static bool read_response(int fd, std::string* carry, bool head_only, std::string* head,
                            std::string* body, size_t piece = 65536) {
    std::vector<char> buf(piece);
    size_t end;
    while ((end = carry->find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
      if (n <= 0) return false;
      carry->append(buf.data(), static_cast<size_t>(n));
    }
    *head = carry->substr(0, end + 2);
    carry->erase(0, end + 4);
    size_t len = 0;
    size_t p = head->find("Content-Length: ");
    if (p != std::string::npos) len = std::stoul(head->substr(p + 16));
    if (head_only) len = 0;
    while (carry->size() < len) {
      ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
      if (n <= 0) return false;
      carry->append(buf.data(), static_cast<size_t>(n));
    }
    *body = carry->substr(0, len);
    carry->erase(0, len);
    return true;
  }

  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
};

// stop() gives up on a request still running after drain_timeout; destroying the server then
// destroys its suspended coroutine, whose connection bookkeeping must still be alive (a SIGTERM
// during an S3 outage crashed here; ASan reports the use after free).
TEST_F(HttpServerTest, ARequestOutlivingTheDrainIsAbandonedCleanly) {
  int fd = connect_client();
  send_all(fd, "GET /stuck HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_EQ(stuck_.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
  auto t0 = std::chrono::steady_clock::now();
  server_->stop();
  thread_.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  server_.reset();  // destroys the parked coroutine
  ::close(fd);
}

TEST_F(HttpServerTest, BodyBiggerThanTheSocketBufferArrivesWhole) {
  int fd = connect_client(4096);
  send_all(fd, "GET /big HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string carry, head, body;
  ASSERT_TRUE(read_response(fd, &carry, false, &head, &body, 1500));
  EXPECT_EQ(head.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << head;
  EXPECT_NE(head.find("Content-Length: 8388608\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("request-id: req_"), std::string::npos) << head;
  EXPECT_TRUE(body == pattern(8u << 20)) << "body differs (size " << body.size() << ")";
  // The connection is still usable: the pipelined second request is answered after it.
  ASSERT_TRUE(read_response(fd, &carry, false, &head, &body));
  EXPECT_EQ(body, "hello /after");
  ::close(fd);
}

TEST_F(HttpServerTest, HeadGivesTheLengthWithoutTheBody) {
  int fd = connect_client();
  send_all(fd, "HEAD /abc HTTP/1.1\r\nHost: x\r\n\r\nGET /abc HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string carry, head, body;
  ASSERT_TRUE(read_response(fd, &carry, true, &head, &body));
  EXPECT_NE(head.find("Content-Length: 10\r\n"), std::string::npos) << head;
  // Nothing of the HEAD body may precede the next response.
  ASSERT_TRUE(read_response(fd, &carry, false, &head, &body));
  EXPECT_EQ(head.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << head;
  EXPECT_EQ(body, "hello /abc");
  ::close(fd);
}

TEST_F(HttpServerTest, ConnectionCloseIsHonouredAndAnnounced) {
  int fd = connect_client();
  send_all(fd, "GET /bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::string carry, head, body;
  ASSERT_TRUE(read_response(fd, &carry, false, &head, &body));
  EXPECT_NE(head.find("Connection: close\r\n"), std::string::npos) << head;
  char c;
  EXPECT_EQ(::recv(fd, &c, 1, 0), 0) << "server kept the connection open";
  ::close(fd);
}

TEST_F(HttpServerTest, NoContentHasAnEmptyBody) {
  int fd = connect_client();
  send_all(fd, "POST /empty HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
  std::string carry, head, body;
  ASSERT_TRUE(read_response(fd, &carry, false, &head, &body));
  EXPECT_EQ(head.rfind("HTTP/1.1 204 No Content\r\n", 0), 0u) << head;
  EXPECT_EQ(body, "");
  ::close(fd);
}

TEST_F(HttpServerTest, PipelinedBodiesAreEachReadWhole) {
  // Requests whose bodies arrive with their headers, all in one segment, then one whose body
  // comes later and one with a chunked body: each handler sees exactly its own body.
  int fd = connect_client();
  send_all(fd,
           "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
           "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
           "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"
           "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nsp");
  std::string carry, head, body;
  ASSERT_TRUE(read_response(fd, &carry, false, &head, &body));
  EXPECT_EQ(body, "POST:abc");
  ASSERT_TRUE(read_response(fd, &carry, false, &head, &body));
  EXPECT_EQ(body, "POST:hello");
  ASSERT_TRUE(read_response(fd, &carry, false, &head, &body));
  EXPECT_EQ(body, "GET:");
  send_all(fd, "lit!");  // the rest of the fourth body
  ASSERT_TRUE(read_response(fd, &carry, false, &head, &body));
  EXPECT_EQ(body, "POST:split!");
  send_all(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               "3\r\nchu\r\n4\r\nnked\r\n0\r\n\r\n");
  ASSERT_TRUE(read_response(fd, &carry, false, &head, &body));
  EXPECT_EQ(body, "POST:chunked");
  ::close(fd);
}

TEST_F(HttpServerTest, HeaderValuesCannotInjectLines) {
  int fd = connect_client();
  send_all(fd, "GET /inject HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string carry, head, body;
  ASSERT_TRUE(read_response(fd, &carry, false, &head, &body));
  EXPECT_EQ(head.find("\r\nX-Injected"), std::string::npos) << head;
  EXPECT_NE(head.find("X-Value: a  X-Injected: yes\r\n"), std::string::npos) << head;
  EXPECT_EQ(body, "ok");
  ::close(fd);
}

TEST_F(HttpServerTest, ManyKeepAliveConnectionsAreAllServed) {
  // More connections than I/O threads, each with several requests: every answer matches its
  // request (connections are spread over the threads' own event loops).
  std::vector<int> fds;
  for (int i = 0; i < 8; ++i) fds.push_back(connect_client());
  for (int round = 0; round < 5; ++round) {
    for (size_t i = 0; i < fds.size(); ++i) {
      send_all(fds[i], "GET /c" + std::to_string(i) + "r" + std::to_string(round) +
                           " HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    for (size_t i = 0; i < fds.size(); ++i) {
      std::string carry, head, body;
      ASSERT_TRUE(read_response(fds[i], &carry, false, &head, &body));
      EXPECT_EQ(body, "hello /c" + std::to_string(i) + "r" + std::to_string(round));
    }
  }
  for (int fd : fds) ::close(fd);
}

TEST_F(HttpServerTest, AWatchingHandlerHearsTheClientClose) {
  auto result = watch_result_.get_future();
  int fd = connect_client();
  send_all(fd, "GET /watch HTTP/1.1\r\nHost: x\r\n\r\n");
  // The handler is parked for 20 s; only the close can end it within the 10 s below.
  ::close(fd);
  ASSERT_EQ(result.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  auto [called, gone] = result.get();
  EXPECT_TRUE(called);
  EXPECT_TRUE(gone);  // shutting_down() tells the handler to wind down
}

TEST_F(HttpServerTest, APipelinedRequestIsNotAClose) {
  auto result = watch_result_.get_future();
  int fd = connect_client();
  // The next request arrives while the first handler watches: the handler stays parked for its
  // whole 3 s (the client is still there), then both answers arrive in order.
  send_all(fd, "GET /watch-3s HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_EQ(result.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  auto [called, gone] = result.get();
  EXPECT_FALSE(called);
  EXPECT_FALSE(gone);
  std::string carry, head, body;
  ASSERT_TRUE(read_response(fd, &carry, false, &head, &body));
  EXPECT_EQ(head.rfind("HTTP/1.1 204", 0), 0u) << head;
  ASSERT_TRUE(read_response(fd, &carry, false, &head, &body));
  EXPECT_EQ(body, "hello /after");
  ::close(fd);
}

}  // namespace
}  // namespace ds
