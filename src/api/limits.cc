#include "api/limits.h"

#include <cmath>

namespace ds {

bool TenantLimits::admit(const std::string& tenant, int* retry_after_s) {
  if (rate_ <= 0) return true;
  auto now = std::chrono::steady_clock::now();
  std::lock_guard lk(mu_);
  auto [it, fresh] = buckets_.try_emplace(tenant, Bucket{burst_, now});
  Bucket& b = it->second;
  double elapsed = std::chrono::duration<double>(now - b.last).count();
  b.tokens = std::min(burst_, b.tokens + elapsed * rate_);
  b.last = now;
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return true;
  }
  *retry_after_s = std::max(1, static_cast<int>(std::ceil((1 - b.tokens) / rate_)));
  return false;
}

bool TenantLimits::acquire_live(const std::string& tenant) {
  std::lock_guard lk(mu_);
  int64_t& n = live_[tenant];
  if (max_live_ > 0 && n >= max_live_) return false;
  ++n;
  return true;
}

void TenantLimits::release_live(const std::string& tenant) {
  std::lock_guard lk(mu_);
  if (--live_[tenant] <= 0) live_.erase(tenant);
}

}  // namespace ds
