#include "policies/engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/duration.h"
#include "policies/schedule.h"

// Choices where engine.h leaves room (the tests pin each one):
// - Behaviour measures from the previous desired count (the baseline), not from the replicas
//   that exist; "hold" keeps max(current, baseline), so replicas still being built are neither
//   cancelled by missing data or silence nor counted twice by rate limits.
// - Target tracking skips the tolerance band at 0 replicas (any demand needs one). kTotal's band
//   compares value / (target * current), the utilisation, as kPerReplica's does.
// - Percent changes and percent rate limits move at least one replica, rounding away from zero.
// - Rate limits count events strictly inside (now - period, now]; stabilization windows likewise.
//   The count at the start of a period is baseline - added + removed within it.
// - Missing data: never below min(current, max_replicas); max_replicas still wins.
// - Bounds apply to the recommendation and again after behaviour (like the HPA).
namespace ra::policies {

namespace {

// A bad metric can ask for any number of replicas; capping before converting keeps the
// double -> int conversion defined and the arithmetic on counts far from overflow.
constexpr double kMaxCount = 1'000'000;
// Slack for floating-point noise at exact boundaries: 33.0 / 30 - 1 is 0.10000000000000009 and
// 10 * 30 / 100 is 3.0000000000000004, and neither should leave a tolerance band or round up.
constexpr double kEpsilon = 1e-9;

int ToCount(double x) {
  if (!(x > 0)) return 0;  // also NaN
  if (x > kMaxCount) return static_cast<int>(kMaxCount);
  return static_cast<int>(x);
}

int CeilCount(double x) { return ToCount(std::ceil(x - kEpsilon)); }

// "the sample is 6m old (max_age 5m)" when `sampled` is more than `max_age` before `now`.
// Compares before subtracting: a wild timestamp must not overflow the clock's arithmetic.
std::optional<std::string> Staleness(TimePoint sampled, TimePoint now, Duration max_age) {
  if (!(sampled < now - max_age)) return std::nullopt;
  constexpr auto kLongAgo = std::chrono::hours(24 * 365 * 10);
  const std::string age = sampled < now - kLongAgo
                              ? std::string("more than 10 years")
                              : FormatDuration(std::chrono::duration_cast<Duration>(now - sampled));
  return fmt::format("the sample is {} old (max_age {})", age, FormatDuration(max_age));
}

// Figures in reasons: "42.0", "0.0125", "1250".
std::string Num(double v) {
  if (!std::isfinite(v)) return fmt::format("{}", v);
  const double a = std::fabs(v);
  if (a >= 100) return fmt::format("{:.0f}", v);
  if (a >= 1 || a == 0) return fmt::format("{:.1f}", v);
  return fmt::format("{:.3g}", v);
}

std::string Percent(double fraction) { return fmt::format("{:g}%", fraction * 100); }

std::string Replicas(int n) { return fmt::format("{} replica{}", n, n == 1 ? "" : "s"); }

VerdictKind KindFor(int desired, int current) {
  if (desired > current) return VerdictKind::kScaleUp;
  if (desired < current) return VerdictKind::kScaleDown;
  return VerdictKind::kHold;
}

std::string Arrow(int current, int desired) {
  if (desired == current) return fmt::format("hold at {}", current);
  return fmt::format("{} -> {}", current, desired);
}

// A verdict plus what the decision's sentence needs about it.
struct Opinion {
  Verdict verdict;
  std::string why;           // the figures, short: "42.0 per replica > target 30 ±10%"
  std::optional<int> floor;  // schedules: "at least this many", not a wish to shrink
};

Opinion Abstain(const std::string& name, std::string reason) {
  Opinion o;
  o.verdict = Verdict{name, VerdictKind::kAbstain, std::nullopt, reason};
  o.why = std::move(reason);
  return o;
}

Opinion Wish(const std::string& name, int current, int desired, std::string why) {
  Opinion o;
  o.verdict = Verdict{name, KindFor(desired, current), desired,
                      fmt::format("{}: {}", why, Arrow(current, desired))};
  o.why = std::move(why);
  return o;
}

Opinion EvaluateTargetTracking(const std::string& name, const TargetTracking& rule, double value,
                               int current) {
  if (!(rule.target > 0) || !std::isfinite(rule.target)) {
    return Abstain(name, fmt::format("target must be a positive number, got {}", rule.target));
  }
  const double tolerance = std::isfinite(rule.tolerance) ? std::max(0.0, rule.tolerance) : 0.0;
  const double sized = std::max(current, 1);
  double ratio = 0;  // observed load over the load the current replicas are sized for
  double wanted = 0;
  std::string figures;
  if (rule.value_kind == ValueKind::kPerReplica) {
    ratio = value / rule.target;
    wanted = sized * value / rule.target;
    figures = fmt::format("{} per replica", Num(value));
  } else {
    ratio = value / (rule.target * sized);
    wanted = value / rule.target;
    figures = fmt::format("total {}", Num(value));
  }
  const std::string target = rule.value_kind == ValueKind::kPerReplica
                                 ? fmt::format("target {}", Num(rule.target))
                                 : fmt::format("{} x target {}", current, Num(rule.target));
  // With no replica at all any demand needs one; the band would hide it.
  if (current > 0 && std::fabs(ratio - 1) <= tolerance + kEpsilon) {
    return Wish(name, current, current,
                fmt::format("{} within {} ±{}", figures, target, Percent(tolerance)));
  }
  const char* relation = ratio > 1 ? ">" : "<";
  return Wish(name, current, CeilCount(wanted),
              fmt::format("{} {} {} ±{}", figures, relation, target, Percent(tolerance)));
}

std::string BandText(const Step& step) {
  return fmt::format("[{}, {})", step.lower ? Num(*step.lower) : "-inf",
                     step.upper ? Num(*step.upper) : "+inf");
}

Opinion EvaluateStep(const std::string& name, const StepScaling& rule, double value, int current) {
  for (const Step& step : rule.steps) {
    if (step.lower && !(value >= *step.lower)) continue;
    if (step.upper && !(value < *step.upper)) continue;
    if (!std::isfinite(step.adjustment)) {
      return Abstain(name, fmt::format("band {} has a non-finite adjustment", BandText(step)));
    }
    const std::string where = fmt::format("value {} in {}", Num(value), BandText(step));
    const double adjustment = std::clamp(step.adjustment, -kMaxCount, kMaxCount);
    switch (step.type) {
      case AdjustmentType::kChangeCount: {
        const int change = static_cast<int>(std::lround(adjustment));
        return Wish(name, current, ToCount(double(current) + change),
                    fmt::format("{}: {:+} {}", where, change,
                                change == 1 || change == -1 ? "replica" : "replicas"));
      }
      case AdjustmentType::kPercentChange: {
        // Away from zero, and never less than one replica: +10% of 3 adds one, -50% of 3
        // removes two.
        const double exact = current * adjustment / 100;
        int change = CeilCount(std::fabs(exact));
        if (adjustment != 0) change = std::max(change, 1);
        if (adjustment < 0) change = -change;
        return Wish(name, current, ToCount(double(current) + change),
                    fmt::format("{}: {:+g}% of {} is {:+}", where, adjustment, current, change));
      }
      case AdjustmentType::kExactCount: {
        const int exact = ToCount(std::round(adjustment));
        return Wish(name, current, exact, fmt::format("{}: exactly {}", where, exact));
      }
    }
  }
  return Abstain(name, fmt::format("value {} is in no step band", Num(value)));
}

Opinion EvaluateScheduled(const std::string& name, const Scheduled& rule, int current,
                          TimePoint now) {
  Result<ScheduleMatch> match = MatchSchedule(rule, now);
  if (!match) return Abstain(name, match.error().message + "; the schedule is ignored");
  if (match->active.empty()) {
    return Abstain(
        name, fmt::format("outside every window (it is {} {})", match->local_time, rule.time_zone));
  }
  int floor = 0;
  std::string windows;
  for (const ActiveWindow& a : match->active) {
    const ScheduleWindow& w = rule.windows[a.index];
    floor = std::max(floor, std::max(0, w.min_replicas));
    if (!windows.empty()) windows += ", ";
    windows += fmt::format("{} {}", w.name, DescribeWindow(w));
  }
  Opinion o;
  o.floor = floor;
  o.why = fmt::format("inside {} {}", windows, rule.time_zone);
  const int desired = std::max(current, floor);
  o.verdict = Verdict{name, KindFor(desired, current), desired,
                      fmt::format("{}: at least {}: {}", o.why, floor, Arrow(current, desired))};
  return o;
}

std::optional<std::string> ReadingProblem(const EvaluationInput& input, const std::string& name,
                                          Duration max_age) {
  auto it = input.readings.find(name);
  if (it == input.readings.end()) return "no reading was taken for its query";
  const Reading& r = it->second;
  if (r.error) return r.error->message;
  if (!r.value) return "the reading has no value";
  if (!std::isfinite(*r.value)) return fmt::format("the value is {}", *r.value);
  // Readings may be kept across cycles; re-check their age against this evaluation's now.
  return Staleness(r.sampled_at, input.now, max_age);
}

Opinion EvaluatePolicy(const Policy& policy, const ClusterPolicy& cluster,
                       const EvaluationInput& input, int current) {
  if (const auto* s = std::get_if<Scheduled>(&policy.rule)) {
    return EvaluateScheduled(policy.name, *s, current, input.now);
  }
  if (auto problem = ReadingProblem(input, policy.name, cluster.missing_data.max_age)) {
    Opinion o;
    o.why = "no data: " + *problem;
    o.verdict = Verdict{policy.name, VerdictKind::kNoData, std::nullopt, o.why};
    return o;
  }
  const double value = *input.readings.at(policy.name).value;
  if (const auto* t = std::get_if<TargetTracking>(&policy.rule)) {
    return EvaluateTargetTracking(policy.name, *t, value, current);
  }
  return EvaluateStep(policy.name, std::get<StepScaling>(policy.rule), value, current);
}

// The desired count of the previous decision: what the cluster is heading to. Behaviour measures
// changes from here (like the HPA's spec.replicas) rather than from the replicas that exist, so
// that replicas still being built do not make a scale-up look undone or count twice.
int Baseline(const History& history, int current) {
  return history.scale_events.empty() ? current : std::max(0, history.scale_events.back().to);
}

std::string LimitText(const RateLimit& limit) {
  const std::string amount = limit.type == RateLimit::Type::kReplicas
                                 ? Replicas(limit.value)
                                 : fmt::format("{}%", limit.value);
  return fmt::format("{} per {}", amount, FormatDuration(limit.period));
}

// How far a change may go under one rate limit: the count at the start of the period (the
// baseline minus the net change recorded inside it) plus or minus what the limit allows.
// Percent limits allow at least one replica, so a cluster can grow from zero.
int RateBound(const RateLimit& limit, bool up, const History& history, int baseline,
              TimePoint now) {
  // 64 bits and a cap: a history or limit with absurd numbers must not overflow.
  int64_t added = 0;
  int64_t removed = 0;
  for (const ScaleEvent& e : history.scale_events) {
    if (!(e.at > now - limit.period)) continue;
    if (e.to > e.from) added += int64_t{e.to} - e.from;
    if (e.to < e.from) removed += int64_t{e.from} - e.to;
  }
  const int64_t start =
      std::clamp<int64_t>(baseline - added + removed, 0, static_cast<int64_t>(kMaxCount));
  int64_t allowed = 0;
  if (limit.value > 0) {
    allowed = limit.type == RateLimit::Type::kReplicas
                  ? limit.value
                  : std::max(1, CeilCount(double(start) * limit.value / 100));
  }
  const int64_t bound = up ? start + allowed : start - allowed;
  return static_cast<int>(std::clamp<int64_t>(bound, 0, static_cast<int64_t>(kMaxCount)));
}

struct Behaved {
  int desired = 0;
  std::string note;  // empty when behaviour changed nothing
};

Behaved ApplyBehavior(const Behavior& behavior, const History& history, TimePoint now,
                      int recommended, int baseline) {
  // Stabilization: a rise must be wanted by every recommendation of the scale-up window, a fall
  // by every one of the scale-down window.
  int lowest = recommended;
  int highest = recommended;
  for (const Recommendation& r : history.recommendations) {
    if (r.at > now - behavior.scale_up.stabilization_window) lowest = std::min(lowest, r.replicas);
    if (r.at > now - behavior.scale_down.stabilization_window) {
      highest = std::max(highest, r.replicas);
    }
  }
  const int stabilized = std::clamp(baseline, lowest, highest);
  Behaved out{stabilized, ""};
  if (stabilized != recommended) {
    const bool by_up = recommended > stabilized;
    const ScalingRules& rules = by_up ? behavior.scale_up : behavior.scale_down;
    out.note = fmt::format("held at {} by the {} {} stabilization window ({} recommendation {})",
                           stabilized, FormatDuration(rules.stabilization_window),
                           by_up ? "scale_up" : "scale_down", by_up ? "lowest" : "highest",
                           by_up ? lowest : highest);
  }
  if (stabilized == baseline) return out;

  const bool up = stabilized > baseline;
  const ScalingRules& rules = up ? behavior.scale_up : behavior.scale_down;
  const char* direction = up ? "scale_up" : "scale_down";
  auto add_note = [&out](const std::string& note) {
    out.note = out.note.empty() ? note : out.note + "; " + note;
  };
  if (rules.select == SelectPolicy::kDisabled) {
    out.desired = baseline;
    add_note(fmt::format("kept at {} because {} is disabled", baseline, direction));
    return out;
  }
  if (rules.limits.empty()) return out;

  // kMax picks the limit allowing the largest change, kMin the smallest.
  const bool want_far = rules.select == SelectPolicy::kMax;
  size_t chosen = 0;
  int bound = 0;
  for (size_t i = 0; i < rules.limits.size(); ++i) {
    const int b = RateBound(rules.limits[i], up, history, baseline, now);
    const bool farther = up ? b > bound : b < bound;
    const bool nearer = up ? b < bound : b > bound;
    if (i == 0 || (want_far ? farther : nearer)) {
      chosen = i;
      bound = b;
    }
  }
  // A limit already used up holds the count; it never reverses the direction.
  const int limited = up ? std::min(stabilized, std::max(bound, baseline))
                         : std::max(stabilized, std::min(bound, baseline));
  if (limited != stabilized) {
    out.desired = limited;
    std::string which =
        rules.limits.size() > 1
            ? fmt::format(", the {} of {} limits", want_far ? "max" : "min", rules.limits.size())
            : "";
    add_note(fmt::format("limited to {} by the {} rate limit of {}{}", limited, direction,
                         LimitText(rules.limits[chosen]), which));
  }
  return out;
}

struct Combined {
  int wanted = 0;
  std::string reason;
  bool no_data = false;
};

// The policies' joint recommendation before bounds: the largest wish wins; schedules and
// missing data only raise the floor under it, so a schedule never blocks a scale-in above its
// minimum and no policy can scale in while another has no data. With no opinion at all, hold.
Combined Combine(const std::vector<Opinion>& opinions, const MissingData& missing, int hold) {
  const Opinion* wish = nullptr;
  const Opinion* floor = nullptr;
  std::vector<const Opinion*> no_data;
  for (const Opinion& o : opinions) {
    if (o.verdict.kind == VerdictKind::kNoData) {
      no_data.push_back(&o);
    } else if (o.floor) {
      if (floor == nullptr || *o.floor > *floor->floor) floor = &o;
    } else if (o.verdict.desired) {
      if (wish == nullptr || *o.verdict.desired > *wish->verdict.desired) wish = &o;
    }
  }
  int no_data_floor = -1;
  std::string no_data_text;
  if (!no_data.empty()) {
    const bool fallback = missing.action == MissingDataAction::kFallback;
    no_data_floor = fallback ? std::max(hold, missing.fallback_replicas) : hold;
    std::string names;
    for (const Opinion* o : no_data) {
      names += fmt::format("{}{} has {}", names.empty() ? "" : ", ", o->verdict.policy, o->why);
    }
    no_data_text = fallback && missing.fallback_replicas > hold
                       ? fmt::format("{}, so the fallback {} (missing data never scales in)", names,
                                     no_data_floor)
                       : fmt::format("{}, so at least {} (missing data never scales in)", names,
                                     no_data_floor);
  }

  int wanted = wish ? *wish->verdict.desired : hold;
  std::string reason;
  if (wish) {
    reason = fmt::format("{} wants {} ({})", wish->verdict.policy, wanted, wish->why);
  } else if (opinions.empty()) {
    reason = fmt::format("no policies, hold at {}", hold);
  } else if (no_data.empty() && !floor) {
    reason = fmt::format("every policy abstains, hold at {}", hold);
  }
  auto append = [&reason](const std::string& clause) {
    if (!reason.empty()) reason += "; ";
    reason += clause;
  };
  if (floor && *floor->floor > wanted) {
    wanted = *floor->floor;
    append(fmt::format("{} keeps at least {} ({})", floor->verdict.policy, wanted, floor->why));
  } else if (floor && !wish && no_data.empty()) {
    append(fmt::format("{} asks for at least {} ({}), hold at {}", floor->verdict.policy,
                       *floor->floor, floor->why, hold));
  }
  if (!no_data.empty()) {
    wanted = std::max(wanted, no_data_floor);
    append(no_data_text);
  }

  return Combined{wanted, std::move(reason), !no_data.empty()};
}

}  // namespace

std::string_view ToString(VerdictKind kind) {
  switch (kind) {
    case VerdictKind::kScaleUp:
      return "scale_up";
    case VerdictKind::kScaleDown:
      return "scale_down";
    case VerdictKind::kHold:
      return "hold";
    case VerdictKind::kAbstain:
      return "abstain";
    case VerdictKind::kNoData:
      return "no_data";
  }
  return "unknown";
}

Reading ToReading(const Result<QueryResult>& answer, TimePoint now, Duration max_age) {
  Reading reading;
  reading.sampled_at = now;
  if (!answer) {
    reading.error = Error{answer.error().kind,
                          fmt::format("query failed ({}): {}", ra::ToString(answer.error().kind),
                                      answer.error().message)};
    return reading;
  }
  const std::vector<Series>& series = answer->series;
  if (series.empty()) {
    reading.error = Error{ErrorKind::kNotFound,
                          "query returned no series (is the metric scraped, are the labels "
                          "right?)"};
    return reading;
  }
  if (series.size() > 1) {
    std::string first;
    for (const auto& [key, value] : series.front().labels) {
      first += fmt::format("{}{}=\"{}\"", first.empty() ? "" : ",", key, value);
    }
    reading.error = Error{ErrorKind::kBadRequest,
                          fmt::format("query returned {} series (first {{{}}}); aggregate it to "
                                      "one, e.g. sum(...)",
                                      series.size(), first)};
    return reading;
  }
  const Series& s = series.front();
  reading.sampled_at = s.timestamp;
  if (!std::isfinite(s.value)) {
    reading.error = Error{ErrorKind::kTransient, fmt::format("query returned {}", s.value)};
    return reading;
  }
  if (auto stale = Staleness(s.timestamp, now, max_age)) {
    reading.error = Error{ErrorKind::kTransient, *stale};
    return reading;
  }
  reading.value = s.value;
  return reading;
}

std::map<std::string, std::string> Queries(const ClusterPolicy& policy) {
  std::map<std::string, std::string> queries;
  for (const Policy& p : policy.policies) {
    if (const auto* t = std::get_if<TargetTracking>(&p.rule)) queries[p.name] = t->query;
    if (const auto* s = std::get_if<StepScaling>(&p.rule)) queries[p.name] = s->query;
  }
  return queries;
}

Decision Evaluate(const ClusterPolicy& policy, const History& history,
                  const EvaluationInput& input) {
  Decision decision;
  const int current = std::max(0, input.current_replicas);
  const int lo = std::max(0, policy.min_replicas);
  const int hi = std::max(lo, policy.max_replicas);
  const int baseline = Baseline(history, current);
  // "Hold" keeps what the cluster has or is heading to, whichever is more.
  const int hold = std::max(current, baseline);
  decision.current = current;

  std::vector<Opinion> opinions;
  opinions.reserve(policy.policies.size());
  for (const Policy& p : policy.policies)
    opinions.push_back(EvaluatePolicy(p, policy, input, current));

  Combined combined = Combine(opinions, policy.missing_data, hold);
  decision.verdicts.reserve(opinions.size());
  for (Opinion& o : opinions) decision.verdicts.push_back(std::move(o.verdict));
  std::string reason = std::move(combined.reason);
  auto append = [&reason](const std::string& clause) {
    if (!reason.empty()) reason += "; ";
    reason += clause;
  };
  const int wanted = combined.wanted;
  decision.recommended = std::clamp(wanted, lo, hi);
  if (decision.recommended > wanted) append(fmt::format("raised to {} by min_replicas", lo));
  if (decision.recommended < wanted) append(fmt::format("capped at {} by max_replicas", hi));

  std::string expired;
  if (input.manual) {
    const ManualOverride& m = *input.manual;
    if (!m.expires_at || *m.expires_at > input.now) {
      decision.override_active = true;
      decision.desired = std::clamp(m.replicas, lo, hi);
      std::string text = fmt::format("manual override to {}", m.replicas);
      if (!m.reason.empty()) text += fmt::format(" ({})", m.reason);
      text += m.expires_at ? fmt::format(" until {}", FormatTime(*m.expires_at))
                           : std::string(" until cleared");
      if (decision.desired > m.replicas) text += fmt::format(", raised to {} by min_replicas", lo);
      if (decision.desired < m.replicas) text += fmt::format(", capped at {} by max_replicas", hi);
      decision.reason = fmt::format("{}; it bypasses behaviour (the policies recommend {}: {})",
                                    text, decision.recommended, reason);
      return decision;
    }
    expired = fmt::format("manual override to {} expired at {} and is ignored", m.replicas,
                          FormatTime(*m.expires_at));
  }

  Behaved behaved =
      ApplyBehavior(policy.behavior, history, input.now, decision.recommended, baseline);
  int desired = behaved.desired;
  if (!behaved.note.empty()) append(behaved.note);
  // Hard bounds win over behaviour, e.g. when max_replicas was lowered below the baseline.
  if (desired > hi) {
    desired = hi;
    append(fmt::format("capped at {} by max_replicas", hi));
  } else if (desired < lo) {
    desired = lo;
    append(fmt::format("raised to {} by min_replicas", lo));
  }
  if (combined.no_data && desired < std::min(current, hi)) {
    desired = std::min(current, hi);
    append(fmt::format("kept at {} because missing data never scales in", desired));
  }
  if (!expired.empty()) append(expired);
  decision.desired = desired;
  decision.reason = std::move(reason);
  return decision;
}

History Record(const ClusterPolicy& policy, History history, const Decision& decision,
               TimePoint now) {
  const int baseline = Baseline(history, decision.current);
  history.recommendations.push_back(Recommendation{now, decision.recommended});
  if (decision.desired != baseline) {
    history.scale_events.push_back(ScaleEvent{now, baseline, decision.desired});
  }

  // Later evaluations look back from a later now, so whatever is out of reach now stays so.
  const Behavior& b = policy.behavior;
  const Duration window =
      std::max(b.scale_up.stabilization_window, b.scale_down.stabilization_window);
  std::erase_if(history.recommendations,
                [&](const Recommendation& r) { return !(r.at > now - window); });
  Duration period = Duration::zero();
  for (const ScalingRules* rules : {&b.scale_up, &b.scale_down}) {
    for (const RateLimit& limit : rules->limits) period = std::max(period, limit.period);
  }
  // The newest event is kept whatever its age: it carries the baseline.
  std::vector<ScaleEvent> kept;
  for (size_t i = 0; i < history.scale_events.size(); ++i) {
    const ScaleEvent& e = history.scale_events[i];
    if (e.at > now - period || i + 1 == history.scale_events.size()) kept.push_back(e);
  }
  history.scale_events = std::move(kept);
  return history;
}

}  // namespace ra::policies
