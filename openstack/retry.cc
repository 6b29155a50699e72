#include "openstack/retry.h"

#include <algorithm>
#include <random>
#include <thread>

namespace ra::openstack {

void RealSleeper::SleepFor(Duration d) {
  if (d > Duration(0)) std::this_thread::sleep_for(d);
}

RandomSource DefaultRandomSource() {
  struct Shared {
    std::mutex mu;
    std::mt19937_64 engine{std::random_device{}()};
  };
  static Shared shared;
  return [] {
    std::lock_guard lock(shared.mu);
    return std::uniform_real_distribution<double>(0.0, 1.0)(shared.engine);
  };
}

Duration BackoffDelay(const RetryOptions& options, int attempt, double random01) {
  if (attempt < 2) return Duration(0);
  const double base = static_cast<double>(options.initial_backoff.count());
  const double cap = static_cast<double>(options.max_backoff.count());
  double d = base;
  for (int i = 2; i < attempt && d < cap; ++i) d *= 2;
  d = std::min(d, cap);
  random01 = std::clamp(random01, 0.0, 1.0);
  // Equal jitter: never less than half the step (so backoff still grows), spread over the rest
  // so that many clients failing together do not retry together.
  return Duration(static_cast<Duration::rep>(d / 2 + d / 2 * random01));
}

RateLimiter::RateLimiter(double rate_per_second, int burst, const Clock& clock, Sleeper& sleeper)
    : rate_(rate_per_second),
      burst_(std::max(1, burst)),
      clock_(clock),
      sleeper_(sleeper),
      tokens_(burst_),
      last_(clock.Now()) {}

void RateLimiter::Acquire() {
  if (rate_ <= 0) return;
  Duration wait(0);
  {
    std::lock_guard lock(mu_);
    const TimePoint now = clock_.Now();
    if (now > last_) {
      const double elapsed = std::chrono::duration<double>(now - last_).count();
      tokens_ = std::min(burst_, tokens_ + elapsed * rate_);
      last_ = now;
    }
    tokens_ -= 1;  // reserve now; a negative balance is the debt later callers also wait for
    if (tokens_ < 0) {
      wait = Duration(static_cast<Duration::rep>(-tokens_ / rate_ * 1000.0 + 0.999));
    }
  }
  sleeper_.SleepFor(wait);
}

}  // namespace ra::openstack
