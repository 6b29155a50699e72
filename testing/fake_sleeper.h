#pragma once

#include <vector>

#include "core/clock.h"
#include "core/sleeper.h"

namespace ra::testing {

/// A Sleeper that records every wait and moves a FakeClock instead of sleeping. Not thread-safe:
/// for single-threaded unit tests.
class FakeSleeper final : public Sleeper {
 public:
  explicit FakeSleeper(FakeClock& clock) : clock_(clock) {}
  void SleepFor(Duration d) override {
    sleeps.push_back(d);
    if (d > Duration(0)) {
      clock_.Advance(d);
      slept += d;
    }
  }
  std::vector<Duration> sleeps;  ///< every wait asked for, in order
  Duration slept{0};             ///< their sum (waits <= 0 count as none)

 private:
  FakeClock& clock_;
};

}  // namespace ra::testing
