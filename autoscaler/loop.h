#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

#include "core/clock.h"

namespace ra::autoscaler {

/// Runs a cycle once per interval (plus up to `jitter`), or earlier when one is requested, on a
/// thread of its own. Thread-safe.
class Loop {
 public:
  /// `random` draws the jitter; `cycle` is one whole cycle (it must not throw).
  Loop(Duration interval, Duration jitter, std::function<uint32_t()> random,
       std::function<void()> cycle);
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  /// Cycles until Stop: the cycle, then a wait for the interval (plus jitter), a request or Stop.
  /// Cycles begin at least kMinGap apart, so a burst of requests makes one early cycle, never a
  /// busy loop. Blocks; see Start.
  void Run();
  /// Run() on a thread of its own. Once; not after Stop.
  void Start();
  /// Ends the loop after the cycle in progress and joins its thread. Idempotent.
  void Stop();
  /// Asks for a cycle now (or as soon as kMinGap allows).
  void Trigger();
  /// A cycle was requested since the loop last began one.
  bool Requested() const;

  static constexpr Duration kMinGap = std::chrono::milliseconds(250);

 private:
  const Duration interval_;
  const Duration jitter_;
  std::function<uint32_t()> random_;
  std::function<void()> cycle_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_requested_ = false;
  bool triggered_ = false;
  bool stopped_ = false;
  std::thread thread_;
};

}  // namespace ra::autoscaler
