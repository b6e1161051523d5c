// ds_loadgen: closed-loop HTTP/1.1 append load generator for Durable Streams servers.
//
// N keep-alive connections, each with exactly one POST in flight (the next request is sent as soon
// as the previous response is complete). Connections are spread over a few epoll threads. After a
// warm-up, requests completing inside a fixed measurement window are counted and their latencies
// (send of the first request byte -> last response byte) recorded. Streams are created with PUT
// before the run. Prints one JSON object (stdout, or --out FILE).
//
//   ds_loadgen --port 4437 [--host 127.0.0.1] [--connections 32] [--threads 1]
//              [--duration 10] [--warmup 2] [--path '/v1/stream/bench-{run}-{conn}']
//              [--event-bytes 200] [--events 1] [--array] [--no-create]
//              [--ready-path /readyz] [--ready-timeout 30] [--server-pid PID]
//              [--label NAME] [--out FILE]
//
// Path pattern placeholders: {conn} = connection index (one stream per connection),
// {run} = a per-invocation id (so repeated runs against one server use fresh streams).
// A pattern without {conn} means every connection appends to the same ("hot") stream.
//
// Plain POSIX sockets + epoll; Linux only.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using Ns = std::chrono::nanoseconds;

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "ds_loadgen: %s\n", msg.c_str());
  std::exit(2);
}

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  int connections = 32;
  int threads = 1;
  double duration = 10;
  double warmup = 2;
  double drain_timeout = 5;
  std::string path = "/v1/stream/bench-{run}-{conn}";
  size_t event_bytes = 200;
  int events = 1;
  bool array = false;
  bool create = true;
  std::string content_type = "application/json";
  std::string ready_path;
  double ready_timeout = 0;
  int server_pid = 0;
  std::string label;
  std::string out;
};

void usage() {
  std::fputs(
      "usage: ds_loadgen --port PORT [options]\n"
      "  --host H             server address (default 127.0.0.1)\n"
      "  --connections N      keep-alive connections, one request in flight each (32)\n"
      "  --threads N          epoll threads of the load generator (1)\n"
      "  --duration S         measured seconds (10)\n"
      "  --warmup S           warm-up seconds before measuring (2)\n"
      "  --drain-timeout S    max seconds to wait for in-flight requests after the window (5)\n"
      "  --path PATTERN       request path; {conn} -> connection index, {run} -> run id\n"
      "                       (default /v1/stream/bench-{run}-{conn}; omit {conn} for one hot stream)\n"
      "  --event-bytes N      size of one JSON event object in bytes (200)\n"
      "  --events N           events per request; N>1 sends a JSON array of N objects (1)\n"
      "  --array              send a JSON array even for --events 1\n"
      "  --no-create          do not PUT the streams first\n"
      "  --content-type T     (application/json)\n"
      "  --ready-path P       before starting, poll GET P until 2xx (default: only wait for connect)\n"
      "  --ready-timeout S    how long to wait for the server to come up (0 = fail at once)\n"
      "  --server-pid PID     report that process's CPU use during the window\n"
      "  --label NAME         copied into the JSON output\n"
      "  --out FILE           write the JSON there instead of stdout\n",
      stderr);
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::string v;
    bool has_inline = false;
    if (auto eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
      v = a.substr(eq + 1);
      a = a.substr(0, eq);
      has_inline = true;
    }
    auto val = [&]() -> std::string {
      if (has_inline) return v;
      if (i + 1 >= argc) die("missing value for " + a);
      return argv[++i];
    };
    auto num = [&](const std::string& s) {
      char* end = nullptr;
      double d = std::strtod(s.c_str(), &end);
      if (end == s.c_str() || *end != '\0') die("bad number for " + a + ": " + s);
      return d;
    };
    if (a == "-h" || a == "--help") {
      usage();
      std::exit(0);
    } else if (a == "--host") o.host = val();
    else if (a == "--port") o.port = static_cast<int>(num(val()));
    else if (a == "--connections" || a == "-c") o.connections = static_cast<int>(num(val()));
    else if (a == "--threads") o.threads = static_cast<int>(num(val()));
    else if (a == "--duration" || a == "-d") o.duration = num(val());
    else if (a == "--warmup") o.warmup = num(val());
    else if (a == "--drain-timeout") o.drain_timeout = num(val());
    else if (a == "--path") o.path = val();
    else if (a == "--event-bytes") o.event_bytes = static_cast<size_t>(num(val()));
    else if (a == "--events") o.events = static_cast<int>(num(val()));
    else if (a == "--array") o.array = true;
    else if (a == "--no-create") o.create = false;
    else if (a == "--content-type") o.content_type = val();
    else if (a == "--ready-path") o.ready_path = val();
    else if (a == "--ready-timeout") o.ready_timeout = num(val());
    else if (a == "--server-pid") o.server_pid = static_cast<int>(num(val()));
    else if (a == "--label") o.label = val();
    else if (a == "--out") o.out = val();
    else {
      usage();
      die("unknown argument: " + a);
    }
  }
  if (o.port <= 0 || o.port > 65535) die("--port is required");
  if (o.connections < 1) die("--connections must be >= 1");
  if (o.threads < 1) die("--threads must be >= 1");
  if (o.threads > o.connections) o.threads = o.connections;
  if (o.events < 1) die("--events must be >= 1");
  if (o.duration <= 0) die("--duration must be > 0");
  if (o.path.empty() || o.path[0] != '/') die("--path must start with /");
  return o;
}

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  for (size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size())
    s.replace(p, from.size(), to);
  return s;
}

// ---------------------------------------------------------------------------------------------
// Sockets

sockaddr_in resolve(const std::string& host, int port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &sa.sin_addr) == 1) return sa;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0 || !res) die("cannot resolve " + host);
  sa.sin_addr = reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr;
  freeaddrinfo(res);
  return sa;
}

// Blocking connect; returns -1 (errno set) on failure.
int connect_blocking(const sockaddr_in& sa) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) {
    int e = errno;
    ::close(fd);
    errno = e;
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

void set_nonblocking(int fd) {
  int fl = ::fcntl(fd, F_GETFL, 0);
  ::fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

// ---------------------------------------------------------------------------------------------
// Incremental HTTP/1.1 response parsing (enough for Content-Length, chunked, bodiless statuses).

struct ParsedResponse {
  int status = 0;
  bool close = false;   // server asked to close (Connection: close or HTTP/1.0 without keep-alive)
  size_t consumed = 0;  // bytes of the buffer this response occupied
};

bool ieq(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

bool contains_token(std::string_view v, std::string_view tok) {
  size_t p = 0;
  while (p <= v.size()) {
    size_t c = v.find(',', p);
    if (c == std::string_view::npos) c = v.size();
    if (ieq(trim(v.substr(p, c - p)), tok)) return true;
    p = c + 1;
  }
  return false;
}

// Returns: 1 = complete response in `out`, 0 = need more bytes, -1 = malformed.
// `eof` = the peer closed; completes a response delimited by connection close.
int parse_response(std::string_view buf, bool eof, ParsedResponse& out) {
  size_t hdr_end = buf.find("\r\n\r\n");
  if (hdr_end == std::string_view::npos) return buf.size() > 65536 ? -1 : 0;
  std::string_view head = buf.substr(0, hdr_end);
  size_t line_end = head.find("\r\n");
  std::string_view status_line = head.substr(0, line_end);
  if (status_line.size() < 12 || status_line.substr(0, 5) != "HTTP/") return -1;
  bool http10 = status_line.substr(0, 8) == "HTTP/1.0";
  int status = 0;
  for (size_t i = 9; i < 12; ++i) {
    char ch = status_line[i];
    if (ch < '0' || ch > '9') return -1;
    status = status * 10 + (ch - '0');
  }
  std::optional<uint64_t> content_length;
  bool chunked = false;
  bool conn_close = http10;
  size_t p = line_end == std::string_view::npos ? head.size() : line_end + 2;
  while (p < head.size()) {
    size_t e = head.find("\r\n", p);
    if (e == std::string_view::npos) e = head.size();
    std::string_view line = head.substr(p, e - p);
    p = e + 2;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = trim(line.substr(0, colon));
    std::string_view value = trim(line.substr(colon + 1));
    if (ieq(name, "content-length")) {
      uint64_t n = 0;
      for (char ch : value) {
        if (ch < '0' || ch > '9') return -1;
        n = n * 10 + static_cast<uint64_t>(ch - '0');
      }
      content_length = n;
    } else if (ieq(name, "transfer-encoding")) {
      chunked = contains_token(value, "chunked");
    } else if (ieq(name, "connection")) {
      if (contains_token(value, "close")) conn_close = true;
      if (http10 && contains_token(value, "keep-alive")) conn_close = false;
    }
  }
  size_t body_start = hdr_end + 4;
  out.status = status;
  out.close = conn_close;
  if ((status >= 100 && status < 200) || status == 204 || status == 304) {
    out.consumed = body_start;
    return 1;
  }
  if (chunked) {
    size_t q = body_start;
    for (;;) {
      size_t le = buf.find("\r\n", q);
      if (le == std::string_view::npos) return 0;
      uint64_t n = 0;
      size_t digits = 0;
      for (size_t i = q; i < le; ++i) {
        char ch = buf[i];
        int d;
        if (ch >= '0' && ch <= '9') d = ch - '0';
        else if (ch >= 'a' && ch <= 'f') d = ch - 'a' + 10;
        else if (ch >= 'A' && ch <= 'F') d = ch - 'A' + 10;
        else break;  // chunk extension
        n = n * 16 + static_cast<uint64_t>(d);
        ++digits;
      }
      if (digits == 0) return -1;
      q = le + 2;
      if (n == 0) {
        // trailers until an empty line
        for (;;) {
          size_t te = buf.find("\r\n", q);
          if (te == std::string_view::npos) return 0;
          bool empty = te == q;
          q = te + 2;
          if (empty) break;
        }
        out.consumed = q;
        return 1;
      }
      if (buf.size() < q + n + 2) return 0;
      q += n + 2;
    }
  }
  if (content_length) {
    if (buf.size() < body_start + *content_length) return 0;
    out.consumed = body_start + *content_length;
    return 1;
  }
  // No framing: the body runs until the connection closes.
  out.close = true;
  if (!eof) return 0;
  out.consumed = buf.size();
  return 1;
}

// Blocking one-shot request on a fresh connection. Returns the status or -1 (and `err`).
int simple_request(const sockaddr_in& sa, const std::string& method, const std::string& target,
                   const std::string& host_hdr, const std::string& content_type,
                   const std::string& body, std::string& err) {
  int fd = connect_blocking(sa);
  if (fd < 0) {
    err = std::string("connect: ") + std::strerror(errno);
    return -1;
  }
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: " + host_hdr + "\r\n";
  if (!content_type.empty()) req += "Content-Type: " + content_type + "\r\n";
  if (!body.empty() || method == "PUT" || method == "POST")
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  req += "Connection: close\r\n\r\n" + body;
  size_t off = 0;
  while (off < req.size()) {
    ssize_t w = ::send(fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
    if (w <= 0) {
      err = std::string("send: ") + std::strerror(errno);
      ::close(fd);
      return -1;
    }
    off += static_cast<size_t>(w);
  }
  std::string in;
  char tmp[16384];
  for (;;) {
    ssize_t r = ::recv(fd, tmp, sizeof tmp, 0);
    if (r > 0) in.append(tmp, static_cast<size_t>(r));
    ParsedResponse pr;
    int rc = parse_response(in, r == 0, pr);
    if (rc == 1) {
      ::close(fd);
      return pr.status;
    }
    if (rc < 0 || r <= 0) {
      err = rc < 0 ? "malformed response" : (r == 0 ? "connection closed" : std::strerror(errno));
      ::close(fd);
      return -1;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Request bodies

const char kPad[] = "abcdefghijklmnopqrstuvwxyz0123456789";

// One event object of exactly `bytes` bytes (unless `bytes` is smaller than the fixed fields).
void append_event(std::string& out, size_t bytes, int conn, uint64_t seq, int idx) {
  char head[160];
  auto now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  int n = std::snprintf(head, sizeof head,
                        "{\"type\":\"bench.append\",\"conn\":%d,\"seq\":%" PRIu64
                        ",\"idx\":%d,\"ts_us\":%lld,\"pad\":\"",
                        conn, seq, idx, static_cast<long long>(now_us));
  out.append(head, static_cast<size_t>(n));
  size_t fixed = static_cast<size_t>(n) + 2;  // + closing `"}`
  size_t pad = bytes > fixed ? bytes - fixed : 0;
  for (size_t i = 0; i < pad; ++i) out.push_back(kPad[i % (sizeof kPad - 1)]);
  out.append("\"}");
}

void build_body(std::string& out, const Options& o, int conn, uint64_t seq) {
  out.clear();
  bool arr = o.array || o.events > 1;
  if (arr) out.push_back('[');
  for (int i = 0; i < o.events; ++i) {
    if (i) out.push_back(',');
    append_event(out, o.event_bytes, conn, seq, i);
  }
  if (arr) out.push_back(']');
}

// ---------------------------------------------------------------------------------------------
// Per-thread event loop

struct Conn {
  int index = 0;
  int fd = -1;
  std::string target;
  std::string req;
  size_t req_off = 0;
  std::string in;
  bool in_flight = false;
  bool want_out = false;
  Clock::time_point sent_at;
  Clock::time_point retry_at;
  uint64_t seq = 0;
  std::string body_scratch;
};

struct Stats {
  uint64_t completed_window = 0;       // 2xx responses completed inside the window
  uint64_t completed_total = 0;        // all responses, any status, whole run
  uint64_t ok_total = 0;               // 2xx, whole run
  uint64_t non2xx = 0;                 // responses with a status outside 2xx, whole run
  uint64_t non2xx_window = 0;
  uint64_t io_errors = 0;              // resets / EOF / malformed with a request in flight
  uint64_t connect_errors = 0;
  uint64_t timeouts = 0;               // still in flight when the drain timeout expired
  uint64_t reconnects = 0;
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  std::map<int, uint64_t> status_counts;
  std::vector<uint32_t> lat_us;        // latencies of 2xx requests completed in the window
  std::vector<std::string> error_samples;  // distinct messages, at most 10
};

struct Shared {
  const Options* opt;
  sockaddr_in addr;
  std::string host_hdr;
  Clock::time_point t_start, t_window, t_end, t_drain;
};

class Worker {
 public:
  Worker(const Shared& sh, std::vector<std::unique_ptr<Conn>> conns)
      : sh_(sh), conns_(std::move(conns)) {}

  void run() {
    ep_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) die("epoll_create1 failed");
    for (auto& c : conns_) {
      register_conn(*c);
      send_next(*c);
    }
    epoll_event evs[128];
    for (;;) {
      auto now = Clock::now();
      if (now >= sh_.t_end) {
        bool any = false;
        for (auto& c : conns_) any |= c->in_flight;
        if (!any) break;
        if (now >= sh_.t_drain) {
          for (auto& c : conns_)
            if (c->in_flight) ++st_.timeouts;
          break;
        }
      } else {
        for (auto& c : conns_)
          if (c->fd < 0 && now >= c->retry_at) reconnect(*c);
      }
      int n = ::epoll_wait(ep_, evs, 128, 5);
      if (n < 0) {
        if (errno == EINTR) continue;
        die("epoll_wait failed");
      }
      for (int i = 0; i < n; ++i) {
        Conn& c = *static_cast<Conn*>(evs[i].data.ptr);
        if (c.fd < 0) continue;
        if (evs[i].events & EPOLLOUT) on_writable(c);
        if (c.fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) on_readable(c);
      }
    }
    for (auto& c : conns_)
      if (c->fd >= 0) ::close(c->fd);
    ::close(ep_);
  }

  Stats& stats() { return st_; }

 private:
  void note_error(const std::string& what) {
    if (st_.error_samples.size() < 10 &&
        std::find(st_.error_samples.begin(), st_.error_samples.end(), what) == st_.error_samples.end())
      st_.error_samples.push_back(what);
  }

  void register_conn(Conn& c) {
    set_nonblocking(c.fd);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.ptr = &c;
    if (::epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev) != 0) die("epoll_ctl add failed");
    c.want_out = false;
  }

  void set_want_out(Conn& c, bool want) {
    if (c.want_out == want) return;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | (want ? EPOLLOUT : 0u);
    ev.data.ptr = &c;
    ::epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
    c.want_out = want;
  }

  void close_conn(Conn& c, bool error, const char* why) {
    if (c.in_flight && error) {
      ++st_.io_errors;
      note_error(std::string("conn ") + std::to_string(c.index) + ": " + why);
    }
    c.in_flight = false;
    if (c.fd >= 0) {
      ::epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
      ::close(c.fd);
    }
    c.fd = -1;
    c.in.clear();
    c.retry_at = Clock::now() + (error ? std::chrono::milliseconds(50) : std::chrono::milliseconds(0));
  }

  void reconnect(Conn& c) {
    c.fd = connect_blocking(sh_.addr);
    if (c.fd < 0) {
      ++st_.connect_errors;
      note_error(std::string("connect: ") + std::strerror(errno));
      c.retry_at = Clock::now() + std::chrono::milliseconds(100);
      return;
    }
    ++st_.reconnects;
    register_conn(c);
    send_next(c);
  }

  void send_next(Conn& c) {
    if (Clock::now() >= sh_.t_end) return;
    build_body(c.body_scratch, *sh_.opt, c.index, c.seq++);
    c.req.clear();
    c.req.append("POST ").append(c.target).append(" HTTP/1.1\r\nHost: ").append(sh_.host_hdr);
    c.req.append("\r\nContent-Type: ").append(sh_.opt->content_type);
    c.req.append("\r\nContent-Length: ").append(std::to_string(c.body_scratch.size()));
    c.req.append("\r\n\r\n").append(c.body_scratch);
    c.req_off = 0;
    c.in_flight = true;
    c.sent_at = Clock::now();
    on_writable(c);
  }

  void on_writable(Conn& c) {
    while (c.req_off < c.req.size()) {
      ssize_t w = ::send(c.fd, c.req.data() + c.req_off, c.req.size() - c.req_off, MSG_NOSIGNAL);
      if (w > 0) {
        c.req_off += static_cast<size_t>(w);
        st_.bytes_sent += static_cast<uint64_t>(w);
        continue;
      }
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        set_want_out(c, true);
        return;
      }
      if (w < 0 && errno == EINTR) continue;
      close_conn(c, true, w < 0 ? std::strerror(errno) : "send returned 0");
      return;
    }
    set_want_out(c, false);
  }

  void on_readable(Conn& c) {
    char buf[65536];
    bool eof = false;
    for (;;) {
      ssize_t r = ::recv(c.fd, buf, sizeof buf, 0);
      if (r > 0) {
        c.in.append(buf, static_cast<size_t>(r));
        st_.bytes_received += static_cast<uint64_t>(r);
        if (static_cast<size_t>(r) < sizeof buf) break;
        continue;
      }
      if (r == 0) {
        eof = true;
        break;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      close_conn(c, true, std::strerror(errno));
      return;
    }
    while (!c.in.empty()) {
      ParsedResponse pr;
      int rc = parse_response(c.in, eof, pr);
      if (rc == 0) break;
      if (rc < 0) {
        close_conn(c, true, "malformed response");
        return;
      }
      if (!c.in_flight) {
        close_conn(c, true, "unsolicited response");
        ++st_.io_errors;
        return;
      }
      c.in.erase(0, pr.consumed);
      on_response(c, pr.status);
      if (pr.close) {
        close_conn(c, false, "");
        return;
      }
      if (c.fd >= 0 && !c.in_flight) send_next(c);
    }
    if (eof && c.fd >= 0) close_conn(c, true, "connection closed by server");
  }

  void on_response(Conn& c, int status) {
    auto now = Clock::now();
    c.in_flight = false;
    ++st_.completed_total;
    ++st_.status_counts[status];
    bool ok = status >= 200 && status < 300;
    bool in_window = now >= sh_.t_window && now < sh_.t_end;
    if (ok) {
      ++st_.ok_total;
      if (in_window) {
        ++st_.completed_window;
        auto us = std::chrono::duration_cast<std::chrono::microseconds>(now - c.sent_at).count();
        st_.lat_us.push_back(static_cast<uint32_t>(std::min<int64_t>(us, UINT32_MAX)));
      }
    } else {
      ++st_.non2xx;
      if (in_window) ++st_.non2xx_window;
      note_error("HTTP " + std::to_string(status) + " on " + c.target);
    }
  }

  const Shared& sh_;
  std::vector<std::unique_ptr<Conn>> conns_;
  int ep_ = -1;
  Stats st_;
};

// ---------------------------------------------------------------------------------------------
// CPU accounting

double self_cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// utime+stime of a process (all threads), seconds; negative if unreadable.
double proc_cpu_seconds(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s;
  if (!std::getline(f, s)) return -1;
  size_t rp = s.rfind(')');
  if (rp == std::string::npos) return -1;
  std::istringstream is(s.substr(rp + 2));
  std::string tok;
  // fields after ")" start at field 3 (state); utime = 14, stime = 15
  unsigned long long ut = 0, stt = 0;
  for (int field = 3; field <= 15 && (is >> tok); ++field) {
    if (field == 14) ut = std::stoull(tok);
    if (field == 15) stt = std::stoull(tok);
  }
  return static_cast<double>(ut + stt) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// Machine-wide CPU time (clock ticks) from the first line of /proc/stat.
struct SysCpu {
  unsigned long long task = 0;   // user + nice + system: processes and kernel threads
  unsigned long long irq = 0;    // irq + softirq (loopback TCP is largely softirq; not charged to tasks)
  unsigned long long steal = 0;  // stolen by the hypervisor
  unsigned long long total = 0;
};
SysCpu sys_cpu() {
  std::ifstream f("/proc/stat");
  std::string cpu;
  SysCpu r;
  f >> cpu;
  unsigned long long v[8] = {};
  for (int i = 0; i < 8 && (f >> v[i]); ++i) {
  }
  // user nice system idle iowait irq softirq steal (guest time is already inside user)
  r.task = v[0] + v[1] + v[2];
  r.irq = v[5] + v[6];
  r.steal = v[7];
  r.total = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
  return r;
}

std::string json_escape(std::string_view s) {
  std::string o;
  for (char ch : s) {
    switch (ch) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      case '\r': o += "\\r"; break;
      case '\t': o += "\\t"; break;
      default:
        if (static_cast<unsigned char>(ch) < 0x20) {
          char b[8];
          std::snprintf(b, sizeof b, "\\u%04x", ch);
          o += b;
        } else {
          o += ch;
        }
    }
  }
  return o;
}

double percentile(const std::vector<uint32_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  // nearest-rank
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  if (rank < 1) rank = 1;
  if (rank > sorted.size()) rank = sorted.size();
  return sorted[rank - 1];
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  Options o = parse_args(argc, argv);
  sockaddr_in addr = resolve(o.host, o.port);
  std::string host_hdr = o.host + ":" + std::to_string(o.port);

  char run_id[32];
  std::snprintf(run_id, sizeof run_id, "%lx%x",
                static_cast<unsigned long>(std::chrono::system_clock::now().time_since_epoch().count() /
                                           1000000 % 0xffffffffUL),
                static_cast<unsigned>(::getpid() & 0xffff));

  // --- wait for the server -----------------------------------------------------------------------
  {
    auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(o.ready_timeout));
    std::string last_err;
    for (;;) {
      bool ready = false;
      if (o.ready_path.empty()) {
        int fd = connect_blocking(addr);
        if (fd >= 0) {
          ::close(fd);
          ready = true;
        } else {
          last_err = std::string("connect: ") + std::strerror(errno);
        }
      } else {
        int st = simple_request(addr, "GET", o.ready_path, host_hdr, "", "", last_err);
        if (st >= 200 && st < 300) ready = true;
        else if (st > 0) last_err = "GET " + o.ready_path + " -> " + std::to_string(st);
      }
      if (ready) break;
      if (Clock::now() >= deadline) die("server not ready on " + host_hdr + ": " + last_err);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  // --- targets and stream creation ------------------------------------------------------------
  std::vector<std::string> targets;
  for (int i = 0; i < o.connections; ++i)
    targets.push_back(replace_all(replace_all(o.path, "{run}", run_id), "{conn}", std::to_string(i)));
  std::vector<std::string> unique_targets = targets;
  std::sort(unique_targets.begin(), unique_targets.end());
  unique_targets.erase(std::unique(unique_targets.begin(), unique_targets.end()), unique_targets.end());
  if (o.create) {
    for (const auto& t : unique_targets) {
      std::string err;
      int st = simple_request(addr, "PUT", t, host_hdr, o.content_type, "", err);
      if (st < 200 || st >= 300)
        die("PUT " + t + " failed: " + (st > 0 ? "HTTP " + std::to_string(st) : err));
    }
  }

  // --- connect ------------------------------------------------------------------------------------
  std::vector<std::vector<std::unique_ptr<Conn>>> per_thread(static_cast<size_t>(o.threads));
  for (int i = 0; i < o.connections; ++i) {
    auto c = std::make_unique<Conn>();
    c->index = i;
    c->target = targets[static_cast<size_t>(i)];
    c->fd = connect_blocking(addr);
    if (c->fd < 0) die("connect failed: " + std::string(std::strerror(errno)));
    per_thread[static_cast<size_t>(i % o.threads)].push_back(std::move(c));
  }

  Shared sh;
  sh.opt = &o;
  sh.addr = addr;
  sh.host_hdr = host_hdr;
  auto dur = [](double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  };
  sh.t_start = Clock::now();
  sh.t_window = sh.t_start + dur(o.warmup);
  sh.t_end = sh.t_window + dur(o.duration);
  sh.t_drain = sh.t_end + dur(o.drain_timeout);

  std::vector<std::unique_ptr<Worker>> workers;
  for (auto& v : per_thread) workers.push_back(std::make_unique<Worker>(sh, std::move(v)));
  std::vector<std::thread> threads;
  for (auto& w : workers) threads.emplace_back([&w] { w->run(); });

  // --- sample CPU at the window edges ------------------------------------------------------------
  std::this_thread::sleep_until(sh.t_window);
  double self0 = self_cpu_seconds();
  double srv0 = o.server_pid > 0 ? proc_cpu_seconds(o.server_pid) : -1;
  SysCpu sys0 = sys_cpu();
  auto w0 = Clock::now();
  std::this_thread::sleep_until(sh.t_end);
  double self1 = self_cpu_seconds();
  double srv1 = o.server_pid > 0 ? proc_cpu_seconds(o.server_pid) : -1;
  SysCpu sys1 = sys_cpu();
  double wall = std::chrono::duration<double>(Clock::now() - w0).count();

  for (auto& t : threads) t.join();

  // --- aggregate ------------------------------------------------------------------------------
  Stats tot;
  for (auto& w : workers) {
    Stats& s = w->stats();
    tot.completed_window += s.completed_window;
    tot.completed_total += s.completed_total;
    tot.ok_total += s.ok_total;
    tot.non2xx += s.non2xx;
    tot.non2xx_window += s.non2xx_window;
    tot.io_errors += s.io_errors;
    tot.connect_errors += s.connect_errors;
    tot.timeouts += s.timeouts;
    tot.reconnects += s.reconnects;
    tot.bytes_sent += s.bytes_sent;
    tot.bytes_received += s.bytes_received;
    for (auto& [k, v] : s.status_counts) tot.status_counts[k] += v;
    tot.lat_us.insert(tot.lat_us.end(), s.lat_us.begin(), s.lat_us.end());
    for (auto& e : s.error_samples)
      if (tot.error_samples.size() < 10 &&
          std::find(tot.error_samples.begin(), tot.error_samples.end(), e) == tot.error_samples.end())
        tot.error_samples.push_back(e);
  }
  std::sort(tot.lat_us.begin(), tot.lat_us.end());
  double mean = 0;
  for (auto v : tot.lat_us) mean += v;
  if (!tot.lat_us.empty()) mean /= static_cast<double>(tot.lat_us.size());
  uint64_t errors = tot.non2xx + tot.io_errors + tot.connect_errors + tot.timeouts;

  std::string body_sample;
  build_body(body_sample, o, 0, 0);

  double rps = static_cast<double>(tot.completed_window) / o.duration;
  char buf[512];
  std::string j = "{\n";
  auto kv = [&](const char* k, const std::string& v, bool last = false) {
    j += "  \"";
    j += k;
    j += "\": ";
    j += v;
    j += last ? "\n" : ",\n";
  };
  auto num = [&](double v, int prec = 1) {
    std::snprintf(buf, sizeof buf, "%.*f", prec, v);
    return std::string(buf);
  };
  auto str = [&](std::string_view v) { return "\"" + json_escape(v) + "\""; };
  kv("label", str(o.label));
  kv("target", str(host_hdr));
  kv("path_pattern", str(o.path));
  kv("streams", std::to_string(unique_targets.size()));
  kv("connections", std::to_string(o.connections));
  kv("loadgen_threads", std::to_string(o.threads));
  kv("warmup_s", num(o.warmup, 3));
  kv("duration_s", num(o.duration, 3));
  kv("event_bytes", std::to_string(o.event_bytes));
  kv("events_per_request", std::to_string(o.events));
  kv("request_body_bytes", std::to_string(body_sample.size()));
  kv("requests", std::to_string(tot.completed_window));
  kv("requests_per_s", num(rps));
  kv("events_per_s", num(rps * o.events));
  kv("body_mb_per_s", num(rps * static_cast<double>(body_sample.size()) / 1e6, 3));
  std::snprintf(buf, sizeof buf,
                "{\"p50\": %.0f, \"p90\": %.0f, \"p99\": %.0f, \"p999\": %.0f, \"max\": %.0f, "
                "\"mean\": %.1f}",
                percentile(tot.lat_us, 0.50), percentile(tot.lat_us, 0.90),
                percentile(tot.lat_us, 0.99), percentile(tot.lat_us, 0.999),
                tot.lat_us.empty() ? 0.0 : static_cast<double>(tot.lat_us.back()), mean);
  kv("latency_us", buf);
  kv("errors", std::to_string(errors));
  std::snprintf(buf, sizeof buf,
                "{\"non_2xx\": %" PRIu64 ", \"non_2xx_in_window\": %" PRIu64 ", \"io\": %" PRIu64
                ", \"connect\": %" PRIu64 ", \"timeouts\": %" PRIu64 ", \"reconnects\": %" PRIu64 "}",
                tot.non2xx, tot.non2xx_window, tot.io_errors, tot.connect_errors, tot.timeouts,
                tot.reconnects);
  kv("error_detail", buf);
  std::string sc = "{";
  for (auto& [k, v] : tot.status_counts) {
    if (sc.size() > 1) sc += ", ";
    sc += "\"" + std::to_string(k) + "\": " + std::to_string(v);
  }
  sc += "}";
  kv("status_counts", sc);
  std::string es = "[";
  for (auto& e : tot.error_samples) {
    if (es.size() > 1) es += ", ";
    es += str(e);
  }
  es += "]";
  kv("error_samples", es);
  kv("responses_total", std::to_string(tot.completed_total));
  kv("loadgen_cpu_cores", num((self1 - self0) / wall, 3));
  kv("server_cpu_cores", srv0 >= 0 && srv1 >= 0 ? num((srv1 - srv0) / wall, 3) : "null");
  kv("window_wall_s", num(wall, 3));
  // Machine-wide use during the window, in cores. other_task_cores = task time not spent in this
  // process or the server (other programs, plus kernel threads such as the journal or writeback
  // working for the server); irq_cores = interrupt + softirq time (loopback networking).
  double sys_total = static_cast<double>(sys1.total - sys0.total);
  unsigned ncpu = std::thread::hardware_concurrency();
  auto cores = [&](unsigned long long d) { return sys_total > 0 ? static_cast<double>(d) / sys_total * ncpu : 0.0; };
  double task_cores = cores(sys1.task - sys0.task);
  double lg_cores = (self1 - self0) / wall;
  double srv_cores = srv0 >= 0 && srv1 >= 0 ? (srv1 - srv0) / wall : -1;
  kv("machine_task_cores", sys_total > 0 ? num(task_cores, 3) : "null");
  kv("machine_irq_cores", sys_total > 0 ? num(cores(sys1.irq - sys0.irq), 3) : "null");
  kv("machine_steal_cores", sys_total > 0 ? num(cores(sys1.steal - sys0.steal), 3) : "null");
  kv("machine_busy_fraction",
     sys_total > 0 ? num(static_cast<double>((sys1.task + sys1.irq + sys1.steal) - (sys0.task + sys0.irq + sys0.steal)) / sys_total, 3)
                   : "null");
  kv("other_task_cores", sys_total > 0 && srv_cores >= 0 ? num(std::max(0.0, task_cores - lg_cores - srv_cores), 3) : "null");
  kv("ncpu", std::to_string(ncpu), true);
  j += "}\n";

  if (o.out.empty()) {
    std::fputs(j.c_str(), stdout);
  } else {
    std::ofstream f(o.out);
    f << j;
    if (!f) die("cannot write " + o.out);
  }
  std::fprintf(stderr, "ds_loadgen[%s]: %.0f req/s, p50 %.0f us, p99 %.0f us, p999 %.0f us, errors %" PRIu64 "\n",
               o.label.empty() ? host_hdr.c_str() : o.label.c_str(), rps, percentile(tot.lat_us, 0.5),
               percentile(tot.lat_us, 0.99), percentile(tot.lat_us, 0.999), errors);
  return 0;
}
