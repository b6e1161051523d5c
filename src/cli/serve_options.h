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
};

}  // namespace ds
