// fuzz_http_request: raw bytes → HTTP request(s) → the real router (ds::route) over real stores
// in a temp dir → recorded response(s).
//
// The input is parsed with Beast's request parser, the one the server uses, configured like the
// server (header limit, body limit). An input may hold several pipelined requests (up to
// kMaxRequests), so one input can create a stream or session, append to it and read it back.
// Every input gets a fresh data dir, catalog and stores, so a crashing input reproduces alone.
//
// Checked on every response, beyond "no crash, no sanitizer report":
//   - exactly one response per request (send once, or start_stream/write*/finish-or-abort),
//     status 100-599;
//   - no CR, LF or NUL in any response header name or value (response splitting);
//   - JSON error bodies (status >= 400, Content-Type application/json) parse as JSON;
//   - no response body or header mentions the data dir (no internal paths in errors);
//   - no file or directory appears outside the data dir;
//   - no exception escapes the handler;
//   - no 500 (a hostile request must never be an internal error) unless DS_FUZZ_ALLOW_500=1;
//   - /metrics stays well-formed Prometheus text, and the request metrics' labels come from a
//     bounded vocabulary (no series per distinct method or path), unless DS_FUZZ_CHECK_METRICS=0.
#include <stdlib.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "api/context.h"
#include "api/router.h"
#include "core/metrics.h"
#include "core/session_store.h"
#include "core/stream_store.h"
#include "store/api_keys.h"
#include "store/catalog.h"
#include "store/fs.h"
#include "store/group_commit.h"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

constexpr int kMaxRequests = 8;
constexpr size_t kMaxStreamedBytes = 1 << 20;  // a fake client that stops reading after 1 MiB
// Live handlers (SSE, long-poll) are told the server is shutting down after this long.
constexpr auto kLiveBudget = std::chrono::milliseconds(20);

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz_http_request: INVARIANT VIOLATED: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

bool env_flag(const char* name, bool dflt) {
  const char* v = getenv(name);
  if (v == nullptr || *v == '\0') return dflt;
  return std::strcmp(v, "0") != 0;
}

std::string printable(std::string_view s, size_t max = 200) {
  std::string out;
  for (char c : s.substr(0, max)) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) {
      out += c;
    } else {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", u);
      out += b;
    }
  }
  return out;
}

// The base temp dir: one per process, under /dev/shm when it exists (tmpfs: fdatasync is free).
// Never destroyed, so the atexit cleanup can still read it.
const std::string& base_dir() {
  static const std::string* dir = [] {
    std::string root = std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : "/tmp";
    std::string tmpl = root + "/ds_fuzz_http_XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) fail("mkdtemp failed");
    auto* d = new std::string(tmpl);
    atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(base_dir(), ec);
    });
    return d;
  }();
  return *dir;
}

// The server's world: catalog, stores and the ApiContext the router sees.
struct World {
  std::string data_dir;
  std::unique_ptr<ds::Catalog> catalog;
  std::unique_ptr<ds::GroupCommit> commit;
  std::unique_ptr<ds::StreamStore> streams;
  std::unique_ptr<ds::SessionStore> sessions;
  std::unique_ptr<ds::ApiKeys> keys;
  std::unique_ptr<ds::TenantLimits> limits;
  ds::ApiContext ctx;

  explicit World(std::string dir) : data_dir(std::move(dir)) {
    ds::Fs* fs = ds::Fs::posix();
    if (ds::Status s = fs->create_dirs(data_dir + "/streams"); !s) fail("create_dirs: " + s.message());
    if (ds::Status s = ds::Catalog::open(data_dir + "/catalog.db", &catalog); !s) {
      fail("catalog open: " + s.message());
    }
    commit = std::make_unique<ds::GroupCommit>();
    ds::StreamStore::Options o;
    o.data_dir = data_dir;
    o.fs = fs;
    streams = std::make_unique<ds::StreamStore>(o, catalog.get(), commit.get());
    if (ds::Status s = streams->open(); !s) fail("stream store open: " + s.message());
    sessions = std::make_unique<ds::SessionStore>(catalog.get(), streams.get());
    if (ds::Status s = sessions->open(); !s) fail("session store open: " + s.message());
    keys = std::make_unique<ds::ApiKeys>(catalog.get());

    ds::ServeOptions& so = ctx.options;
    so.data_dir = data_dir;
    so.long_poll_timeout = 0.01;
    so.sse_heartbeat = 0.005;
    so.sse_max_duration = 0.02;
    so.max_events_per_request = 100;
    so.max_sessions_per_tenant = 50;
    so.access_log = false;
    limits = std::make_unique<ds::TenantLimits>(so.rate_limit, so.rate_burst,
                                                so.max_live_per_tenant);
    ctx.streams = streams.get();
    ctx.sessions = sessions.get();
    ctx.keys = keys.get();
    ctx.catalog = catalog.get();
    ctx.limits = limits.get();
    ctx.ready = true;
  }

  ~World() {
    // Reverse order of construction; the group commit drains before the catalog closes.
    sessions.reset();
    streams.reset();
    commit.reset();
    keys.reset();
    catalog.reset();
  }
};

// A Responder that records what the handler answers and checks the protocol of the calls.
class RecordingResponder : public ds::Responder {
 public:
  RecordingResponder(const std::string& secret, std::chrono::steady_clock::time_point deadline)
      : secret_(secret), deadline_(deadline) {}

  asio::awaitable<void> send(ds::HttpResponse response) override {
    if (status_ != 0) fail("send() after a response was already started (status " +
                           std::to_string(status_) + ")");
    check_head(response);
    check_text(response.body, "body");
    status_ = response.status;
    response_ = std::move(response);
    done_ = true;
    co_return;
  }
  asio::awaitable<bool> start_stream(ds::HttpResponse head) override {
    if (status_ != 0) fail("start_stream() after a response was already started");
    check_head(head);
    status_ = head.status;
    response_ = std::move(head);
    streamed_ = true;
    co_return true;
  }
  asio::awaitable<bool> write(std::string_view data) override {
    if (!streamed_) fail("write() without start_stream()");
    if (done_) fail("write() after finish()");
    check_text(data, "stream chunk");
    streamed_bytes_ += data.size();
    co_return streamed_bytes_ < kMaxStreamedBytes;
  }
  asio::awaitable<void> finish() override {
    if (!streamed_) fail("finish() without start_stream()");
    if (done_) fail("finish() twice");
    done_ = true;
    co_return;
  }
  void abort() override {
    if (!streamed_) fail("abort() without start_stream()");
    if (done_) fail("abort() after finish()");
    done_ = true;
  }
  bool shutting_down() const override { return std::chrono::steady_clock::now() >= deadline_; }
  int status() const override { return status_; }

  bool answered() const { return status_ != 0; }
  bool streamed() const { return streamed_; }
  const ds::HttpResponse& response() const { return response_; }

 private:
  void check_head(const ds::HttpResponse& r) {
    if (r.status < 100 || r.status > 599) fail("status out of range: " + std::to_string(r.status));
    for (const auto& [name, value] : r.headers) {
      if (name.empty()) fail("empty response header name");
      for (std::string_view part : {std::string_view(name), std::string_view(value)}) {
        if (part.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos) {
          fail("CR/LF/NUL in response header " + printable(name) + ": " + printable(value));
        }
      }
      check_text(value, "header " + name);
    }
  }
  void check_text(std::string_view text, const std::string& where) {
    if (text.find(secret_) != std::string_view::npos) {
      fail("response " + where + " reveals the data dir: " + printable(text));
    }
  }

  const std::string& secret_;
  std::chrono::steady_clock::time_point deadline_;
  int status_ = 0;
  bool streamed_ = false;
  bool done_ = false;
  size_t streamed_bytes_ = 0;
  ds::HttpResponse response_;
};

// Builds the HttpRequest exactly as the server does from a parsed Beast message.
ds::HttpRequest to_request(http::request<http::string_body>& msg, int n) {
  ds::HttpRequest req;
  req.method = std::string(msg.method_string());
  req.target = std::string(msg.target());
  size_t q = req.target.find('?');
  req.path = req.target.substr(0, q);
  if (q != std::string::npos) req.query = req.target.substr(q + 1);
  for (const auto& f : msg) {
    std::string name(f.name_string());
    for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    req.headers.emplace_back(std::move(name), std::string(f.value()));
  }
  req.body = std::move(msg.body());
  req.keep_alive = msg.keep_alive();
  req.request_id = "req_fuzz" + std::to_string(n);
  return req;
}

// Label values of the request metrics must come from a bounded vocabulary: a label made of request
// text (an arbitrary method, a path segment) gives one new series per distinct request, forever.
bool bounded_label(std::string_view name, std::string_view value) {
  if (name == "route") {
    for (std::string_view v : {"stream", "sessions", "session", "session_events", "session_stream",
                               "session_archive", "session_export", "session_other", "search", "ops",
                               "other"}) {
      if (value == v) return true;
    }
    return false;
  }
  if (name == "method") {
    for (std::string_view v : {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "OTHER"}) {
      if (value == v) return true;
    }
    return false;
  }
  return value.size() <= 16;  // status, le
}

void check_metrics() {
  std::string text = ds::Metrics::get().render();
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) fail("/metrics does not end with a newline");
    std::string_view line(text.data() + pos, nl - pos);
    pos = nl + 1;
    if (line.empty() || line[0] == '#') continue;
    // name{label="value",...} number — label values must not contain raw quotes or newlines.
    size_t brace = line.find('{');
    size_t space = line.rfind(' ');
    if (space == std::string_view::npos) fail("/metrics line without value: " + printable(line));
    if (brace == std::string_view::npos) continue;
    bool request_metric = line.rfind("ds_http_", 0) == 0;
    size_t i = brace + 1;
    while (i < line.size() && line[i] != '}') {
      size_t eq = line.find("=\"", i);
      if (eq == std::string_view::npos) fail("/metrics malformed labels: " + printable(line));
      std::string_view name = line.substr(i, eq - i);
      for (char c : name) {
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) {
          fail("/metrics malformed label name: " + printable(line));
        }
      }
      size_t j = eq + 2;
      while (j < line.size() && line[j] != '"') {
        if (line[j] == '\\') ++j;
        ++j;
      }
      if (j >= line.size()) fail("/metrics unterminated label value: " + printable(line));
      std::string_view value = line.substr(eq + 2, j - eq - 2);
      if (request_metric && !bounded_label(name, value)) {
        fail("/metrics label " + std::string(name) + "=\"" + printable(value) +
             "\" is request text: one new series per distinct request (unbounded cardinality)");
      }
      i = j + 1;
      if (i < line.size() && line[i] == ',') ++i;
    }
    if (i + 1 != space) fail("/metrics label injection: " + printable(line));
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // spdlog's default logger would print every warning the handlers log; keep the output readable.
  setenv("SPDLOG_LEVEL", "off", 0);
  base_dir();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool allow_500 = env_flag("DS_FUZZ_ALLOW_500", false);
  static const bool check_metrics_on = env_flag("DS_FUZZ_CHECK_METRICS", true);
  static asio::io_context io;

  std::string dir = base_dir() + "/data";
  std::error_code ec_fs;
  std::filesystem::remove_all(dir, ec_fs);
  {
    World world(dir);
    std::string_view rest(reinterpret_cast<const char*>(data), size);
    for (int n = 0; n < kMaxRequests && !rest.empty(); ++n) {
      http::request_parser<http::string_body> parser;
      parser.eager(true);
      parser.header_limit(static_cast<std::uint32_t>(world.ctx.options.max_header));
      parser.body_limit(world.ctx.options.max_body);
      beast::error_code ec;
      size_t used = 0;
      while (!parser.is_done() && used < rest.size()) {
        size_t k = parser.put(asio::buffer(rest.data() + used, rest.size() - used), ec);
        used += k;
        if (ec == http::error::need_more) {
          ec = {};
          if (k == 0) break;
          continue;
        }
        if (ec || k == 0) break;
      }
      if (!ec && !parser.is_done() && parser.is_header_done()) parser.put_eof(ec);
      if (ec || !parser.is_done()) break;  // the server answers 400/413/431 without routing
      rest.remove_prefix(used);

      ds::HttpRequest req = to_request(parser.get(), n);
      auto deadline = std::chrono::steady_clock::now() + kLiveBudget;
      RecordingResponder res(world.data_dir, deadline);
      bool finished = false;
      std::exception_ptr error;
      asio::co_spawn(io, ds::route(world.ctx, req, res), [&](std::exception_ptr e) {
        finished = true;
        error = e;
      });
      io.restart();
      io.run();
      if (!finished) fail("the handler coroutine did not complete");
      if (error) {
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          fail(std::string("exception escaped the handler: ") + e.what());
        } catch (...) {
          fail("non-std exception escaped the handler");
        }
      }
      if (!res.answered()) fail("handler produced no response for " + printable(req.method) +
                                " " + printable(req.target));
      const ds::HttpResponse& r = res.response();
      if (r.status == 500 && !allow_500) {
        fail("500 for " + printable(req.method) + " " + printable(req.target) + ": " +
             printable(r.body, 400));
      }
      if (!res.streamed() && r.status >= 400) {
        const std::string* ct = r.get("content-type");
        if (ct && ct->rfind("application/json", 0) == 0) {
          boost::system::error_code jec;
          boost::json::parse(r.body, jec);
          if (jec) fail("error body is not JSON: " + printable(r.body, 400));
        }
      }
      if (!req.keep_alive) break;
    }
  }
  // Nothing may be created beside the data dir.
  for (const auto& entry : std::filesystem::directory_iterator(base_dir())) {
    if (entry.path().filename() != "data") {
      fail("a request created " + entry.path().string() + " outside the data dir");
    }
  }
  if (check_metrics_on) check_metrics();
  return 0;
}
