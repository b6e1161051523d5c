#include "cli/serve.h"

#include <sys/resource.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <chrono>
#include <thread>

#include <spdlog/async.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "core/metrics.h"

#include "api/context.h"
#include "api/router.h"
#include "core/session_store.h"
#include "core/stream_store.h"
#include "store/api_keys.h"
#include "http/server.h"
#include "store/catalog.h"
#include "store/fs.h"
#include "store/group_commit.h"

namespace ds {

namespace {
void raise_fd_limit() {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

bool is_loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "::1" || host == "localhost" || host.rfind("127.", 0) == 0;
}
}  // namespace

int run_serve(const ServeOptions& o) {
  spdlog::set_level(spdlog::level::from_str(o.log_level));
  raise_fd_limit();

  ServerOptions so;
  size_t colon = o.listen.rfind(':');
  if (colon == std::string::npos) {
    spdlog::error("--listen must be HOST:PORT, got '{}'", o.listen);
    return 2;
  }
  so.host = o.listen.substr(0, colon);
  if (so.host.size() > 2 && so.host.front() == '[') so.host = so.host.substr(1, so.host.size() - 2);
  so.port = static_cast<uint16_t>(std::stoi(o.listen.substr(colon + 1)));
  so.max_body = o.max_body;
  so.max_header = o.max_header;
  so.max_connections = o.max_connections;
  so.idle_timeout = std::chrono::seconds(o.idle_timeout);
  so.threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  auto started = std::chrono::steady_clock::now();
  Fs* fs = Fs::posix();
  if (Status s = fs->create_dirs(o.data_dir + "/streams"); !s) {
    spdlog::error("cannot create data dir: {}", s.message());
    return 1;
  }
  std::unique_ptr<Catalog> catalog;
  if (Status s = Catalog::open(o.data_dir + "/catalog.db", &catalog); !s) {
    spdlog::error("cannot open catalog: {}", s.message());
    return 1;
  }
  GroupCommit commit;
  StreamStore::Options sto;
  sto.data_dir = o.data_dir;
  sto.fs = fs;
  StreamStore streams(sto, catalog.get(), &commit);
  if (Status s = streams.open(); !s) {
    spdlog::error("cannot open stream store: {}", s.message());
    return 1;
  }

  SessionStore sessions(catalog.get(), &streams);
  if (Status s = sessions.open(); !s) {
    spdlog::error("cannot open session store: {}", s.message());
    return 1;
  }
  ApiKeys keys(catalog.get());

  TenantLimits limits(o.rate_limit, o.rate_burst, o.max_live_per_tenant);
  Metrics::get().add_collector([&commit](std::string* out) {
    auto st = commit.stats();
    *out += "# HELP ds_fsync_total fdatasync calls made by the group commit.\n"
            "# TYPE ds_fsync_total counter\nds_fsync_total " + std::to_string(st.syncs) + "\n";
    *out += "# HELP ds_group_commit_batches_total Group-commit batches.\n"
            "# TYPE ds_group_commit_batches_total counter\nds_group_commit_batches_total " +
            std::to_string(st.batches) + "\n";
    *out += "# HELP ds_group_commit_requests_total Appends made durable by the group commit.\n"
            "# TYPE ds_group_commit_requests_total counter\nds_group_commit_requests_total " +
            std::to_string(st.requests) + "\n";
  });

  ApiContext ctx;
  ctx.limits = &limits;
  if (o.access_log && spdlog::get_level() <= spdlog::level::info) {
    spdlog::init_thread_pool(16384, 1);
    ctx.access_log = spdlog::create_async_nb<spdlog::sinks::stdout_sink_mt>("access");
    ctx.access_log->set_pattern("%v");
  }
  ctx.streams = &streams;
  ctx.sessions = &sessions;
  ctx.keys = &keys;
  ctx.catalog = catalog.get();
  ctx.options = o;
  if (!keys.any_active()) {
    if (!is_loopback(so.host) && !o.allow_unauthenticated) {
      spdlog::error("no API keys exist: refusing to run open on non-loopback address {}. Create a "
                    "key with `durable-sessions keys create --data-dir {} --tenant NAME`, or pass "
                    "--allow-unauthenticated",
                    so.host, o.data_dir);
      return 2;
    }
    spdlog::warn("NO API KEYS: running OPEN — every request acts as tenant 'default'. Create a key "
                 "with `durable-sessions keys create --data-dir {} --tenant NAME`",
                 o.data_dir);
  }

  HttpServer server(so, [&ctx](HttpRequest& req, Responder& res) { return route(ctx, req, res); });
  server.set_on_shutdown([&] {
    ctx.shutting_down = true;
    streams.wake_all();
  });
  if (Status s = server.listen(); !s) {
    spdlog::error("{}", s.message());
    return 1;
  }
  ctx.ready = true;
  Metrics::get().recovery_millis = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started).count();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  started).count();
  spdlog::info("durable-sessions listening on {}:{} (data dir {}, {} streams, ready in {} ms)",
               so.host, server.port(), o.data_dir, streams.size(), ms);

  boost::asio::signal_set signals(server.io(), SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("signal {}: shutting down gracefully", sig);
    server.stop();
  });
  server.run();
  spdlog::info("stopped");
  return 0;
}

}  // namespace ds
