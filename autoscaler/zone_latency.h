#pragma once

#include <cstddef>
#include <deque>
#include <map>
#include <optional>
#include <string>

/// Per-zone latency to the primary over a sliding window of samples.
namespace ra::autoscaler {

/// The last `samples` round trips to the primary seen from each zone, and their median. Pure: no
/// clock, no I/O; the loop adds one sample per replica per cycle (a replica's
/// ReplicaProbe::ReplicationLatencies value under its zone), so a zone with several replicas
/// fills its window faster, and a zone whose replicas stop reporting keeps its last samples.
/// Not thread-safe: the loop owns it.
class ZoneLatency {
 public:
  /// `samples`: the window per zone, at least 1 (0 is taken as 1).
  explicit ZoneLatency(size_t samples = 10);

  /// Appends `seconds` to `zone`'s window, dropping the oldest sample beyond the window. A
  /// negative or non-finite value is ignored (it is not a measurement).
  void Add(const std::string& zone, double seconds);

  /// The median of `zone`'s window (the mean of the two middle samples for an even count);
  /// empty when the zone has no sample.
  std::optional<double> Median(const std::string& zone) const;

  /// Median() of every zone with at least one sample.
  std::map<std::string, double> Medians() const;

  /// Forgets `zone`'s samples (e.g. a zone no longer configured).
  void Forget(const std::string& zone);

  size_t samples() const { return samples_; }

 private:
  size_t samples_;
  std::map<std::string, std::deque<double>> windows_;
};

}  // namespace ra::autoscaler
