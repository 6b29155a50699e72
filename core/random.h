#pragma once

#include <functional>

namespace ra {

/// A uniform number in [0, 1). Injected so that jitter and random choices are reproducible in
/// tests.
using RandomSource = std::function<double()>;

/// A RandomSource over a process-wide generator seeded from std::random_device; thread-safe.
RandomSource DefaultRandomSource();

}  // namespace ra
