#include "core/random.h"

#include <mutex>
#include <random>

namespace ra {

RandomSource DefaultRandomSource() {
  struct Shared {
    std::mutex mu;
    std::mt19937_64 engine{std::random_device{}()};
  };
  static Shared shared;
  return [] {
    std::lock_guard lock(shared.mu);
    return std::uniform_real_distribution<double>(0.0, 1.0)(shared.engine);
  };
}

}  // namespace ra
