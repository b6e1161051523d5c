// Per-tenant admission limits: a token-bucket request rate (429 with Retry-After) and a cap on
// concurrently open live reads (SSE and long-poll). Thread-safe.
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <unordered_map>

namespace ds {

class TenantLimits {
 public:
  // rate = requests per second per tenant (0 = unlimited); burst = bucket size.
  TenantLimits(double rate, double burst, int64_t max_live)
      : rate_(rate), burst_(burst > 0 ? burst : rate), max_live_(max_live) {}

  // True if the request may proceed; otherwise *retry_after_s says when to retry.
  bool admit(const std::string& tenant, int* retry_after_s);

  // Reserves a live-read slot; false when the tenant already has max_live open.
  bool acquire_live(const std::string& tenant);
  void release_live(const std::string& tenant);

 private:
  struct Bucket {
    double tokens;
    std::chrono::steady_clock::time_point last;
  };
  double rate_;
  double burst_;
  int64_t max_live_;
  std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;
  std::unordered_map<std::string, int64_t> live_;
};

}  // namespace ds
