#include "autoscaler/controller.h"

#include <fmt/format.h>

#include <algorithm>
#include <random>
#include <utility>

#include "core/duration.h"
#include "core/log.h"

namespace ra::autoscaler {

namespace {

double UnixSeconds(TimePoint t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

}  // namespace

Controller::Controller(const config::Config& config, const Clock& clock, Random random,
                       EventJournal& journal, ServiceMetrics& metrics,
                       std::vector<ClusterDeps> clusters, ControllerOptions options)
    : config_(config),
      clock_(clock),
      random_(std::move(random)),
      journal_(journal),
      metrics_(metrics),
      options_(options),
      actuator_(
          [&options] {
            Actuator::Options o = options.actuator;
            if (options.fence != nullptr) o.fence = options.fence;
            return o;
          }(),
          journal, clock),
      env_{.journal = journal,
           .metrics = metrics,
           .actuator = actuator_,
           .mu = mu_,
           .random = [this] { return random_(); },
           .save_intent = [this] { (void)SaveIntent(); },  // a failure is logged
           .zones_cache = options.zones_cache,
           .quota_every_cycles = options.quota_every_cycles},
      loop_(
          config.loop.interval, config.loop.jitter, [this] { return random_(); },
          [this] { RunOnce(clock_.Now()); }) {
  if (!random_) {
    auto engine = std::make_shared<std::mt19937>(std::random_device{}());
    random_ = [engine] { return static_cast<uint32_t>((*engine)()); };
  }
  if (options_.intent_store != nullptr) {
    store_ = options_.intent_store;
  } else if (!options_.state_path.empty()) {
    owned_store_ = std::make_unique<FileIntentStore>(options_.state_path);
    store_ = owned_store_.get();
  }
  for (ClusterDeps& deps : clusters) {
    auto state = std::make_unique<ClusterState>();
    state->template_ids = deps.template_ids;
    state->cache.donor_volume_id = deps.donor_volume_id;
    state->cache.donor_server_id = deps.donor_server_id;
    state->latency = ZoneLatency(static_cast<size_t>(std::max(1, deps.cluster->placement.samples)));
    state->deps = std::move(deps);
    clusters_.push_back(std::move(state));
  }
  try {
    // With a fence, each new term reads the intent (AdoptTerm): whoever leads then has it.
    if (options_.fence == nullptr) LoadIntent();
  } catch (const std::exception& e) {
    // The checks should leave nothing to throw; saved intent never stops the service.
    log::Error("operator state ignored", {{"error", e.what()}});
  }
  if (options_.fence != nullptr) metrics_.SetLeader(false);
  actuator_.SetOnCompletion([this](const Completion& c) { OnActionCompleted(c); });
}

Controller::~Controller() {
  Stop();
  // An action still running after Stop's deadline must not reach the loop's members, which go
  // before the actuator: once cleared, the callback is not running and never runs again.
  actuator_.SetOnCompletion(nullptr);
}

// ---------------------------------------------------------------------------------------------
// operator intent

bool Controller::LoadIntent() {
  if (store_ == nullptr) return true;
  const TimePoint now = clock_.Now();
  Result<Intents> loaded = store_->Load();
  if (!loaded) {
    const std::string why = loaded.error().message;
    log::Error("operator state ignored", {{"path", options_.state_path}, {"error", why}});
    journal_.Append(
        {.at = now,
         .type = "state_ignored",
         .message = fmt::format(
             "the saved overrides and pauses in {} were ignored "
             "({}): none is in force; set them again through the API",
             options_.state_path.empty() ? "the intent store" : options_.state_path, why)});
    return false;
  }
  std::lock_guard lock(mu_);
  for (auto& [name, intent] : *loaded) {
    ClusterState* state = Find(name);
    if (state == nullptr) {
      log::Warn("operator state of an unknown cluster dropped", {{"cluster", name}});
      continue;
    }
    state->intent.paused = intent.paused;
    state->intent.paused_reason = intent.paused_reason;
    if (!intent.manual) continue;
    const policies::ManualOverride& manual = *intent.manual;
    const policies::ClusterPolicy& p = state->deps.cluster->policy;
    if (manual.expires_at && *manual.expires_at <= now) {
      log::Info("saved override expired while the service was down",
                {{"cluster", name}, {"replicas", manual.replicas}});
      continue;
    }
    if (manual.replicas < p.min_replicas || manual.replicas > p.max_replicas) {
      log::Warn("saved override outside the cluster's bounds dropped",
                {{"cluster", name}, {"replicas", manual.replicas}});
      continue;
    }
    state->intent.manual = manual;
  }
  return true;
}

Result<void> Controller::SaveIntent() {
  if (store_ == nullptr) return {};
  std::lock_guard file_lock(state_file_mu_);
  return SaveIntentLocked();
}

Result<void> Controller::SaveIntentLocked() {
  Intents intents;
  {
    std::lock_guard lock(mu_);
    for (const auto& state : clusters_) {
      if (!state->intent.Empty()) intents[state->deps.cluster->name] = state->intent;
    }
  }
  if (auto written = store_->Save(intents); !written) {
    log::Error("operator state not saved",
               {{"path", options_.state_path}, {"error", written.error().message}});
    return Fail(written.error());
  }
  return {};
}

Result<void> Controller::RequireLeader() const {
  if (options_.fence == nullptr) return {};
  if (const std::optional<uint64_t> held = options_.fence->HeldTerm()) {
    if (*held == adopted_term_.load()) return {};
    return Fail(ErrorKind::kTransient,
                "this instance has just become the leader and is reading the operator state; "
                "try again in a moment");
  }
  const std::string leader = options_.fence->LeaderName();
  return Fail(ErrorKind::kNotLeader,
              leader.empty() ? std::string("this instance does not lead, and no leader is known "
                                           "yet: try again in a few seconds")
                             : fmt::format("this instance does not lead; {} does", leader));
}

bool Controller::AdoptTerm(uint64_t term) {
  {
    // Intent first: a new leader that cannot read the operators' pauses does not act without
    // them; the next cycle tries again.
    std::lock_guard file_lock(state_file_mu_);
    {
      std::lock_guard lock(mu_);
      for (auto& state : clusters_) state->intent = ClusterIntent{};
    }
    if (!LoadIntent()) return false;
  }
  term_ = term;
  adopted_term_ = term;
  log::Info("leading", {{"instance", options_.instance}, {"term", term}});
  journal_.Append({.at = clock_.Now(),
                   .type = "leadership_won",
                   .message = fmt::format("{} leads (term {}): adopting what the cloud and the "
                                          "load balancers show, as after a restart",
                                          options_.instance, term),
                   .details = {{"instance", options_.instance}, {"term", term}}});
  {
    // What another leader did meanwhile is observed again; nothing remembered from an earlier
    // term is trusted.
    std::lock_guard lock(mu_);
    for (auto& state : clusters_) {
      state->memory = ClusterMemory{};
      state->last_plan.reset();
    }
  }
  return true;
}

Result<bool> Controller::UpdateIntent(const std::string& cluster, const IntentChange& change) {
  if (auto leading = RequireLeader(); !leading) return Fail(leading.error());
  // Held from the change to its save, so that a failed save restores exactly what this call
  // replaced (no other API change can come in between).
  std::unique_lock file_lock(state_file_mu_, std::defer_lock);
  if (store_ != nullptr) file_lock.lock();
  ClusterIntent before;
  {
    std::lock_guard lock(mu_);
    ClusterState* state = Find(cluster);
    if (!state) return Fail(ErrorKind::kNotFound, fmt::format("no cluster named '{}'", cluster));
    before = state->intent;
    Result<bool> changed = change(*state, state->intent);
    if (!changed || !*changed || store_ == nullptr) return changed;
  }
  Result<void> saved = SaveIntentLocked();
  if (saved) return true;
  {
    std::lock_guard lock(mu_);
    if (ClusterState* state = Find(cluster)) state->intent = before;
  }
  if (saved.error().kind == ErrorKind::kNotLeader) return Fail(saved.error());
  return Fail(ErrorKind::kTransient,
              fmt::format("the change was not saved ({}), so it is not in force: it would not "
                          "survive a restart; nothing changed, try again once {} can be written",
                          saved.error().message,
                          options_.state_path.empty() ? "the intent store" : options_.state_path));
}

ClusterState* Controller::Find(const std::string& cluster) {
  for (auto& state : clusters_) {
    if (state->deps.cluster->name == cluster) return state.get();
  }
  return nullptr;
}

const ClusterState* Controller::Find(const std::string& cluster) const {
  for (const auto& state : clusters_) {
    if (state->deps.cluster->name == cluster) return state.get();
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// cycles and the loop

bool Controller::RunOnce(TimePoint now) {
  std::lock_guard cycle(cycle_mu_);
  if (options_.fence != nullptr) {
    const std::optional<uint64_t> term = options_.fence->HeldTerm();
    metrics_.SetLeader(term.has_value());
    if (!term) {
      // A follower observes nothing and acts on nothing; it is healthy while it follows.
      term_.reset();
      metrics_.ObserveFollowing(UnixSeconds(now));
      std::lock_guard lock(mu_);
      first_cycle_done_ = now;
      last_success_ = now;
      return true;
    }
    if (term != term_ && !AdoptTerm(*term)) {
      std::lock_guard lock(mu_);
      first_cycle_done_ = now;
      return false;
    }
    env_.term = *term;
  }
  const auto started = std::chrono::steady_clock::now();
  // Each cloud (one per project) lists its resources once for all its clusters in this cycle,
  // and forgets that listing when the cycle ends, whatever happens in it.
  std::vector<openstack::CloudProvider*> clouds;
  for (const auto& state : clusters_) {
    if (state->deps.cloud != nullptr &&
        std::find(clouds.begin(), clouds.end(), state->deps.cloud) == clouds.end()) {
      clouds.push_back(state->deps.cloud);
    }
  }
  struct CycleScope {
    const std::vector<openstack::CloudProvider*>& clouds;
    explicit CycleScope(const std::vector<openstack::CloudProvider*>& c) : clouds(c) {
      for (openstack::CloudProvider* cloud : clouds) cloud->BeginCycle();
    }
    ~CycleScope() {
      for (openstack::CloudProvider* cloud : clouds) cloud->EndCycle();
    }
    CycleScope(const CycleScope&) = delete;
    CycleScope& operator=(const CycleScope&) = delete;
  } scope(clouds);
  bool ok = true;
  for (auto& state : clusters_) {
    try {
      ok = RunClusterCycle(*state, env_, now) && ok;
    } catch (const std::exception& e) {
      // A bug in one cluster's cycle must not stop the loop or the other clusters.
      ok = false;
      log::Error("cycle failed", {{"cluster", state->deps.cluster->name}, {"error", e.what()}});
      metrics_.CountError("config", ErrorKind::kInternal);
      std::lock_guard lock(mu_);
      state->last_error = std::string("internal: ") + e.what();
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  metrics_.ObserveCycle(seconds, ok, UnixSeconds(now));
  std::lock_guard lock(mu_);
  first_cycle_done_ = now;
  if (ok) last_success_ = now;
  return ok;
}

void Controller::Run() { loop_.Run(); }

void Controller::Start() { loop_.Start(); }

bool Controller::Stop() {
  loop_.Stop();
  return actuator_.Stop();
}

bool Controller::CycleRequested() const { return loop_.Requested(); }

void Controller::TriggerCycle() { loop_.Trigger(); }

void Controller::OnActionCompleted(const Completion& completion) {
  // What HAProxy does now is seen by the next cycle: started at once, it reports an admitted
  // replica serving, removes a drained one and deletes a removed one instead of waiting up to an
  // interval for each step. Cloud actions take the cloud's time whatever the loop does (a volume
  // is `creating` when the call returns), and a failure is not followed, so a broken dependency
  // is never retried faster than the interval. A maint is not followed either: a lag-ejected
  // replica has to catch up, which takes longer than a cycle, and a lag hovering at the
  // threshold would otherwise flap maint -> admit -> maint at kMinCycleGap (a failed replica's
  // removal, queued behind its maint, requests the cycle).
  if (completion.error) return;
  switch (completion.action.kind) {
    case ActionKind::kAdmit:
    case ActionKind::kDrain:
    case ActionKind::kRemoveFromLb:
      TriggerCycle();
      break;
    default:
      break;
  }
}

std::optional<Plan> Controller::LastPlan(const std::string& cluster) const {
  std::lock_guard lock(mu_);
  const ClusterState* state = Find(cluster);
  if (!state) return std::nullopt;
  return state->last_plan;
}

// ---------------------------------------------------------------------------------------------
// ServiceControl

std::vector<std::string> Controller::ClusterNames() const {
  std::vector<std::string> names;
  for (const auto& state : clusters_) names.push_back(state->deps.cluster->name);
  return names;
}

Result<ClusterStatus> Controller::Status(const std::string& cluster) const {
  std::lock_guard lock(mu_);
  const ClusterState* state = Find(cluster);
  if (!state) return Fail(ErrorKind::kNotFound, fmt::format("no cluster named '{}'", cluster));
  const config::Cluster& c = *state->deps.cluster;
  ClusterStatus s;
  s.name = c.name;
  s.min_replicas = c.policy.min_replicas;
  s.max_replicas = c.policy.max_replicas;
  s.paused = state->intent.paused;
  s.paused_reason = state->intent.paused_reason;
  s.manual = state->intent.manual;
  s.decision = state->decision;
  s.decided_at = state->decided_at;
  s.last_cycle_at = state->last_cycle_at;
  s.last_error = state->last_error;
  s.primary = state->primary;
  s.newest_snapshot = state->newest_snapshot;
  if (state->last_plan) {
    const Plan& plan = *state->last_plan;
    s.desired = plan.desired;
    s.active = plan.active;
    s.plan_reason = plan.reason;
    s.replicas = plan.replicas;
    s.blocked = plan.blocked;
    for (const ReplicaView& v : plan.replicas) {
      s.serving += v.phase == Phase::kServing && !v.foreign ? 1 : 0;
    }
  } else if (state->desired) {
    s.desired = *state->desired;
  }
  return s;
}

Result<void> Controller::SetOverride(const std::string& cluster, policies::ManualOverride manual) {
  const TimePoint now = clock_.Now();
  Result<bool> changed =
      UpdateIntent(cluster, [&](const ClusterState& state, ClusterIntent& intent) -> Result<bool> {
        const policies::ClusterPolicy& p = state.deps.cluster->policy;
        if (manual.replicas < p.min_replicas || manual.replicas > p.max_replicas) {
          return Fail(ErrorKind::kBadRequest,
                      fmt::format("replicas {} is outside cluster {}'s bounds [{}, {}] "
                                  "(min_replicas, max_replicas)",
                                  manual.replicas, cluster, p.min_replicas, p.max_replicas));
        }
        if (manual.expires_at && *manual.expires_at <= now) {
          return Fail(ErrorKind::kBadRequest,
                      fmt::format("the override would expire at {}, which is not in the future",
                                  FormatTime(*manual.expires_at)));
        }
        intent.manual = manual;
        return true;
      });
  if (!changed) return Fail(changed.error());
  journal_.Append(
      {.at = now,
       .cluster = cluster,
       .type = "manual_override",
       .message = fmt::format("manual count {}{}{}", manual.replicas,
                              manual.expires_at ? " until " + FormatTime(*manual.expires_at)
                                                : std::string(" until cleared"),
                              manual.reason.empty() ? std::string() : ": " + manual.reason),
       .details = {{"replicas", manual.replicas}}});
  TriggerCycle();
  return {};
}

Result<void> Controller::ClearOverride(const std::string& cluster) {
  std::optional<policies::ManualOverride> was;
  Result<bool> changed =
      UpdateIntent(cluster, [&](const ClusterState&, ClusterIntent& intent) -> Result<bool> {
        was = std::exchange(intent.manual, std::nullopt);
        return was.has_value();
      });
  if (!changed) return Fail(changed.error());
  if (*changed) {
    journal_.Append({.at = clock_.Now(),
                     .cluster = cluster,
                     .type = "manual_override_cleared",
                     .message = fmt::format("manual count {} cleared; the policies decide again",
                                            was->replicas)});
    TriggerCycle();
  }
  return {};
}

Result<void> Controller::Pause(const std::string& cluster, const std::string& reason) {
  Result<bool> changed =
      UpdateIntent(cluster, [&](const ClusterState&, ClusterIntent& intent) -> Result<bool> {
        const bool differs = !intent.paused || intent.paused_reason != reason;
        intent.paused = true;
        intent.paused_reason = reason;
        return differs;
      });
  if (!changed) return Fail(changed.error());
  if (*changed) {
    journal_.Append({.at = clock_.Now(),
                     .cluster = cluster,
                     .type = "paused",
                     .message = reason.empty() ? "automatic scaling paused"
                                               : "automatic scaling paused: " + reason});
    TriggerCycle();
  }
  return {};
}

Result<void> Controller::Resume(const std::string& cluster) {
  Result<bool> changed =
      UpdateIntent(cluster, [&](const ClusterState&, ClusterIntent& intent) -> Result<bool> {
        const bool differs = intent.paused;
        intent.paused = false;
        intent.paused_reason.clear();
        return differs;
      });
  if (!changed) return Fail(changed.error());
  if (*changed) {
    journal_.Append({.at = clock_.Now(),
                     .cluster = cluster,
                     .type = "resumed",
                     .message = "automatic scaling resumed"});
    TriggerCycle();
  }
  return {};
}

Result<void> Controller::RequestSnapshot(const std::string& cluster) {
  if (auto leading = RequireLeader(); !leading) return leading;
  {
    std::lock_guard lock(mu_);
    ClusterState* state = Find(cluster);
    if (!state) return Fail(ErrorKind::kNotFound, fmt::format("no cluster named '{}'", cluster));
    const bool creating = state->memory.snapshot_on_demand || state->snapshot_creating;
    if (creating || actuator_.Busy(cluster).snapshot) {
      return Fail(ErrorKind::kConflict,
                  fmt::format("a snapshot of cluster {} is already being made", cluster));
    }
    state->memory.snapshot_on_demand = true;
  }
  journal_.Append({.at = clock_.Now(),
                   .cluster = cluster,
                   .type = "snapshot_requested",
                   .message = "a golden snapshot was asked for through the API"});
  TriggerCycle();
  return {};
}

Result<void> Controller::ReplaceReplica(const std::string& cluster, const std::string& replica) {
  if (auto leading = RequireLeader(); !leading) return leading;
  {
    std::lock_guard lock(mu_);
    ClusterState* state = Find(cluster);
    if (!state) return Fail(ErrorKind::kNotFound, fmt::format("no cluster named '{}'", cluster));
    auto it = state->memory.replicas.find(replica);
    bool foreign = replica == state->deps.cluster->donor.server;
    if (state->last_plan) {
      for (const ReplicaView& view : state->last_plan->replicas) {
        if (view.name == replica && view.foreign) foreign = true;
      }
    }
    if (it == state->memory.replicas.end() || foreign) {
      return Fail(ErrorKind::kNotFound,
                  fmt::format("cluster {} has no replica named '{}' that this service manages",
                              cluster, replica));
    }
    ReplicaMemory& mem = it->second;
    if (!mem.failure.empty()) {
      return Fail(ErrorKind::kConflict,
                  fmt::format("replica {} has failed and is being replaced already", replica));
    }
    if (mem.leaving) {
      return Fail(ErrorKind::kConflict, fmt::format("replica {} is leaving already", replica));
    }
    mem.leaving = true;
    mem.replace = true;
    mem.serving_since.reset();
  }
  journal_.Append({.at = clock_.Now(),
                   .cluster = cluster,
                   .replica = replica,
                   .type = "replace_requested",
                   .message = "asked through the API: drained, deleted and replaced"});
  TriggerCycle();
  return {};
}

std::vector<Event> Controller::Events(const std::string& cluster, size_t limit,
                                      std::optional<TimePoint> since) const {
  return journal_.Recent(cluster, limit, since);
}

Health Controller::GetHealth() const {
  std::lock_guard lock(mu_);
  Health health;
  health.ready = first_cycle_done_.has_value();
  health.last_successful_cycle = last_success_;
  health.max_cycle_age = 3 * config_.loop.interval + std::chrono::seconds(60);
  if (options_.fence != nullptr) {
    health.leading = options_.fence->HeldTerm().has_value();
    health.instance = options_.instance;
    health.leader = options_.fence->LeaderName();
  }
  return health;
}

}  // namespace ra::autoscaler
