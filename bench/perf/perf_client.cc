// ds_perf: load drivers for the read, live-delivery and capacity benchmarks (bench/perf/run.sh).
// Speaks plain HTTP/1.1 over POSIX sockets (+ epoll for many live connections); works against
// durable-sessions and the upstream reference server alike. Every mode prints one JSON object.
//
//   ds_perf post     --port P --path PAT --count N [--connections C] [--events E]
//                    [--event-bytes B] [--offsets FILE]       N requests of E events each; PAT may
//                                                             hold {i} (request index) / {m} (i % --mod)
//                    [--method M] [--body STR]                another method / a fixed body (e.g.
//                                                             PUT /v1/sessions/s-{i} with '{}')
//   ds_perf catchup  --port P --path PATH [--expect-events N] read from offset -1, following
//                                                             Stream-Next-Offset until up to date
//   ds_perf random   --port P --path PATH --offsets FILE [--connections C] [--duration S]
//   ds_perf live     --port P --mode sse|long-poll --subs N [--sessions] --path PAT
//                    [--append-path PAT] [--events N] [--interval-ms MS] [--session-api]
//   ds_perf idle     --port P --path PAT --conns N --server-pid PID [--hold S]
//   ds_perf ready    --port P --timeout S                     poll /readyz until 200 (prints ms)
//
// Live latency: the appender stamps each event with "bench_ts":<CLOCK_MONOTONIC ns> taken just
// before the POST is written; subscribers (same process) subtract it from the time the event's
// SSE line / long-poll body is parsed. So latency = append request + commit (fsync) + delivery.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

[[noreturn]] void die(const std::string& m) {
  fprintf(stderr, "ds_perf: %s\n", m.c_str());
  exit(2);
}

std::map<std::string, std::string> g_args;
std::string arg(const std::string& k, const std::string& def = "") {
  auto it = g_args.find(k);
  return it == g_args.end() ? def : it->second;
}
double argd(const std::string& k, double def) {
  auto it = g_args.find(k);
  return it == g_args.end() ? def : atof(it->second.c_str());
}
bool flag(const std::string& k) { return g_args.count(k) > 0; }

std::string g_host = "127.0.0.1";
int g_port = 0;

int connect_to(bool nonblock = false) {
  int fd = socket(AF_INET, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(g_port);
  inet_pton(AF_INET, g_host.c_str(), &a.sin_addr);
  if (connect(fd, (sockaddr*)&a, sizeof a) < 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size()) s.replace(p, from.size(), to);
  return s;
}

// ---- incremental HTTP/1.1 response parser -----------------------------------------------------
struct RespParser {
  enum St { HEAD, BODY_LEN, CHUNK_SIZE, CHUNK_DATA, CHUNK_CRLF, TRAILER, DONE } st = HEAD;
  std::string buf;  // unparsed bytes
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-cased names
  size_t remaining = 0;
  bool head_request = false;
  std::string body;          // accumulated body (unless streaming)
  bool stream_body = false;  // deliver body via on_body and do not accumulate
  void (*on_body)(void* ctx, const char* p, size_t n) = nullptr;
  void* ctx = nullptr;

  void reset() {
    st = HEAD;
    status = 0;
    headers.clear();
    body.clear();
    remaining = 0;
  }
  void emit(const char* p, size_t n) {
    if (stream_body && on_body) on_body(ctx, p, n);
    else body.append(p, n);
  }
  // Feeds bytes; returns true when a full response is complete (leftover bytes stay in buf).
  bool feed(const char* p, size_t n) {
    if (st == BODY_LEN && buf.empty()) {  // fast path: no copy through buf
      size_t take = std::min(remaining, n);
      emit(p, take);
      remaining -= take;
      p += take;
      n -= take;
      if (!remaining) st = DONE;
      buf.append(p, n);
      return st == DONE;
    }
    buf.append(p, n);
    return step();
  }
  bool step() {
    size_t pos = 0;
    for (;;) {
      if (st == HEAD) {
        size_t e = buf.find("\r\n\r\n", pos);
        if (e == std::string::npos) break;
        std::string_view h(buf.data() + pos, e - pos);
        size_t le = h.find("\r\n");
        std::string_view sl = h.substr(0, le);
        status = atoi(std::string(sl.substr(9, 3)).c_str());
        size_t lp = le == std::string_view::npos ? h.size() : le + 2;
        while (lp < h.size()) {
          size_t ne = h.find("\r\n", lp);
          if (ne == std::string_view::npos) ne = h.size();
          std::string_view line = h.substr(lp, ne - lp);
          size_t c = line.find(':');
          if (c != std::string_view::npos) {
            std::string k(line.substr(0, c));
            for (auto& ch : k) ch = tolower(ch);
            std::string_view v = line.substr(c + 1);
            while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
            headers[k] = std::string(v);
          }
          lp = ne + 2;
        }
        pos = e + 4;
        if (status == 204 || status == 304 || head_request || (status >= 100 && status < 200)) {
          st = DONE;
        } else if (headers.count("transfer-encoding")) {
          st = CHUNK_SIZE;
        } else if (headers.count("content-length")) {
          remaining = strtoull(headers["content-length"].c_str(), nullptr, 10);
          st = remaining ? BODY_LEN : DONE;
          if (!stream_body) body.reserve(remaining);
        } else {
          st = DONE;  // not expected from either server
        }
      } else if (st == BODY_LEN) {
        size_t take = std::min(remaining, buf.size() - pos);
        emit(buf.data() + pos, take);
        pos += take;
        remaining -= take;
        if (remaining) break;
        st = DONE;
      } else if (st == CHUNK_SIZE) {
        size_t e = buf.find("\r\n", pos);
        if (e == std::string::npos) break;
        remaining = strtoull(buf.c_str() + pos, nullptr, 16);
        pos = e + 2;
        st = remaining ? CHUNK_DATA : TRAILER;
      } else if (st == CHUNK_DATA) {
        size_t take = std::min(remaining, buf.size() - pos);
        emit(buf.data() + pos, take);
        pos += take;
        remaining -= take;
        if (remaining) break;
        st = CHUNK_CRLF;
      } else if (st == CHUNK_CRLF) {
        if (buf.size() - pos < 2) break;
        pos += 2;
        st = CHUNK_SIZE;
      } else if (st == TRAILER) {
        size_t e = buf.find("\r\n", pos);
        if (e == std::string::npos) break;
        bool empty = e == pos;
        pos = e + 2;
        if (empty) st = DONE;
      }
      if (st == DONE) break;
    }
    buf.erase(0, pos);
    return st == DONE;
  }
};

// ---- blocking keep-alive client ----------------------------------------------------------------
struct Client {
  int fd = -1;
  RespParser p;
  std::vector<char> rbuf = std::vector<char>(1 << 20);
  ~Client() {
    if (fd >= 0) close(fd);
  }
  bool ensure() {
    if (fd >= 0) return true;
    fd = connect_to();
    p.buf.clear();
    return fd >= 0;
  }
  // Returns status (0 on I/O error); response in p.
  int request(const std::string& method, const std::string& path, const std::string& body = "",
              const std::string& ctype = "application/json") {
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (!ensure()) return 0;
      std::string req = method + " " + path + " HTTP/1.1\r\nHost: " + g_host + "\r\n";
      if (method == "POST" || method == "PUT")
        req += "Content-Type: " + ctype + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
      req += "\r\n";
      req += body;
      size_t off = 0;
      bool ok = true;
      while (off < req.size()) {
        ssize_t w = write(fd, req.data() + off, req.size() - off);
        if (w <= 0) {
          ok = false;
          break;
        }
        off += w;
      }
      p.reset();
      p.head_request = method == "HEAD";
      if (ok) {
        if (!p.buf.empty() && p.step()) return p.status;
        for (;;) {
          ssize_t r = read(fd, rbuf.data(), rbuf.size());
          if (r <= 0) {
            ok = false;
            break;
          }
          if (p.feed(rbuf.data(), r)) {
            auto c = p.headers.find("connection");
            int st = p.status;
            if (c != p.headers.end() && c->second == "close") {
              close(fd);
              fd = -1;
            }
            return st;
          }
        }
      }
      close(fd);
      fd = -1;
    }
    return 0;
  }
};

struct Stats {
  std::vector<double> v;
  void add(double x) { v.push_back(x); }
  double pct(double q) {
    if (v.empty()) return NAN;
    std::sort(v.begin(), v.end());
    size_t i = std::min(v.size() - 1, (size_t)std::ceil(q * v.size()) - (q * v.size() >= 1 ? 1 : 0));
    return v[i];
  }
  double mean() {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? NAN : s / v.size();
  }
};

std::string jnum(double x) {
  if (std::isnan(x)) return "null";
  char b[64];
  snprintf(b, sizeof b, "%.6g", x);
  return b;
}

std::string make_event(size_t bytes, uint64_t seq, int64_t ts, bool typed) {
  std::string e = typed ? "{\"type\":\"bench.event\",\"seq\":" : "{\"seq\":";
  e += std::to_string(seq);
  if (ts) e += ",\"bench_ts\":" + std::to_string(ts);
  e += ",\"pad\":\"";
  while (e.size() + 2 < bytes) e.push_back('a' + (e.size() % 26));
  e += "\"}";
  return e;
}

long rss_kb(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return atol(line.c_str() + 6);
  return -1;
}

// ---- post: bulk appends (dataset setup) --------------------------------------------------------
int cmd_post() {
  std::string pat = arg("path");
  long count = (long)argd("count", 1000);
  int conns = (int)argd("connections", 1);
  int events = (int)argd("events", 1);
  size_t bytes = (size_t)argd("event-bytes", 200);
  long mod = (long)argd("mod", 1);
  bool typed = flag("typed");
  std::string offsets_file = arg("offsets");
  std::string method = flag("method") ? arg("method") : "POST";
  bool fixed_body = flag("body");  // send this body instead of generated events
  std::atomic<long> next{0}, errors{0}, bytes_sent{0};
  std::mutex mu;
  std::vector<std::pair<long, std::string>> offs;
  int64_t t0 = now_ns();
  std::vector<std::thread> th;
  for (int c = 0; c < conns; ++c)
    th.emplace_back([&, c] {
      Client cl;
      std::string body;
      for (;;) {
        long i = next++;
        if (i >= count) break;
        body.clear();
        if (fixed_body) {
          body = arg("body");
        } else {
          if (events > 1 || flag("array")) body.push_back('[');
          for (int k = 0; k < events; ++k) {
            if (k) body.push_back(',');
            body += make_event(bytes, uint64_t(i) * events + k, 0, typed);
          }
          if (events > 1 || flag("array")) body.push_back(']');
        }
        std::string path = replace_all(replace_all(pat, "{i}", std::to_string(i)), "{m}", std::to_string(i % mod));
        int st = cl.request(method, path, body);
        if (st < 200 || st >= 300) {
          if (errors++ < 5) fprintf(stderr, "ds_perf post: %s -> %d %s\n", path.c_str(), st, cl.p.body.substr(0, 200).c_str());
          continue;
        }
        bytes_sent += body.size();
        if (!offsets_file.empty()) {
          std::lock_guard<std::mutex> g(mu);
          offs.emplace_back(i, cl.p.headers["stream-next-offset"]);
        }
      }
    });
  for (auto& t : th) t.join();
  double secs = (now_ns() - t0) / 1e9;
  if (!offsets_file.empty()) {
    std::sort(offs.begin(), offs.end());
    std::ofstream f(offsets_file);
    f << (flag("first-offset") ? arg("first-offset") : std::string("-1")) << "\n";
    for (auto& [i, o] : offs) f << o << "\n";
  }
  printf("{\"mode\":\"post\",\"requests\":%ld,\"events\":%ld,\"errors\":%ld,\"seconds\":%s,\"req_per_s\":%s,\"mb\":%s}\n",
         count, count * events, errors.load(), jnum(secs).c_str(), jnum(count / secs).c_str(),
         jnum(bytes_sent / 1e6).c_str());
  return errors ? 1 : 0;
}

// Counts the objects of a JSON-array body, or of the "data" array of a session page body
// ({"data":[…],"next_page":…}): events per response.
long count_events(const std::string& b) {
  long n = 0;
  int depth = 0;
  const int level = !b.empty() && b[0] == '{' ? 2 : 1;
  bool in_str = false, esc = false;
  for (char ch : b) {
    if (in_str) {
      if (esc) esc = false;
      else if (ch == '\\') esc = true;
      else if (ch == '"') in_str = false;
      continue;
    }
    if (ch == '"') in_str = true;
    else if (ch == '{' || ch == '[') {
      if (depth == level && ch == '{') ++n;
      ++depth;
    } else if (ch == '}' || ch == ']') --depth;
  }
  return n;
}

// ---- catchup ------------------------------------------------------------------------------------
int cmd_catchup() {
  std::string path = arg("path");
  int reps = (int)argd("reps", 3);
  bool count = !flag("no-count");
  std::string out = "{\"mode\":\"catchup\",\"runs\":[";
  for (int r = 0; r < reps; ++r) {
    Client cl;
    std::string off = "-1";
    long bytes = 0, events = 0, reqs = 0;
    int64_t t0 = now_ns();
    for (;;) {
      std::string sep = path.find('?') == std::string::npos ? "?" : "&";
      int st = cl.request("GET", path + sep + "offset=" + off);
      if (st != 200) die("catchup GET -> " + std::to_string(st));
      ++reqs;
      bytes += cl.p.body.size();
      if (count) events += count_events(cl.p.body);
      off = cl.p.headers["stream-next-offset"];
      if (cl.p.headers.count("stream-up-to-date")) break;
    }
    double secs = (now_ns() - t0) / 1e9;
    if (!count) events = (long)argd("expect-events", 0);
    char b[512];
    snprintf(b, sizeof b,
             "%s{\"seconds\":%.4f,\"bytes\":%ld,\"events\":%ld,\"requests\":%ld,\"mb_per_s\":%.1f,\"events_per_s\":%.0f}",
             r ? "," : "", secs, bytes, events, reqs, bytes / 1e6 / secs, events / secs);
    out += b;
  }
  out += "]}";
  puts(out.c_str());
  return 0;
}

// ---- random-offset reads -----------------------------------------------------------------------
int cmd_random() {
  std::string path = arg("path");
  std::vector<std::string> offs;
  {
    std::ifstream f(arg("offsets"));
    std::string l;
    while (std::getline(f, l))
      if (!l.empty()) offs.push_back(l);
  }
  if (offs.size() < 2) die("need offsets");
  offs.pop_back();  // the tail: reading there is empty
  int conns = (int)argd("connections", 4);
  double dur = argd("duration", 5);
  std::atomic<bool> stop{false};
  std::atomic<long> total{0}, bytes{0}, errors{0};
  std::mutex mu;
  Stats lat;
  std::vector<std::thread> th;
  int64_t t0 = now_ns();
  for (int c = 0; c < conns; ++c)
    th.emplace_back([&, c] {
      Client cl;
      std::mt19937_64 rng(c * 7919 + 1);
      std::vector<double> mine;
      while (!stop) {
        const std::string& o = offs[rng() % offs.size()];
        std::string sep = path.find('?') == std::string::npos ? "?" : "&";
        int64_t s = now_ns();
        int st = cl.request("GET", path + sep + "offset=" + o);
        if (st != 200) {
          ++errors;
          continue;
        }
        mine.push_back((now_ns() - s) / 1e6);
        ++total;
        bytes += cl.p.body.size();
      }
      std::lock_guard<std::mutex> g(mu);
      for (double x : mine) lat.add(x);
    });
  std::this_thread::sleep_for(std::chrono::milliseconds((long)(dur * 1000)));
  stop = true;
  for (auto& t : th) t.join();
  double secs = (now_ns() - t0) / 1e9;
  printf("{\"mode\":\"random\",\"connections\":%d,\"requests\":%ld,\"errors\":%ld,\"seconds\":%.3f,"
         "\"req_per_s\":%.1f,\"mb_per_s\":%.1f,\"avg_response_bytes\":%.0f,\"p50_ms\":%s,\"p99_ms\":%s}\n",
         conns, total.load(), errors.load(), secs, total / secs, bytes / 1e6 / secs,
         total ? (double)bytes / total : 0.0, jnum(lat.pct(0.5)).c_str(), jnum(lat.pct(0.99)).c_str());
  return 0;
}

// ---- live subscribers (epoll) -----------------------------------------------------------------
struct Sub {
  int fd = -1;
  int idx = 0;
  std::string path;  // base path (without offset/live)
  std::string offset;
  RespParser p;
  std::string line;  // SSE partial line
  bool connected = false;
  bool got_headers = false;
  bool ready = false;  // SSE: headers (and first control) seen; long-poll: first request in flight
  std::string outbuf;
};

struct Live {
  std::string mode;
  std::vector<Sub> subs;
  std::mutex mu;
  std::vector<double> lat_ms;
  std::vector<long> per_event_count;  // deliveries per seq
  std::vector<double> per_event_max;  // max latency per seq
  long deliveries = 0, errors = 0, reconnects = 0;
  std::atomic<long> ready_count{0};
  int ep = -1;
  bool session_api = false;

  void record(const char* p, size_t n) {
    // find all "bench_ts":NNN and "seq":NNN pairs in this text
    std::string_view s(p, n);
    size_t pos = 0;
    int64_t t = now_ns();
    while ((pos = s.find("\"seq\":", pos)) != std::string_view::npos) {
      pos += 6;
      long seq = strtol(s.data() + pos, nullptr, 10);
      size_t q = s.find("\"bench_ts\":", pos);
      if (q == std::string_view::npos) break;
      int64_t ts = strtoll(s.data() + q + 11, nullptr, 10);
      double ms = (t - ts) / 1e6;
      std::lock_guard<std::mutex> g(mu);
      lat_ms.push_back(ms);
      ++deliveries;
      if (seq >= 0 && (size_t)seq < per_event_count.size()) {
        per_event_count[seq]++;
        per_event_max[seq] = std::max(per_event_max[seq], ms);
      }
      pos = q + 11;
    }
  }
  static void on_sse_body(void* ctx, const char* p, size_t n) {
    auto* pr = static_cast<std::pair<Live*, Sub*>*>(ctx);
    Sub& s = *pr->second;
    s.line.append(p, n);
    size_t e = s.line.rfind('\n');
    if (e == std::string::npos) return;
    std::string_view done(s.line.data(), e + 1);
    if (!s.ready && done.find("control") != std::string_view::npos) {
      s.ready = true;
      pr->first->ready_count++;
    }
    pr->first->record(done.data(), done.size());
    s.line.erase(0, e + 1);
  }
  std::vector<std::pair<Live*, Sub*>> ctxs;

  void send_get(Sub& s) {
    std::string q = s.path + (s.path.find('?') == std::string::npos ? "?" : "&");
    q += "offset=" + s.offset + "&live=" + mode;
    s.outbuf = "GET " + q + " HTTP/1.1\r\nHost: " + g_host + "\r\nAccept: " +
               (mode == "sse" ? "text/event-stream" : "application/json") + "\r\n\r\n";
    flush(s);
  }
  void flush(Sub& s) {
    while (!s.outbuf.empty()) {
      ssize_t w = write(s.fd, s.outbuf.data(), s.outbuf.size());
      if (w < 0) {
        if (errno == EAGAIN) {
          epoll_event ev{EPOLLIN | EPOLLOUT, {.u32 = (uint32_t)s.idx}};
          epoll_ctl(ep, EPOLL_CTL_MOD, s.fd, &ev);
          return;
        }
        return;
      }
      s.outbuf.erase(0, w);
    }
    epoll_event ev{EPOLLIN, {.u32 = (uint32_t)s.idx}};
    epoll_ctl(ep, EPOLL_CTL_MOD, s.fd, &ev);
  }
  bool open(Sub& s) {
    s.fd = connect_to(true);
    if (s.fd < 0) return false;
    s.p.reset();
    s.p.buf.clear();
    s.line.clear();
    s.connected = false;
    if (mode == "sse") {
      s.p.stream_body = true;
      s.p.on_body = &Live::on_sse_body;
      s.p.ctx = &ctxs[s.idx];
    }
    epoll_event ev{EPOLLOUT | EPOLLIN, {.u32 = (uint32_t)s.idx}};
    epoll_ctl(ep, EPOLL_CTL_ADD, s.fd, &ev);
    return true;
  }
  void on_event(Sub& s, uint32_t events) {
    if (!s.connected && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
      int err = 0;
      socklen_t l = sizeof err;
      getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &l);
      if (err) {
        fail(s);
        return;
      }
      s.connected = true;
      send_get(s);
      if (mode == "long-poll" && !s.ready) {
        s.ready = true;
        ready_count++;
      }
      return;
    }
    if (events & EPOLLOUT) flush(s);
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
      char buf[65536];
      for (;;) {
        ssize_t r = read(s.fd, buf, sizeof buf);
        if (r == 0 || (r < 0 && errno != EAGAIN)) {
          fail(s);
          return;
        }
        if (r < 0) break;
        bool done = s.p.feed(buf, r);
        if (s.p.status && s.p.status != 200 && s.p.status != 204 && (done || mode == "sse")) {
          std::lock_guard<std::mutex> g(mu);
          if (errors++ < 5) fprintf(stderr, "ds_perf live: sub %d got %d\n", s.idx, s.p.status);
        }
        while (done) {
          // long-poll response complete
          if (s.p.status == 200) record(s.p.body.data(), s.p.body.size());
          auto it = s.p.headers.find("stream-next-offset");
          if (it != s.p.headers.end()) s.offset = it->second;
          s.p.reset();
          send_get(s);
          done = !s.p.buf.empty() && s.p.step();
        }
      }
    }
  }
  void fail(Sub& s) {
    epoll_ctl(ep, EPOLL_CTL_DEL, s.fd, nullptr);
    close(s.fd);
    {
      std::lock_guard<std::mutex> g(mu);
      ++reconnects;
    }
    if (s.ready) {
      s.ready = false;
      ready_count--;
    }
    // SSE connections get recycled by the server (sse-max-duration); resume.
    if (s.p.headers.count("stream-next-offset")) s.offset = s.p.headers["stream-next-offset"];
    open(s);
  }
};

int append_one(Client& cl, const std::string& path, uint64_t seq, size_t bytes, bool typed) {
  std::string body = make_event(bytes, seq, now_ns(), typed);
  return cl.request("POST", path, body);
}

int cmd_live() {
  Live L;
  L.mode = arg("mode", "sse");
  int nsubs = (int)argd("subs", 1);
  bool own = flag("own-sessions");  // subscriber i on path with {i}
  std::string pat = arg("path");
  std::string apat = arg("append-path", pat);
  long nevents = (long)argd("events", 1000);
  double interval_ms = argd("interval-ms", 5);
  size_t bytes = (size_t)argd("event-bytes", 200);
  bool typed = flag("typed");
  double warm = argd("settle", 1);
  std::string start_off = arg("start-offset", "now");
  L.ep = epoll_create1(0);
  L.subs.resize(nsubs);
  L.ctxs.resize(nsubs);
  L.per_event_count.assign(nevents, 0);
  L.per_event_max.assign(nevents, 0);
  // make sure targets exist (a PUT for streams; sessions are created by their first append)
  if (flag("create")) {
    Client c;
    for (int i = 0; i < (own ? nsubs : 1); ++i) {
      std::string p = replace_all(flag("create-path") ? arg("create-path") : pat, "{i}", std::to_string(i));
      int st = flag("create-post") ? c.request("POST", p, make_event(100, 999999999, 0, typed)) : c.request("PUT", p, "");
      if (st < 200 || st >= 300) die("create " + p + " -> " + std::to_string(st));
    }
  }
  for (int i = 0; i < nsubs; ++i) {
    Sub& s = L.subs[i];
    s.idx = i;
    s.path = replace_all(pat, "{i}", std::to_string(i));
    s.offset = start_off;
    L.ctxs[i] = {&L, &s};
  }
  std::atomic<bool> stop{false};
  std::thread loop([&] {
    std::vector<epoll_event> evs(4096);
    while (!stop) {
      int n = epoll_wait(L.ep, evs.data(), evs.size(), 50);
      for (int k = 0; k < n; ++k) L.on_event(L.subs[evs[k].data.u32], evs[k].events);
    }
  });
  int64_t c0 = now_ns();
  for (int i = 0; i < nsubs; ++i) {
    while (!L.open(L.subs[i])) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (i % 500 == 499) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // wait for all subscribers to be attached
  int64_t deadline = now_ns() + (int64_t)(argd("connect-timeout", 120) * 1e9);
  while (L.ready_count < nsubs && now_ns() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  double connect_s = (now_ns() - c0) / 1e9;
  long ready = L.ready_count;
  if (ready < nsubs) fprintf(stderr, "ds_perf live: only %ld/%d subscribers ready\n", ready, nsubs);
  std::this_thread::sleep_for(std::chrono::milliseconds((long)(warm * 1000)));
  long rss_before_append = flag("server-pid") ? rss_kb(atoi(arg("server-pid").c_str())) : -1;
  // appender
  Client cl;
  Stats alat;
  long aerr = 0;
  int64_t a0 = now_ns();
  for (long k = 0; k < nevents; ++k) {
    int64_t tick = a0 + (int64_t)(k * interval_ms * 1e6);
    while (now_ns() < tick) {
      int64_t d = tick - now_ns();
      if (d > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(d));
    }
    std::string p = replace_all(apat, "{i}", std::to_string(own ? k % nsubs : 0));
    int64_t s = now_ns();
    int st = append_one(cl, p, k, bytes, typed);
    alat.add((now_ns() - s) / 1e6);
    if (st < 200 || st >= 300) {
      if (aerr++ < 5) fprintf(stderr, "ds_perf live: append -> %d %s\n", st, cl.p.body.substr(0, 200).c_str());
    }
  }
  double append_s = (now_ns() - a0) / 1e9;
  // drain: wait until all expected deliveries arrived or timeout
  long expected = own ? nevents : nevents * (long)nsubs;
  int64_t dl = now_ns() + (int64_t)(argd("drain", 10) * 1e9);
  while (now_ns() < dl) {
    {
      std::lock_guard<std::mutex> g(L.mu);
      if (L.deliveries >= expected) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stop = true;
  loop.join();
  Stats lat;
  long complete = 0;
  Stats allrecv;  // per event: time until the last subscriber got it
  {
    std::lock_guard<std::mutex> g(L.mu);
    for (double x : L.lat_ms) lat.add(x);
    for (long k = 0; k < nevents; ++k) {
      long want = own ? 1 : nsubs;
      if (L.per_event_count[k] >= want) {
        ++complete;
        allrecv.add(L.per_event_max[k]);
      }
    }
  }
  printf("{\"mode\":\"live\",\"live\":\"%s\",\"subscribers\":%d,\"own_sessions\":%s,\"subscribers_ready\":%ld,"
         "\"connect_seconds\":%.2f,\"events\":%ld,\"interval_ms\":%g,\"append_seconds\":%.2f,"
         "\"append_errors\":%ld,\"append_p50_ms\":%s,\"append_p99_ms\":%s,"
         "\"deliveries\":%ld,\"expected_deliveries\":%ld,\"events_fully_delivered\":%ld,"
         "\"p50_ms\":%s,\"p99_ms\":%s,\"p999_ms\":%s,\"max_ms\":%s,\"mean_ms\":%s,"
         "\"all_subscribers_p50_ms\":%s,\"all_subscribers_p99_ms\":%s,\"reconnects\":%ld,\"sub_errors\":%ld,"
         "\"server_rss_kb_before_appends\":%ld}\n",
         L.mode.c_str(), nsubs, own ? "true" : "false", ready, connect_s, nevents, interval_ms, append_s, aerr,
         jnum(alat.pct(0.5)).c_str(), jnum(alat.pct(0.99)).c_str(), (long)lat.v.size(), expected, complete,
         jnum(lat.pct(0.5)).c_str(), jnum(lat.pct(0.99)).c_str(), jnum(lat.pct(0.999)).c_str(),
         jnum(lat.pct(1.0)).c_str(), jnum(lat.mean()).c_str(), jnum(allrecv.pct(0.5)).c_str(),
         jnum(allrecv.pct(0.99)).c_str(), L.reconnects - 0, L.errors, rss_before_append);
  return 0;
}

// ---- idle SSE connections: server memory per connection --------------------------------------
int cmd_idle() {
  Live L;
  L.mode = arg("mode", "sse");
  int n = (int)argd("conns", 1000);
  int pid = atoi(arg("server-pid").c_str());
  std::string pat = arg("path");
  L.ep = epoll_create1(0);
  L.subs.resize(n);
  L.ctxs.resize(n);
  for (int i = 0; i < n; ++i) {
    L.subs[i].idx = i;
    L.subs[i].path = replace_all(pat, "{i}", std::to_string(i));
    L.subs[i].offset = arg("start-offset", "now");
    L.ctxs[i] = {&L, &L.subs[i]};
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  long before = rss_kb(pid);
  std::atomic<bool> stop{false};
  std::thread loop([&] {
    std::vector<epoll_event> evs(4096);
    while (!stop) {
      int k = epoll_wait(L.ep, evs.data(), evs.size(), 50);
      for (int j = 0; j < k; ++j) L.on_event(L.subs[evs[j].data.u32], evs[j].events);
    }
  });
  for (int i = 0; i < n; ++i) {
    while (!L.open(L.subs[i])) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (i % 500 == 499) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  int64_t dl = now_ns() + 120e9;
  while (L.ready_count < n && now_ns() < dl) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::this_thread::sleep_for(std::chrono::milliseconds((long)(argd("hold", 3) * 1000)));
  long after = rss_kb(pid);
  long ready = L.ready_count;
  stop = true;
  loop.join();
  for (auto& s : L.subs) close(s.fd);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  long closed = rss_kb(pid);
  printf("{\"mode\":\"idle\",\"connections\":%d,\"ready\":%ld,\"rss_before_kb\":%ld,\"rss_after_kb\":%ld,"
         "\"rss_after_close_kb\":%ld,\"bytes_per_connection\":%.0f}\n",
         n, ready, before, after, closed, ready ? (after - before) * 1024.0 / ready : 0.0);
  return 0;
}

int cmd_ready() {
  double timeout = argd("timeout", 600);
  int64_t t0 = now_ns();
  while ((now_ns() - t0) / 1e9 < timeout) {
    Client c;
    int st = c.request("GET", arg("path", "/readyz"));
    if (st == 200) {
      printf("%.1f\n", (now_ns() - t0) / 1e6);
      return 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) die("usage: ds_perf post|catchup|random|live|idle|ready --port P ...");
  std::string cmd = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0) die("bad argument " + a);
    a = a.substr(2);
    if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) g_args[a] = argv[++i];
    else g_args[a] = "1";
  }
  rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  signal(SIGPIPE, SIG_IGN);
  g_host = arg("host", "127.0.0.1");
  g_port = atoi(arg("port").c_str());
  if (!g_port) die("--port required");
  if (cmd == "post") return cmd_post();
  if (cmd == "catchup") return cmd_catchup();
  if (cmd == "random") return cmd_random();
  if (cmd == "live") return cmd_live();
  if (cmd == "idle") return cmd_idle();
  if (cmd == "ready") return cmd_ready();
  die("unknown mode " + cmd);
}
