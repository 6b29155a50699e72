#include "core/rate_limiter.h"

#include <algorithm>
#include <chrono>

namespace ra {

RateLimiter::RateLimiter(double rate_per_second, int burst, const Clock& clock, Sleeper& sleeper)
    : rate_(rate_per_second),
      burst_(std::max(1, burst)),
      clock_(clock),
      sleeper_(sleeper),
      tokens_(burst_),
      last_(clock.Now()) {}

void RateLimiter::RefillLocked() {
  const TimePoint now = clock_.Now();
  if (now > last_) {
    const double elapsed = std::chrono::duration<double>(now - last_).count();
    tokens_ = std::min(burst_, tokens_ + elapsed * rate_);
    last_ = now;
  }
}

bool RateLimiter::TryAcquire() {
  if (rate_ <= 0) return true;
  std::lock_guard lock(mu_);
  RefillLocked();
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

void RateLimiter::Acquire() {
  if (rate_ <= 0) return;
  Duration wait(0);
  {
    std::lock_guard lock(mu_);
    RefillLocked();
    tokens_ -= 1;  // reserve now; a negative balance is the debt later callers also wait for
    if (tokens_ < 0) {
      wait = Duration(static_cast<Duration::rep>(-tokens_ / rate_ * 1000.0 + 0.999));
    }
  }
  sleeper_.SleepFor(wait);
}

}  // namespace ra
