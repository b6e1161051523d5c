#include "cli/cli.h"

#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/serve.h"
#include "cli/serve_options.h"

namespace ds {

int run_cli(int argc, char** argv) {
  CLI::App app{"durable-sessions: a durable, searchable session store for AI agents"};
  app.require_subcommand(1);

  ServeOptions o;
  auto* serve = app.add_subcommand("serve", "Run the HTTP server on the embedded store");
  auto env = [](const char* name) { return std::string("DURABLE_SESSIONS_") + name; };
  serve->add_option("--listen", o.listen, "HOST:PORT to listen on")
      ->envname(env("LISTEN"))->capture_default_str();
  serve->add_option("--data-dir", o.data_dir, "Directory holding the logs and the catalog")
      ->envname(env("DATA_DIR"))->capture_default_str();
  serve->add_option("--long-poll-timeout", o.long_poll_timeout,
                    "Seconds a long-poll read waits for new data before answering 204")
      ->envname(env("LONG_POLL_TIMEOUT"))->capture_default_str();
  serve->add_option("--max-body", o.max_body, "Largest request body in bytes (else 413)")
      ->envname(env("MAX_BODY"))->capture_default_str();
  serve->add_option("--max-events-per-request", o.max_events_per_request,
                    "Most events one append may carry (else 400)")
      ->envname(env("MAX_EVENTS_PER_REQUEST"))->capture_default_str();
  serve->add_option("--max-connections", o.max_connections,
                    "Most simultaneously open connections (extra ones get 503)")
      ->envname(env("MAX_CONNECTIONS"))->capture_default_str();
  serve->add_option("--max-header", o.max_header, "Largest request header block in bytes (431)")
      ->envname(env("MAX_HEADER"))->capture_default_str();
  serve->add_option("--idle-timeout", o.idle_timeout,
                    "Seconds before an idle or too-slow connection is closed")
      ->envname(env("IDLE_TIMEOUT"))->capture_default_str();
  serve->add_option("--sse-heartbeat", o.sse_heartbeat, "Seconds between SSE keep-alive comments")
      ->envname(env("SSE_HEARTBEAT"))->capture_default_str();
  serve->add_option("--sse-max-duration", o.sse_max_duration,
                    "Seconds after which an SSE connection is recycled (clients resume by offset)")
      ->envname(env("SSE_MAX_DURATION"))->capture_default_str();
  serve->add_option("--threads", o.threads, "I/O threads (0 = one per core)")
      ->envname(env("THREADS"))->capture_default_str();
  serve->add_option("--log-level", o.log_level, "trace|debug|info|warn|error|off")
      ->envname(env("LOG_LEVEL"))->capture_default_str();
  serve->add_flag("--allow-unauthenticated", o.allow_unauthenticated,
                  "Allow open mode (no API keys) on a non-loopback address")
      ->envname(env("ALLOW_UNAUTHENTICATED"));

  CLI11_PARSE(app, argc, argv);
  if (serve->parsed()) return run_serve(o);
  return 0;
}

}  // namespace ds
