#pragma once

#include <chrono>
#include <mutex>

namespace ra {

/// Wall-clock time: schedules are calendar windows, and the cloud reports wall-clock times.
using TimePoint = std::chrono::system_clock::time_point;
using Duration = std::chrono::milliseconds;

/// The one source of time. The control loop reads it once per cycle and passes `now` down;
/// nothing else calls it, so tests move time by hand and never sleep.
class Clock {
 public:
  virtual ~Clock() = default;
  /// Never blocks. Thread-safe.
  virtual TimePoint Now() const = 0;
};

class SystemClock final : public Clock {
 public:
  TimePoint Now() const override { return std::chrono::system_clock::now(); }
};

/// A clock that moves only when told to. Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(TimePoint start = TimePoint{}) : now_(start) {}

  TimePoint Now() const override {
    std::lock_guard lock(mu_);
    return now_;
  }
  void Set(TimePoint t) {
    std::lock_guard lock(mu_);
    now_ = t;
  }
  void Advance(Duration d) {
    std::lock_guard lock(mu_);
    now_ += d;
  }

 private:
  mutable std::mutex mu_;
  TimePoint now_;
};

}  // namespace ra
