// ServeOptions: every flag of `durable-sessions serve`, with its documented default. Each flag can
// also be given as an environment variable DURABLE_SESSIONS_<FLAG> (upper case, '-' -> '_').
#pragma once

#include <cstdint>
#include <string>

namespace ds {

struct ServeOptions {
  std::string listen = "127.0.0.1:4437";
  std::string data_dir = "./data";
  double long_poll_timeout = 30;     // seconds
  uint64_t max_body = 8ull << 20;    // bytes
  uint64_t max_events_per_request = 10000;
  uint64_t max_connections = 10000;
  uint64_t max_header = 16u << 10;
  int idle_timeout = 120;            // seconds
  double sse_heartbeat = 15;         // seconds
  double sse_max_duration = 60;      // seconds
  int threads = 0;                   // 0 = one per core
  std::string log_level = "info";
  bool allow_unauthenticated = false;
  double rate_limit = 0;             // requests/s per tenant (0 = unlimited)
  double rate_burst = 0;             // token-bucket size (0 = same as rate)
  int64_t max_live_per_tenant = 10000;  // open SSE + long-poll reads per tenant
  uint64_t max_url = 8192;           // bytes of request target (414 beyond)
  uint64_t max_sessions_per_tenant = 1000000;
  bool access_log = true;            // one JSON line per request on stdout
};

}  // namespace ds
