#pragma once

#include <mutex>

#include "core/clock.h"
#include "core/sleeper.h"

namespace ra {

/// A token bucket over all requests of one client: `rate` per second, `burst` at once.
/// Acquire() blocks (through the Sleeper) until a token is free. Thread-safe.
class RateLimiter {
 public:
  /// `clock` and `sleeper` must outlive the limiter.
  RateLimiter(double rate_per_second, int burst, const Clock& clock, Sleeper& sleeper);
  /// Takes one token, waiting for it if needed. Never fails; with rate <= 0 it never waits.
  void Acquire();
  /// Takes one token only if one is free now, never waiting: for work that can come back later
  /// (polls between cycles) and must not hold up the calls that wait. True when taken.
  bool TryAcquire();

 private:
  void RefillLocked();

  const double rate_;
  const double burst_;
  const Clock& clock_;
  Sleeper& sleeper_;
  std::mutex mu_;
  double tokens_;
  TimePoint last_;
};

}  // namespace ra
