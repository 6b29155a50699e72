#include "core/sleeper.h"

#include <thread>

namespace ra {

void RealSleeper::SleepFor(Duration d) {
  if (d > Duration(0)) std::this_thread::sleep_for(d);
}

RealSleeper& RealSleeper::Instance() {
  static RealSleeper sleeper;
  return sleeper;
}

}  // namespace ra
