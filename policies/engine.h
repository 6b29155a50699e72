#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "policies/metrics_source.h"
#include "policies/spec.h"

/// The policy engine: pure functions of samples, history and time. No I/O, no clock reads.
namespace ra::policies {

/// One metric policy's input for this evaluation, reduced to a single value.
struct Reading {
  std::optional<double> value{};  ///< absent when `error` is set
  TimePoint sampled_at{};
  std::optional<Error> error{};  ///< why there is no usable value
};

/// Reduces a query answer to one Reading: an error when the query failed, returned no series,
/// more than one series (the message says to aggregate, e.g. with sum()), NaN or +/-Inf, or a
/// sample older than `max_age` at `now`. Never throws.
Reading ToReading(const Result<QueryResult>& answer, TimePoint now, Duration max_age);

/// PromQL queries the cluster's policies need, by policy name (target tracking and step
/// policies; scheduled ones need none).
std::map<std::string, std::string> Queries(const ClusterPolicy& policy);

/// A raw recommendation (after min/max, before behaviour) kept for stabilization windows.
struct Recommendation {
  TimePoint at{};
  int replicas = 0;
};

/// A change of the desired count, kept for rate limits.
struct ScaleEvent {
  TimePoint at{};
  int from = 0;
  int to = 0;
};

struct History {
  std::vector<Recommendation> recommendations{};  ///< oldest first
  std::vector<ScaleEvent> scale_events{};         ///< oldest first
};

enum class VerdictKind {
  kScaleUp,    ///< wants more replicas than now
  kScaleDown,  ///< wants fewer
  kHold,       ///< wants the current count (e.g. inside the tolerance band)
  kAbstain,    ///< has no opinion (a schedule outside its windows, a value in no step band)
  kNoData,     ///< its metric is missing; see MissingData
};

std::string_view ToString(VerdictKind kind);

struct Verdict {
  std::string policy{};
  VerdictKind kind = VerdictKind::kAbstain;
  std::optional<int> desired{};  ///< absent for kAbstain and kNoData
  std::string reason{};  ///< one sentence with the figures, e.g. "sessions per replica 42.0 >
                         ///< target 30 ±10%: 2 -> 3"
};

struct Decision {
  int current = 0;
  int recommended = 0;  ///< the largest verdict, bounded by min/max, before behaviour
  int desired = 0;      ///< what the cluster should have now
  bool override_active = false;
  std::vector<Verdict> verdicts{};  ///< every policy's, in configuration order
  std::string reason{};             ///< one sentence: why `desired`, including what behaviour did
};

struct EvaluationInput {
  int current_replicas = 0;
  std::map<std::string, Reading> readings{};  ///< by policy name; a missing entry counts as kNoData
  std::optional<ManualOverride> manual{};     ///< ignored once expired at `now`
  TimePoint now{};
};

/// Decides the desired replica count:
///  1. an unexpired manual override wins (bounded by min/max);
///  2. otherwise every policy gives a verdict and the largest desired count wins (a schedule's
///     minimum is a floor under the others: it raises the count but never holds it above that
///     minimum; with no opinion at all the count holds);
///  3. missing data holds the current count (or goes to the fallback, never below current);
///  4. the result is bounded by min/max, then by the behaviour: stabilization windows over
///     `history` and rate limits over its scale events.
Decision Evaluate(const ClusterPolicy& policy, const History& history,
                  const EvaluationInput& input);

/// `history` after `decision` was taken at `now`: the recommendation is appended, a scale event
/// is appended when desired differs from the previous desired count (the newest event's `to`;
/// `current` when there is none), and entries older than every window and period that could
/// still need them are dropped, except the newest event (so the history stays bounded).
/// Evaluate measures stabilization and rate limits from that previous desired count, as the
/// HPA does from spec.replicas, so replicas still being built neither undo nor repeat a change.
History Record(const ClusterPolicy& policy, History history, const Decision& decision,
               TimePoint now);

}  // namespace ra::policies
