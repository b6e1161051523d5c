// Metrics: process-wide counters, gauges and latency histograms, rendered in the Prometheus text
// exposition format by /metrics.
//
// Updates are lock-free for unlabelled metrics (atomics) and take one short mutex for labelled
// ones. Names follow Prometheus conventions (ds_*_total for counters, *_seconds for durations).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace ds {

class Metrics {
 public:
  static Metrics& get();

  // Request accounting: one call per finished request.
  void observe_request(const std::string& route, const std::string& method, int status,
                       double seconds);

  std::atomic<uint64_t> appends{0};          // append requests that stored data
  std::atomic<uint64_t> appended_events{0};  // messages/events stored
  std::atomic<uint64_t> appended_bytes{0};
  std::atomic<int64_t> open_sse{0};
  std::atomic<int64_t> waiting_long_polls{0};
  std::atomic<uint64_t> rate_limited{0};
  std::atomic<uint64_t> recovery_millis{0};

  // Extra gauges computed at scrape time (group commit stats, index lag, S3 lag…). `fn` appends
  // complete exposition lines (with # HELP/# TYPE) to its argument.
  void add_collector(std::function<void(std::string*)> fn);
  // Appends one metric in the Prometheus text format ("# HELP", "# TYPE", value) — for collectors.
  static void write(std::string* out, const char* name, const char* type, const char* help,
                    const std::string& value);

  std::string render();

 private:
  struct Histogram {
    std::vector<uint64_t> buckets;  // cumulative counts per bound
    uint64_t count = 0;
    double sum = 0;
  };
  std::mutex mu_;
  std::map<std::string, uint64_t> requests_;      // labels -> count
  std::map<std::string, Histogram> latency_;      // route label -> histogram
  std::vector<std::function<void(std::string*)>> collectors_;
};

// RAII gauge increment (e.g. an open SSE connection).
class GaugeGuard {
 public:
  explicit GaugeGuard(std::atomic<int64_t>& g) : g_(g) { ++g_; }
  ~GaugeGuard() { --g_; }
  GaugeGuard(const GaugeGuard&) = delete;
  GaugeGuard& operator=(const GaugeGuard&) = delete;

 private:
  std::atomic<int64_t>& g_;
};

}  // namespace ds
