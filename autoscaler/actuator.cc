#include "autoscaler/actuator.h"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <nlohmann/json.hpp>
#include <utility>

#include "autoscaler/probe.h"
#include "core/log.h"

namespace ra::autoscaler {

namespace {

constexpr char kKeySeparator = '\n';  // cannot occur in a cluster or replica name

std::string ReplaceAll(std::string text, std::string_view from, std::string_view to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

Result<void> Need(bool present, std::string_view what) {
  if (present) return {};
  return Fail(ErrorKind::kInternal, fmt::format("the actuator was given no {}", what));
}

}  // namespace

std::string ReplicaUserData(const config::Cluster& cluster, const std::string& replica,
                            const std::string& primary_host, int primary_port) {
  // Only facts the first-boot script reads, and nothing secret: the replication password is
  // placed in ~/.pgpass by the image, never sent through the metadata service.
  nlohmann::json facts{
      {"cluster", cluster.name},          {"replica_name", replica},
      {"primary_host", primary_host},     {"primary_port", primary_port},
      {"replication_user", "replicator"}, {"application_name", replica},
  };
  if (!cluster.postgres.sslmode.empty()) facts["sslmode"] = cluster.postgres.sslmode;
  // Every host that may lead, the current primary first: the first boot writes them all into
  // primary_conninfo with target_session_attrs=read-write, so the replica follows a switchover.
  nlohmann::json hosts = nlohmann::json::array();
  hosts.push_back({{"host", primary_host}, {"port", primary_port}});
  for (const PrimaryState& candidate : PrimaryCandidates(cluster)) {
    if (candidate.host == primary_host && candidate.port == primary_port) continue;
    hosts.push_back({{"host", candidate.host}, {"port", candidate.port}});
  }
  facts["primary_hosts"] = std::move(hosts);
  return facts.dump();
}

openstack::ReplicaSpec ReplicaSpecFor(const ActionContext& context, const Action& action) {
  const config::Cluster& cluster = *context.cluster;
  const config::ReplicaTemplate& t = cluster.replica;
  openstack::ReplicaSpec spec;
  spec.cluster = cluster.name;
  spec.name = action.replica;
  spec.snapshot_id = action.snapshot_id;
  spec.volume_size_gb = t.volume_size_gib.value_or(0);
  spec.volume_type = t.volume_type;
  spec.availability_zone = action.zone;
  spec.flavor_id = context.ids.flavor_id;
  spec.image_id = context.ids.image_id;
  spec.network_ids = context.ids.network_ids;
  spec.security_groups = t.security_groups;
  spec.key_name = t.key_name;
  spec.metadata = t.metadata;
  spec.user_data =
      ReplicaUserData(cluster, action.replica, context.primary_host, context.primary_port);
  return spec;
}

std::string DnsRecordName(const config::Cluster& cluster, const std::string& replica) {
  const std::string tmpl = cluster.dns ? cluster.dns->record_template : std::string("{name}");
  std::string name = ReplaceAll(ReplaceAll(tmpl, "{name}", replica), "{cluster}", cluster.name);
  if (!name.empty() && name.back() == '.') return name;  // already fully qualified
  std::string zone = cluster.dns ? cluster.dns->zone : std::string();
  if (!zone.empty() && zone.back() != '.') zone += '.';
  return zone.empty() ? name : name + "." + zone;
}

std::string GoldenSnapshotName(const std::string& cluster, TimePoint now) {
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", &tm);
  return fmt::format("{}-golden-{}", cluster, stamp);
}

/// The load balancer's actions: traffic in, out of rotation, drained, removed.
Result<std::string> PerformLbAction(const ActionContext& context, const Action& action) {
  const config::Cluster& cluster = *context.cluster;
  if (auto ok = Need(context.lb, "load balancer"); !ok) return Fail(ok.error());
  switch (action.kind) {
    case ActionKind::kAdmit: {
      auto admitted = context.lb->EnsureMember(
          {action.replica, action.address, cluster.load_balancer.server_port});
      if (!admitted) return Fail(admitted.error());
      return fmt::format("{}:{} ready", action.address, cluster.load_balancer.server_port);
    }
    case ActionKind::kMaint: {
      if (auto done = context.lb->Maint(action.replica); !done) return Fail(done.error());
      return std::string("maint");
    }
    case ActionKind::kDrain: {
      if (auto done = context.lb->Drain(action.replica); !done) return Fail(done.error());
      return std::string("drain");
    }
    case ActionKind::kRemoveFromLb: {
      auto outcome =
          context.lb->Remove(action.replica, action.force ? lb::RemoveMode::kEvenWithSessions
                                                          : lb::RemoveMode::kWhenIdle);
      if (!outcome) return Fail(outcome.error());
      if (outcome->status == lb::RemoveOutcome::Status::kStillHasConnections) {
        // Traffic must leave before the server goes: stop this replica's chain here.
        return Fail(ErrorKind::kConflict,
                    fmt::format("{} still has {} session(s); it stays in HAProxy until they end "
                                "or the drain timeout passes",
                                action.replica, outcome->sessions));
      }
      return fmt::format("{} ({} session(s))", lb::ToString(outcome->status), outcome->sessions);
    }
    default:
      return Fail(ErrorKind::kInternal, "not a load balancer action");
  }
}

Result<std::string> PerformAction(const ActionContext& context, const Action& action,
                                  TimePoint now) {
  if (auto ok = Need(context.cluster != nullptr, "cluster"); !ok) return Fail(ok.error());
  const config::Cluster& cluster = *context.cluster;
  switch (action.kind) {
    case ActionKind::kCreateVolume: {
      if (auto ok = Need(context.cloud, "cloud"); !ok) return Fail(ok.error());
      auto volume = context.cloud->CreateReplicaVolume(ReplicaSpecFor(context, action));
      if (!volume) return Fail(volume.error());
      return fmt::format("volume {} {}", volume->id, volume->status);
    }
    case ActionKind::kCreateServer: {
      if (auto ok = Need(context.cloud, "cloud"); !ok) return Fail(ok.error());
      // The first boot points the standby at primary_host: without one it could not start.
      if (context.primary_host.empty()) {
        return Fail(ErrorKind::kTransient,
                    "the current primary is unknown, so the replica's first boot would have "
                    "nothing to follow; the server is created once the primary is found");
      }
      auto server =
          context.cloud->CreateReplicaServer(ReplicaSpecFor(context, action), action.volume_id);
      if (!server) return Fail(server.error());
      return fmt::format("server {} {}", server->id, server->status);
    }
    case ActionKind::kAdmit:
    case ActionKind::kMaint:
    case ActionKind::kDrain:
    case ActionKind::kRemoveFromLb:
      return PerformLbAction(context, action);
    case ActionKind::kEnsureDns: {
      if (!context.dns.enabled()) return Fail(ErrorKind::kConfig, "DNS is not configured");
      const std::string record = DnsRecordName(cluster, action.replica);
      if (auto done = context.dns.ensure(record, action.address); !done) {
        return Fail(done.error());
      }
      return fmt::format("{} A {}", record, action.address);
    }
    case ActionKind::kDeleteDns: {
      if (!context.dns.enabled()) return Fail(ErrorKind::kConfig, "DNS is not configured");
      const std::string record = DnsRecordName(cluster, action.replica);
      if (auto done = context.dns.remove(record); !done) return Fail(done.error());
      return record + " removed";
    }
    case ActionKind::kDeleteReplica: {
      if (auto ok = Need(context.cloud, "cloud"); !ok) return Fail(ok.error());
      auto progress = context.cloud->DeleteReplica(cluster.name, action.replica);
      if (!progress) return Fail(progress.error());
      return std::string(openstack::ToString(*progress));
    }
    case ActionKind::kTakeSnapshot: {
      if (auto ok = Need(context.cloud, "cloud"); !ok) return Fail(ok.error());
      const std::string volume =
          action.volume_id.empty() ? context.donor_volume_id : action.volume_id;
      if (volume.empty()) {
        return Fail(ErrorKind::kConfig,
                    fmt::format("the donor's data volume of cluster {} is unknown", cluster.name));
      }
      auto snapshot = context.cloud->SnapshotVolume(cluster.name, volume,
                                                    GoldenSnapshotName(cluster.name, now));
      if (!snapshot) return Fail(snapshot.error());
      return fmt::format("snapshot {} ({}) of volume {} {}", snapshot->name, snapshot->id, volume,
                         snapshot->status);
    }
    case ActionKind::kDeleteSnapshot: {
      if (auto ok = Need(context.cloud, "cloud"); !ok) return Fail(ok.error());
      if (auto done = context.cloud->DeleteSnapshot(action.snapshot_id); !done) {
        return Fail(done.error());
      }
      return "snapshot " + action.snapshot_id + " deleting";
    }
  }
  return Fail(ErrorKind::kInternal, "unknown action kind");
}

// ---------------------------------------------------------------------------------------------

Lane LaneOf(ActionKind kind) {
  switch (kind) {
    case ActionKind::kAdmit:
    case ActionKind::kMaint:
    case ActionKind::kDrain:
    case ActionKind::kRemoveFromLb:
      return Lane::kBalancer;
    case ActionKind::kCreateVolume:
    case ActionKind::kCreateServer:
    case ActionKind::kEnsureDns:
    case ActionKind::kDeleteDns:
    case ActionKind::kDeleteReplica:
    case ActionKind::kTakeSnapshot:
    case ActionKind::kDeleteSnapshot:
      break;
  }
  return Lane::kCloud;
}

Actuator::Actuator(Options options, EventJournal& journal, const Clock& clock)
    : options_(options), journal_(journal), clock_(clock) {
  if (options_.inline_execution) return;
  const int cloud = std::max(options_.threads, 1);
  const int balancer = std::max(options_.balancer_threads, 1);
  workers_.reserve(cloud + balancer);
  for (int i = 0; i < cloud; ++i) workers_.emplace_back([this] { WorkerLoop(Lane::kCloud); });
  for (int i = 0; i < balancer; ++i) {
    workers_.emplace_back([this] { WorkerLoop(Lane::kBalancer); });
  }
}

Actuator::~Actuator() {
  Stop();
  for (std::thread& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
}

std::string Actuator::KeyOf(const std::string& cluster, const Action& action) {
  // Snapshot actions have no replica: they share one slot per cluster.
  return cluster + kKeySeparator + action.replica;
}

bool Actuator::Allowed(const Job& job) const {
  return options_.fence == nullptr || options_.fence->HoldsTerm(job.term);
}

void Actuator::Abandon(const Job& job) {
  Event event;
  event.at = clock_.Now();
  event.cluster = job.cluster;
  event.replica = job.action.replica;
  event.type = "action_abandoned";
  event.action = std::string(ToString(job.action.kind));
  event.message = fmt::format(
      "not started: this instance no longer leads in term {} (the leader plans again)", job.term);
  event.details["term"] = job.term;
  event.details["reason"] = job.action.reason;
  journal_.Append(std::move(event));
  log::Warn("action abandoned: not leading", {{"cluster", job.cluster},
                                              {"replica", job.action.replica},
                                              {"action", ToString(job.action.kind)},
                                              {"term", job.term}});
}

void Actuator::Submit(const std::string& cluster, ActionContext context,
                      std::vector<Action> actions, uint64_t term) {
  if (options_.fence != nullptr && !options_.fence->HoldsTerm(term)) {
    for (Action& action : actions) Abandon(Job{cluster, context, std::move(action), term});
    return;
  }
  if (options_.inline_execution) {
    std::set<std::string> failed;
    for (Action& action : actions) {
      const std::string key = KeyOf(cluster, action);
      {
        std::lock_guard lock(mu_);
        if (stopping_) return;
      }
      if (failed.contains(key)) continue;
      if (!Execute(Job{cluster, context, std::move(action), term})) failed.insert(key);
    }
    return;
  }
  std::lock_guard lock(mu_);
  if (stopping_) return;
  for (Action& action : actions) {
    const std::string key = KeyOf(cluster, action);
    std::deque<Job>& queue = queues_[key];
    const bool was_idle = queue.empty() && !running_.contains(key);
    queue.push_back(Job{cluster, context, std::move(action), term});
    if (was_idle) MarkReadyLocked(key);
  }
}

void Actuator::MarkReadyLocked(const std::string& key) {
  auto it = queues_.find(key);
  if (it == queues_.end() || it->second.empty()) return;
  const auto lane = static_cast<size_t>(LaneOf(it->second.front().action.kind));
  ready_[lane].push_back(key);
  work_cv_[lane].notify_one();
}

void Actuator::WorkerLoop(Lane lane) {
  std::deque<std::string>& ready = ready_[static_cast<size_t>(lane)];
  std::condition_variable& work_cv = work_cv_[static_cast<size_t>(lane)];
  std::unique_lock lock(mu_);
  for (;;) {
    work_cv.wait(lock, [&] { return stopping_ || !ready.empty(); });
    if (stopping_) return;
    const std::string key = std::move(ready.front());
    ready.pop_front();
    auto it = queues_.find(key);
    if (it == queues_.end() || it->second.empty()) continue;
    Job job = std::move(it->second.front());
    it->second.pop_front();
    if (it->second.empty()) queues_.erase(it);
    running_.insert(key);
    lock.unlock();
    const bool ok = Execute(job);
    lock.lock();
    running_.erase(key);
    if (!ok) {
      // What followed a failed step (a server delete after a refused HAProxy removal) must not
      // run: the next cycle plans again from what it observes.
      queues_.erase(key);
    } else if (!stopping_) {
      // The replica's next action may belong to the other lane (a server delete after its
      // removal from HAProxy): it is handed to that lane's workers.
      MarkReadyLocked(key);
    }
    idle_cv_.notify_all();
  }
}

bool Actuator::Execute(const Job& job) {
  // The last check before anything is sent: leadership may have ended while the job waited
  // behind slower ones. What follows it in the replica's queue is dropped with it.
  if (!Allowed(job)) {
    Abandon(job);
    return false;
  }
  const Action& action = job.action;
  Event started;
  started.at = clock_.Now();
  started.cluster = job.cluster;
  started.replica = action.replica;
  started.type = "action_started";
  started.action = std::string(ToString(action.kind));
  started.message = action.reason;
  if (!action.zone.empty()) started.details["zone"] = action.zone;
  if (!action.snapshot_id.empty()) started.details["snapshot_id"] = action.snapshot_id;
  if (!action.volume_id.empty()) started.details["volume_id"] = action.volume_id;
  if (action.force) started.details["sessions"] = action.sessions;
  journal_.Append(started);

  Result<std::string> result = Fail(ErrorKind::kInternal, "not run");
  try {
    result = PerformAction(job.context, action, started.at);
  } catch (const std::exception& e) {
    // Clients convert their libraries' exceptions; this is the last line so a worker never dies.
    result = Fail(ErrorKind::kInternal, fmt::format("unexpected exception: {}", e.what()));
  }

  Completion completion;
  completion.cluster = job.cluster;
  completion.action = action;
  completion.finished = clock_.Now();
  Event done = started;
  done.at = completion.finished;
  if (result) {
    completion.detail = *result;
    done.type = "action_succeeded";
    done.result = "ok";
    done.details["detail"] = *result;
  } else {
    completion.error = result.error();
    done.type = "action_failed";
    done.result = std::string(ra::ToString(result.error().kind));
    done.message = result.error().message;
    done.details["reason"] = action.reason;
    log::Warn("action failed", {{"cluster", job.cluster},
                                {"replica", action.replica},
                                {"action", ToString(action.kind)},
                                {"kind", ra::ToString(result.error().kind)},
                                {"error", log::Redact(result.error().message)}});
  }
  journal_.Append(std::move(done));
  {
    std::lock_guard lock(mu_);
    completions_[job.cluster].push_back(completion);
  }
  {
    std::lock_guard lock(callback_mu_);
    if (on_completion_) on_completion_(completion);
  }
  return result.has_value();
}

void Actuator::SetOnCompletion(std::function<void(const Completion&)> callback) {
  std::lock_guard lock(callback_mu_);
  on_completion_ = std::move(callback);
}

BusySet Actuator::Busy(const std::string& cluster) const {
  std::lock_guard lock(mu_);
  BusySet busy;
  const std::string prefix = cluster + kKeySeparator;
  auto note = [&](const std::string& key) {
    if (key.compare(0, prefix.size(), prefix) != 0) return;
    const std::string replica = key.substr(prefix.size());
    if (replica.empty()) {
      busy.snapshot = true;
    } else {
      busy.replicas.insert(replica);
    }
  };
  for (const auto& [key, queue] : queues_) {
    if (!queue.empty()) note(key);
  }
  for (const std::string& key : running_) note(key);
  return busy;
}

std::vector<Completion> Actuator::TakeCompletions(const std::string& cluster) {
  std::lock_guard lock(mu_);
  auto it = completions_.find(cluster);
  if (it == completions_.end()) return {};
  std::vector<Completion> out = std::move(it->second);
  completions_.erase(it);
  return out;
}

bool Actuator::Stop() {
  std::unique_lock lock(mu_);
  if (!stopping_) {
    stopping_ = true;
    size_t dropped = 0;
    for (const auto& [key, queue] : queues_) dropped += queue.size();
    queues_.clear();
    for (auto& ready : ready_) ready.clear();
    if (dropped > 0) log::Info("actuator stopping", {{"dropped_actions", dropped}});
    for (auto& cv : work_cv_) cv.notify_all();
  }
  return idle_cv_.wait_for(lock, options_.stop_timeout, [this] { return running_.empty(); });
}

}  // namespace ra::autoscaler
