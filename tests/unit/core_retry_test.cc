// Retry helpers in core/: backoff with jitter and the token-bucket rate limiter, on a FakeClock.

#include <gtest/gtest.h>

#include <algorithm>

#include "core/backoff.h"
#include "core/rate_limiter.h"
#include "testing/fake_sleeper.h"

namespace ra {
namespace {

using namespace std::chrono_literals;
using testing::FakeSleeper;

TEST(Backoff, ExponentialCappedWithEqualJitter) {
  const Duration initial = 1s;
  const Duration max = 5s;
  EXPECT_EQ(BackoffDelay(initial, max, 2, 0.0), 500ms);
  EXPECT_EQ(BackoffDelay(initial, max, 2, 0.999), 999ms);
  EXPECT_EQ(BackoffDelay(initial, max, 3, 0.0), 1s);
  EXPECT_EQ(BackoffDelay(initial, max, 4, 0.5), 3s);
  EXPECT_EQ(BackoffDelay(initial, max, 10, 0.0), 2500ms);
  EXPECT_EQ(BackoffDelay(initial, max, 10, 1.0), 5s);
}

TEST(RateLimiter, BurstThenOneTokenPerInterval) {
  FakeClock clock(TimePoint{} + std::chrono::hours(24 * 365 * 56));  // ~2026
  FakeSleeper sleeper(clock);
  RateLimiter limiter(2.0, 3, clock, sleeper);
  for (int i = 0; i < 3; ++i) limiter.Acquire();
  EXPECT_TRUE(std::all_of(sleeper.sleeps.begin(), sleeper.sleeps.end(),
                          [](Duration d) { return d == Duration(0); }));
  limiter.Acquire();
  EXPECT_EQ(sleeper.sleeps.back(), 500ms);
  limiter.Acquire();
  EXPECT_EQ(sleeper.sleeps.back(), 500ms);
  clock.Advance(10s);  // refills to the burst, not beyond
  for (int i = 0; i < 3; ++i) limiter.Acquire();
  EXPECT_EQ(sleeper.sleeps.back(), Duration(0));
  limiter.Acquire();
  EXPECT_EQ(sleeper.sleeps.back(), 500ms);
}

TEST(RateLimiter, TryAcquireTakesOnlyAFreeTokenAndNeverSleeps) {
  FakeClock clock(TimePoint{} + std::chrono::hours(24 * 365 * 56));
  FakeSleeper sleeper(clock);
  RateLimiter limiter(2.0, 2, clock, sleeper);
  EXPECT_TRUE(limiter.TryAcquire());
  EXPECT_TRUE(limiter.TryAcquire());
  EXPECT_FALSE(limiter.TryAcquire());  // the burst is spent
  clock.Advance(499ms);
  EXPECT_FALSE(limiter.TryAcquire());
  clock.Advance(1ms);  // one token grown in 500 ms
  EXPECT_TRUE(limiter.TryAcquire());
  EXPECT_TRUE(sleeper.sleeps.empty());
  // A refused try takes nothing: a waiting Acquire right after it does not wait longer.
  EXPECT_FALSE(limiter.TryAcquire());
  limiter.Acquire();
  EXPECT_EQ(sleeper.sleeps.back(), 500ms);
}

}  // namespace
}  // namespace ra
