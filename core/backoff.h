#pragma once

#include "core/clock.h"

namespace ra {

/// The wait before attempt `attempt` (2 for the first retry): `initial` doubled per attempt,
/// capped at `max`, then "equal jitter": uniformly within [d/2, d) for `random01` in [0, 1).
/// 0 for attempt < 2. Pure.
Duration BackoffDelay(Duration initial, Duration max, int attempt, double random01);

}  // namespace ra
