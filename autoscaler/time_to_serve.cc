#include "autoscaler/time_to_serve.h"

#include <set>

namespace ra::autoscaler {

namespace {

template <typename D>
double Seconds(D d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

TimeToServe TrackTimeToServe(std::map<std::string, TimePoint>& decided, ClusterMemory& memory,
                             const Plan& plan, bool cloud_read, TimePoint now) {
  TimeToServe out;
  for (const Action& a : plan.actions) {
    if (a.kind != ActionKind::kCreateVolume || a.replica.empty()) continue;
    if (decided.try_emplace(a.replica, now).second) out.changed = true;
  }

  std::set<std::string> shown;
  for (const ReplicaView& v : plan.replicas) {
    shown.insert(v.name);
    const auto it = decided.find(v.name);
    if (it == decided.end()) continue;
    const auto mem = memory.replicas.find(v.name);
    ReplicaMemory* m = mem == memory.replicas.end() ? nullptr : &mem->second;
    const bool serves = v.phase == Phase::kServing || v.phase == Phase::kLagging;
    const bool unwanted = v.foreign || v.leaving || v.phase == Phase::kFailed ||
                          v.phase == Phase::kDraining || v.phase == Phase::kDrained ||
                          v.phase == Phase::kDeleting;
    if (serves) {
      // Observed only when this process watched it come up, and the clock did not go back.
      if (m != nullptr && m->seen_not_serving && it->second <= now) {
        out.served.emplace_back(v.name, Seconds(now - it->second));
      }
      if (m != nullptr) m->seen_not_serving = false;
      decided.erase(it);
      out.changed = true;
      continue;
    }
    if (unwanted) {
      decided.erase(it);
      out.changed = true;
      continue;
    }
    if (m != nullptr) m->seen_not_serving = true;
    out.pending[v.name] = it->second <= now ? Seconds(now - it->second) : 0.0;
  }

  if (cloud_read) {
    for (auto it = decided.begin(); it != decided.end();) {
      if (shown.count(it->first)) {
        ++it;
        continue;
      }
      it = decided.erase(it);
      out.changed = true;
    }
  }
  return out;
}

}  // namespace ra::autoscaler
