#include "autoscaler/zone_latency.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace ra::autoscaler {

namespace {

double MedianOf(const std::deque<double>& window) {
  std::vector<double> sorted(window.begin(), window.end());
  std::sort(sorted.begin(), sorted.end());
  const size_t n = sorted.size();
  return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

}  // namespace

ZoneLatency::ZoneLatency(size_t samples) : samples_(std::max<size_t>(1, samples)) {}

void ZoneLatency::Add(const std::string& zone, double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return;
  std::deque<double>& window = windows_[zone];
  window.push_back(seconds);
  while (window.size() > samples_) window.pop_front();
}

std::optional<double> ZoneLatency::Median(const std::string& zone) const {
  auto it = windows_.find(zone);
  if (it == windows_.end() || it->second.empty()) return std::nullopt;
  return MedianOf(it->second);
}

std::map<std::string, double> ZoneLatency::Medians() const {
  std::map<std::string, double> out;
  for (const auto& [zone, window] : windows_) {
    if (!window.empty()) out.emplace(zone, MedianOf(window));
  }
  return out;
}

void ZoneLatency::Forget(const std::string& zone) { windows_.erase(zone); }

}  // namespace ra::autoscaler
