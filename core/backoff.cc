#include "core/backoff.h"

#include <algorithm>

namespace ra {

Duration BackoffDelay(Duration initial, Duration max, int attempt, double random01) {
  if (attempt < 2) return Duration(0);
  const double base = static_cast<double>(initial.count());
  const double cap = static_cast<double>(max.count());
  double d = base;
  for (int i = 2; i < attempt && d < cap; ++i) d *= 2;
  d = std::min(d, cap);
  random01 = std::clamp(random01, 0.0, 1.0);
  // Equal jitter: never less than half the step (so backoff still grows), spread over the rest
  // so that many clients failing together do not retry together.
  return Duration(static_cast<Duration::rep>(d / 2 + d / 2 * random01));
}

}  // namespace ra
