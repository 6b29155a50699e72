#pragma once

#include <functional>
#include <mutex>

#include "core/clock.h"
#include "openstack/options.h"

namespace ra::openstack {

/// Waits. The real one sleeps the calling thread; tests use one that moves a FakeClock, so
/// retry and rate-limit code never sleeps in a unit test.
class Sleeper {
 public:
  virtual ~Sleeper() = default;
  /// Blocks the calling thread for `d` (returns at once for d <= 0). Thread-safe.
  virtual void SleepFor(Duration d) = 0;
};

class RealSleeper final : public Sleeper {
 public:
  void SleepFor(Duration d) override;
};

/// A uniform number in [0, 1). Injected so that jitter is reproducible in tests.
using RandomSource = std::function<double()>;

/// A RandomSource over a process-wide seeded generator; thread-safe.
RandomSource DefaultRandomSource();

/// The wait before attempt `attempt` (2 for the first retry): initial_backoff doubled per
/// attempt, capped at max_backoff, then "equal jitter": uniformly within [d/2, d).
Duration BackoffDelay(const RetryOptions& options, int attempt, double random01);

/// A token bucket over all requests of one client: `rate` per second, `burst` at once.
/// Acquire() blocks (through the Sleeper) until a token is free. Thread-safe.
class RateLimiter {
 public:
  RateLimiter(double rate_per_second, int burst, const Clock& clock, Sleeper& sleeper);
  /// Takes one token, waiting for it if needed. Never fails; with rate <= 0 it never waits.
  void Acquire();

 private:
  const double rate_;
  const double burst_;
  const Clock& clock_;
  Sleeper& sleeper_;
  std::mutex mu_;
  double tokens_;
  TimePoint last_;
};

}  // namespace ra::openstack
