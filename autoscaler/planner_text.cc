#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "autoscaler/planner_internal.h"
#include "core/duration.h"

namespace ra::autoscaler::planner {

using namespace std::chrono_literals;

constexpr int64_t kKiB = int64_t{1} << 10;
constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kGiB = int64_t{1} << 30;

// "40 MiB", "1.5 GiB", "512 B": figures people read in log lines.
std::string HumanBytes(int64_t bytes) {
  const auto scaled = [bytes](int64_t unit, std::string_view name) {
    if (bytes % unit == 0) return fmt::format("{} {}", bytes / unit, name);
    return fmt::format("{:.1f} {}", static_cast<double>(bytes) / static_cast<double>(unit), name);
  };
  if (bytes >= kGiB) return scaled(kGiB, "GiB");
  if (bytes >= kMiB) return scaled(kMiB, "MiB");
  if (bytes >= kKiB) return scaled(kKiB, "KiB");
  return fmt::format("{} B", bytes);
}

// Whole minutes past an hour, whole seconds below: "30h12m", "4m10s".
std::string HumanDuration(Duration d) {
  if (d < Duration::zero()) d = Duration::zero();
  if (d >= 1h) return FormatDuration(std::chrono::duration_cast<std::chrono::minutes>(d));
  if (d >= 1s) return FormatDuration(std::chrono::duration_cast<std::chrono::seconds>(d));
  return FormatDuration(d);
}

std::string HumanSeconds(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return fmt::format("{}s", seconds);
  if (seconds < 10) return fmt::format("{:.1f}s", seconds);
  if (seconds > 1e9) return fmt::format("{:.0f}s", seconds);
  return HumanDuration(Duration(static_cast<int64_t>(seconds * 1000)));
}

double Seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

Duration Elapsed(TimePoint from, TimePoint to) {
  constexpr auto kFar = std::chrono::hours(24 * 365 * 100);
  if (from < to - kFar) return kFar;
  if (from > to + kFar) return -Duration(kFar);
  return std::chrono::duration_cast<Duration>(to - from);
}

bool StartsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

std::string ZoneKey(const std::string& zone, const std::string& flavor) {
  return zone + "/" + flavor;
}

void Add(Plan& plan, Action action) { plan.actions.push_back(std::move(action)); }

void Block(Plan& plan, ActionKind kind, std::string replica, std::string reason) {
  plan.blocked.push_back(
      Blocked{.kind = kind, .replica = std::move(replica), .reason = std::move(reason)});
}

std::string BackoffText(const std::string& zone, const ZoneBackoff& backoff) {
  return fmt::format("zone {} backed off until {} after {}",
                     zone.empty() ? "(cloud's choice)" : zone, FormatTime(backoff.until),
                     backoff.reason.empty() ? "failures" : backoff.reason);
}

const ZoneBackoff* ActiveBackoff(const ClusterMemory& memory, const config::Cluster& cluster,
                                 const std::string& zone, TimePoint now) {
  auto it = memory.backoff.find(ZoneKey(zone, cluster.replica.flavor));
  if (it == memory.backoff.end() || it->second.until <= now) return nullptr;
  return &it->second;
}

std::vector<std::string> NotAdmittedIn(const ObservedReplica& obs) {
  std::vector<std::string> out;
  for (const BalancerView& b : obs.balancers) {
    if (b.reachable && (!b.member || b.member->admin != lb::AdminState::kReady)) {
      out.push_back(b.balancer);
    }
  }
  return out;
}

int ServingIn(const ObservedReplica& obs) {
  int n = 0;
  for (const BalancerView& b : obs.balancers) n += b.member && b.member->serving ? 1 : 0;
  return n;
}

std::string BalancersText(const ObservedReplica& obs) {
  std::string out;
  for (const BalancerView& b : obs.balancers) {
    if (!out.empty()) out += ", ";
    out += b.balancer + ": ";
    if (!b.reachable) {
      out += "no answer";
    } else if (!b.member) {
      out += "absent";
    } else if (b.member->serving) {
      out += "serving";
    } else {
      out += std::string(lb::ToString(b.member->admin)) + ", not serving";
    }
  }
  return out;
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += i + 1 == names.size() ? " and " : ", ";
    out += names[i];
  }
  return out;
}

}  // namespace ra::autoscaler::planner
