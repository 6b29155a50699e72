#include "autoscaler/loop.h"

namespace ra::autoscaler {

Loop::Loop(Duration interval, Duration jitter, std::function<uint32_t()> random,
           std::function<void()> cycle)
    : interval_(interval), jitter_(jitter), random_(std::move(random)), cycle_(std::move(cycle)) {}

Loop::~Loop() { Stop(); }

void Loop::Run() {
  std::unique_lock lock(mu_);
  while (!stop_requested_) {
    triggered_ = false;
    const auto began = std::chrono::steady_clock::now();
    lock.unlock();
    cycle_();
    Duration wait = interval_;
    if (jitter_.count() > 0) {
      const uint64_t r = random_();
      wait += Duration(static_cast<int64_t>(r % (static_cast<uint64_t>(jitter_.count()) + 1)));
    }
    lock.lock();
    cv_.wait_for(lock, wait, [this] { return stop_requested_ || triggered_; });
    // Four admits finishing together (or a burst of API calls) make one early cycle: requests
    // that arrive meanwhile are folded into it, and whatever requests cycles, they never begin
    // closer than kMinGap.
    cv_.wait_until(lock, began + kMinGap, [this] { return stop_requested_; });
  }
}

void Loop::Start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable() || stopped_) return;
  thread_ = std::thread([this] { Run(); });
}

void Loop::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_requested_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
  std::lock_guard lock(mu_);
  stopped_ = true;
}

void Loop::Trigger() {
  {
    std::lock_guard lock(mu_);
    triggered_ = true;
  }
  cv_.notify_all();
}

bool Loop::Requested() const {
  std::lock_guard lock(mu_);
  return triggered_;
}

}  // namespace ra::autoscaler
