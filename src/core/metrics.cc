#include "core/metrics.h"

#include <cstdio>

namespace ds {

namespace {
constexpr double kBounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                              0.1,    0.25,  0.5,    1,     2.5,  5,     10};
constexpr size_t kNumBounds = sizeof(kBounds) / sizeof(kBounds[0]);
}  // namespace

Metrics& Metrics::get() {
  static Metrics m;
  return m;
}

void Metrics::observe_request(const std::string& route, const std::string& method, int status,
                              double seconds) {
  std::string labels = "route=\"" + route + "\",method=\"" + method + "\",status=\"" +
                       std::to_string(status) + "\"";
  std::lock_guard lk(mu_);
  requests_[labels]++;
  Histogram& h = latency_[route];
  if (h.buckets.empty()) h.buckets.assign(kNumBounds, 0);
  for (size_t i = 0; i < kNumBounds; ++i) {
    if (seconds <= kBounds[i]) h.buckets[i]++;
  }
  h.count++;
  h.sum += seconds;
}

void Metrics::write(std::string* out, const char* name, const char* type, const char* help,
                    const std::string& value) {
  *out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" +
          name + " " + value + "\n";
}

void Metrics::add_collector(std::function<void(std::string*)> fn) {
  std::lock_guard lk(mu_);
  collectors_.push_back(std::move(fn));
}

std::string Metrics::render() {
  std::string out;
  auto counter = [&](const char* name, const char* help, uint64_t v) {
    write(&out, name, "counter", help, std::to_string(v));
  };
  auto gauge = [&](const char* name, const char* help, int64_t v) {
    write(&out, name, "gauge", help, std::to_string(v));
  };
  counter("ds_appends_total", "Append requests that stored data.", appends.load());
  counter("ds_appended_events_total", "Events/messages stored.", appended_events.load());
  counter("ds_appended_bytes_total", "Bytes of events/messages stored.", appended_bytes.load());
  counter("ds_rate_limited_total", "Requests refused with 429.", rate_limited.load());
  gauge("ds_open_sse_connections", "SSE responses being streamed.", open_sse.load());
  gauge("ds_waiting_long_polls", "Long-poll requests waiting for data.", waiting_long_polls.load());
  gauge("ds_recovery_milliseconds", "Time start-up recovery took.",
        static_cast<int64_t>(recovery_millis.load()));
  std::vector<std::function<void(std::string*)>> collectors;
  {
    std::lock_guard lk(mu_);
    out += "# HELP ds_http_requests_total HTTP requests by route, method and status.\n";
    out += "# TYPE ds_http_requests_total counter\n";
    for (const auto& [labels, n] : requests_) {
      out += "ds_http_requests_total{" + labels + "} " + std::to_string(n) + "\n";
    }
    out += "# HELP ds_http_request_duration_seconds HTTP request latency by route.\n";
    out += "# TYPE ds_http_request_duration_seconds histogram\n";
    char buf[64];
    for (const auto& [route, h] : latency_) {
      for (size_t i = 0; i < kNumBounds; ++i) {
        std::snprintf(buf, sizeof buf, "%g", kBounds[i]);
        out += "ds_http_request_duration_seconds_bucket{route=\"" + route + "\",le=\"" + buf +
               "\"} " + std::to_string(h.buckets[i]) + "\n";
      }
      out += "ds_http_request_duration_seconds_bucket{route=\"" + route + "\",le=\"+Inf\"} " +
             std::to_string(h.count) + "\n";
      std::snprintf(buf, sizeof buf, "%.6f", h.sum);
      out += "ds_http_request_duration_seconds_sum{route=\"" + route + "\"} " + buf + "\n";
      out += "ds_http_request_duration_seconds_count{route=\"" + route + "\"} " +
             std::to_string(h.count) + "\n";
    }
    collectors = collectors_;
  }
  for (auto& c : collectors) c(&out);
  return out;
}

}  // namespace ds
