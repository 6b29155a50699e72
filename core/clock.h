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

/// Wall-clock time that never jumps: the wall clock read once at construction, plus the
/// monotonic time elapsed since. For deadlines that must not move with an NTP step (the ha lease:
/// a leader whose clock went back would believe it still leads). Thread-safe.
class MonotonicClock final : public Clock {
 public:
  TimePoint Now() const override {
    return start_wall_ + std::chrono::duration_cast<TimePoint::duration>(
                             std::chrono::steady_clock::now() - start_steady_);
  }

 private:
  const TimePoint start_wall_ = std::chrono::system_clock::now();
  const std::chrono::steady_clock::time_point start_steady_ = std::chrono::steady_clock::now();
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
