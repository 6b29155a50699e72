#pragma once

#include "core/clock.h"

namespace ra {

/// Waits. The real one sleeps the calling thread; tests use one that moves a FakeClock
/// (testing/fake_sleeper.h), so retry, poll and rate-limit code never sleeps in a unit test.
class Sleeper {
 public:
  virtual ~Sleeper() = default;
  /// Blocks the calling thread for `d` (returns at once for d <= 0). Thread-safe.
  virtual void SleepFor(Duration d) = 0;
};

class RealSleeper final : public Sleeper {
 public:
  void SleepFor(Duration d) override;
  /// A process-wide RealSleeper, for callers given no sleeper of their own.
  static RealSleeper& Instance();
};

}  // namespace ra
