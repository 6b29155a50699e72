#include "autoscaler/transitions.h"

#include <fmt/format.h>

#include <algorithm>
#include <future>

namespace ra::autoscaler {

std::string_view ToString(WatchKind kind) {
  switch (kind) {
    case WatchKind::kVolume:
      return "volume";
    case WatchKind::kServer:
      return "server";
    case WatchKind::kSnapshot:
      return "snapshot";
    case WatchKind::kPostgres:
      return "postgres";
    case WatchKind::kCatchUp:
      return "catch_up";
    case WatchKind::kBalancer:
      return "balancer";
  }
  return "unknown";
}

std::string TransitionWatch::Key() const {
  return fmt::format("{}/{}/{}/{}", cluster, replica, ToString(kind), id);
}

namespace {

// Statuses a resource passes through on its own; the next step waits for it to leave them.
bool VolumeMoving(const std::string& status) {
  return status == "creating" || status == "downloading" || status == "deleting" ||
         status == "detaching" || status == "attaching" || status == "reserved";
}

bool ServerMoving(const std::string& status) {
  return status == "BUILD" || status == "REBUILD" || status == "DELETED" ||
         status == "SOFT_DELETED";
}

}  // namespace

std::vector<TransitionWatch> TransitionWatches(const config::Cluster& cluster,
                                               const Observed& observed, const Plan& plan) {
  std::map<std::string, const ObservedReplica*> seen;
  for (const ObservedReplica& r : observed.replicas) seen[r.name] = &r;
  std::vector<TransitionWatch> out;
  auto add = [&](const ReplicaView& v, WatchKind kind) -> TransitionWatch& {
    TransitionWatch& w = out.emplace_back();
    w.cluster = cluster.name;
    w.replica = v.name;
    w.kind = kind;
    w.since = v.phase_since;
    return w;
  };
  // A cloud resource in transition: its status now is what it must leave.
  auto add_cloud = [&](const ReplicaView& v, WatchKind kind, const std::string& id,
                       const std::string& status) {
    TransitionWatch& w = add(v, kind);
    w.id = id;
    w.from = status;
    w.budget = cluster.cloud;
  };
  for (const ReplicaView& v : plan.replicas) {
    // An action under way ends with its own completion; the foreign are never ours to follow.
    if (v.busy || v.foreign) continue;
    auto it = seen.find(v.name);
    if (it == seen.end()) continue;
    const ObservedReplica& obs = *it->second;
    const bool server_moving = obs.server && ServerMoving(obs.server->status);
    const bool volume_moving = obs.volume && VolumeMoving(obs.volume->status);
    switch (v.phase) {
      case Phase::kVolumeCreating:
      case Phase::kServerBuilding:
      case Phase::kDeleting:
      case Phase::kFailed:
        // The server first: while it builds (or goes), its volume waits for it.
        if (server_moving) {
          add_cloud(v, WatchKind::kServer, obs.server->id, obs.server->status);
        } else if (volume_moving) {
          add_cloud(v, WatchKind::kVolume, obs.volume->id, obs.volume->status);
        }
        break;
      case Phase::kPostgresStarting:
        if (server_moving) {
          add_cloud(v, WatchKind::kServer, obs.server->id, obs.server->status);
        } else if (obs.server && obs.server->status == "ACTIVE" && !v.address.empty()) {
          TransitionWatch& w = add(v, WatchKind::kPostgres);
          w.host = v.address;
          w.port = cluster.postgres.port;
        }
        break;
      case Phase::kCatchingUp:
        if (!v.address.empty() && !observed.primary_host.empty()) {
          TransitionWatch& w = add(v, WatchKind::kCatchUp);
          w.host = v.address;
          w.port = cluster.postgres.port;
          w.primary_host = observed.primary_host;
          w.primary_port = observed.primary_port;
        }
        break;
      case Phase::kAdmitting:
        // Admitted (the admit has run: the replica is not busy) and not serving yet: the
        // balancer's health check is what remains. Before the admit, the cycle that made the
        // plan submitted it, and its completion asks for a cycle.
        if (obs.lb) add(v, WatchKind::kBalancer);
        break;
      case Phase::kServing:
      case Phase::kLagging:
      case Phase::kDraining:
      case Phase::kDrained:
        break;
    }
  }
  for (const openstack::SnapshotFacts& s : observed.snapshots) {
    if (s.status != "creating") continue;
    TransitionWatch& w = out.emplace_back();
    w.cluster = cluster.name;
    w.kind = WatchKind::kSnapshot;
    w.id = s.id;
    w.from = s.status;
    w.budget = cluster.cloud;
    w.since = s.created.value_or(TimePoint{});
  }
  return out;
}

TransitionWatcher::TransitionWatcher(Options options, const Clock& clock, Poll poll,
                                     std::function<void()> on_moved)
    : options_(std::move(options)),
      clock_(clock),
      poll_(std::move(poll)),
      on_moved_(std::move(on_moved)) {
  for (const auto& [name, rate] : options_.budgets) {
    if (rate <= 0) continue;
    // A burst of one: polls are spread, never bunched.
    limiters_[name] = std::make_unique<RateLimiter>(rate, 1, clock_, unused_sleeper_);
  }
}

TransitionWatcher::~TransitionWatcher() { Stop(); }

Duration TransitionWatcher::DelayFor(TimePoint since, TimePoint now) const {
  const auto waited = std::max(Duration(0), std::chrono::duration_cast<Duration>(now - since));
  const auto share = Duration(static_cast<Duration::rep>(static_cast<double>(waited.count()) *
                                                         std::max(0.0, options_.fraction)));
  return std::clamp(share, options_.min_delay, std::max(options_.min_delay, options_.max_delay));
}

void TransitionWatcher::Sync(std::vector<TransitionWatch> watches, TimePoint now) {
  {
    std::lock_guard lock(mu_);
    std::map<std::string, Entry> next;
    for (TransitionWatch& w : watches) {
      const std::string key = w.Key();
      auto kept = entries_.find(key);
      if (kept != entries_.end()) {
        kept->second.watch = std::move(w);
        // A wall clock stepped back must not push a kept watch beyond one interval from now.
        kept->second.due = std::min(kept->second.due, now + options_.max_delay);
        next.emplace(key, std::move(kept->second));
        continue;
      }
      const TimePoint due = now + DelayFor(w.since, now);
      next.emplace(key, Entry{std::move(w), due});
    }
    entries_ = std::move(next);
  }
  cv_.notify_all();
}

std::optional<TimePoint> TransitionWatcher::NextDue() const {
  std::lock_guard lock(mu_);
  std::optional<TimePoint> next;
  for (const auto& [key, e] : entries_) {
    if (!next || e.due < *next) next = e.due;
  }
  return next;
}

int TransitionWatcher::PollDue(TimePoint now) {
  std::vector<TransitionWatch> due;
  {
    std::lock_guard lock(mu_);
    std::vector<Entry*> ready;
    for (auto& [key, e] : entries_) {
      if (e.due <= now) ready.push_back(&e);
    }
    // The longest-waiting first, so a budget that runs short delays the newest.
    std::sort(ready.begin(), ready.end(),
              [](const Entry* a, const Entry* b) { return a->due < b->due; });
    for (Entry* e : ready) {
      if (static_cast<int>(due.size()) >= std::max(1, options_.parallel)) {
        break;  // the rest stay due: the next round takes them
      }
      auto limiter = limiters_.find(e->watch.budget);
      if (limiter != limiters_.end() && !limiter->second->TryAcquire()) {
        // No token for this cloud now: come back when one has grown, without blocking.
        const double rate = options_.budgets.at(e->watch.budget);
        e->due = now + std::max(options_.min_delay,
                                Duration(static_cast<Duration::rep>(1000.0 / rate + 0.999)));
        continue;
      }
      due.push_back(e->watch);
      // Rescheduled now; dropped below if it moved on.
      e->due = now + DelayFor(e->watch.since, now);
    }
  }
  if (due.empty()) return 0;
  std::vector<std::future<Result<bool>>> results;
  results.reserve(due.size());
  for (const TransitionWatch& w : due) {
    results.push_back(std::async(std::launch::async, [this, &w] { return poll_(w); }));
  }
  bool any = false;
  {
    std::vector<bool> moved(due.size(), false);
    for (size_t i = 0; i < due.size(); ++i) {
      Result<bool> r = results[i].get();
      moved[i] = r && *r;
    }
    std::lock_guard lock(mu_);
    polls_ += static_cast<int64_t>(due.size());
    for (size_t i = 0; i < due.size(); ++i) {
      if (!moved[i]) continue;
      any = true;
      ++moved_;
      // Followed by the cycle it asks for, which hands it back (with the new status) if there
      // is still something to wait for.
      entries_.erase(due[i].Key());
    }
  }
  if (any && on_moved_) on_moved_();
  return static_cast<int>(due.size());
}

void TransitionWatcher::Start() {
  std::lock_guard lock(mu_);
  if (started_ || stop_) return;
  started_ = true;
  thread_ = std::thread([this] { RunThread(); });
}

void TransitionWatcher::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void TransitionWatcher::RunThread() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    std::optional<TimePoint> next;
    for (const auto& [key, e] : entries_) {
      if (!next || e.due < *next) next = e.due;
    }
    const TimePoint now = clock_.Now();
    if (!next || *next > now) {
      // The clock is the service's (wall) clock: wait in steady time for what is left, and
      // look again whenever the watches change.
      const Duration left =
          next ? std::min(std::chrono::duration_cast<Duration>(*next - now), options_.max_delay)
               : options_.max_delay;
      cv_.wait_for(lock, left + std::chrono::milliseconds(1));
      continue;
    }
    lock.unlock();
    PollDue(now);
    lock.lock();
  }
}

int64_t TransitionWatcher::polls() const {
  std::lock_guard lock(mu_);
  return polls_;
}

int64_t TransitionWatcher::moved() const {
  std::lock_guard lock(mu_);
  return moved_;
}

size_t TransitionWatcher::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

}  // namespace ra::autoscaler
