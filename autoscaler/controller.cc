#include "autoscaler/controller.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <utility>

#include "core/duration.h"
#include "core/log.h"

namespace ra::autoscaler {

namespace {

std::string ReplaceAll(std::string text, std::string_view from, std::string_view to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

template <typename D>
double Seconds(D d) {
  return std::chrono::duration<double>(d).count();
}

double UnixSeconds(TimePoint t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

// The order a replica goes up through; -1 for phases that are not on the way up.
int UpRank(Phase phase) {
  switch (phase) {
    case Phase::kVolumeCreating:
      return 0;
    case Phase::kServerBuilding:
      return 1;
    case Phase::kPostgresStarting:
      return 2;
    case Phase::kCatchingUp:
      return 3;
    case Phase::kAdmitting:
      return 4;
    case Phase::kServing:
      return 5;
    default:
      return -1;
  }
}

// docs/metrics.md's duration phase for the step a replica leaves; "" when none.
std::string_view DurationPhase(Phase left) {
  switch (left) {
    case Phase::kVolumeCreating:
      return "volume";
    case Phase::kServerBuilding:
      return "server";
    case Phase::kPostgresStarting:
      return "postgres";
    case Phase::kCatchingUp:
      return "catch_up";
    case Phase::kAdmitting:
      return "admit";
    default:
      return "";
  }
}

bool ContainsNoCase(std::string_view haystack, std::string_view needle) {
  auto it = std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end(),
                        [](char a, char b) { return std::tolower(a) == std::tolower(b); });
  return it != haystack.end();
}

// docs/metrics.md's provisioning failure reason of a failed create call.
std::string_view CreateFailureReason(const Error& error) {
  if (error.kind == ErrorKind::kQuota) return "quota";
  if (ContainsNoCase(error.message, "no valid host") || ContainsNoCase(error.message, "capacity")) {
    return "capacity";
  }
  return "other";
}

std::string_view ComponentOf(ActionKind kind) {
  switch (kind) {
    case ActionKind::kAdmit:
    case ActionKind::kMaint:
    case ActionKind::kDrain:
    case ActionKind::kRemoveFromLb:
      return "dataplane";
    default:
      return "cloud";
  }
}

std::string BlockedKey(const Blocked& b) {
  return fmt::format("{}/{}", ToString(b.kind), b.replica);
}

}  // namespace

std::string ReplicaName(const std::string& name_template, const std::string& cluster,
                        const std::string& id, const std::string& zone) {
  std::string name = ReplaceAll(ReplaceAll(name_template, "{cluster}", cluster), "{id}", id);
  name = ReplaceAll(name, "{zone}", zone);
  if (zone.empty()) {
    // The zone is chosen by Reconcile after the name: leave no doubled or dangling separator.
    for (const char* twice : {"--", "..", "__"}) {
      for (size_t at = name.find(twice); at != std::string::npos; at = name.find(twice)) {
        name.erase(at, 1);
      }
    }
    while (!name.empty() && (name.front() == '-' || name.front() == '.')) name.erase(0, 1);
    while (!name.empty() && (name.back() == '-' || name.back() == '.')) name.pop_back();
  }
  return name;
}

// ---------------------------------------------------------------------------------------------

struct Controller::ObserveResult {
  Observed observed{};
  std::vector<std::pair<std::string, Error>> errors{};  // component, error
  std::optional<int64_t> primary_lsn{};
};

Controller::Controller(const config::Config& config, const Clock& clock, Random random,
                       EventJournal& journal, ServiceMetrics& metrics,
                       std::vector<ClusterDeps> clusters, ControllerOptions options)
    : config_(config),
      clock_(clock),
      random_(std::move(random)),
      journal_(journal),
      metrics_(metrics),
      options_(options),
      actuator_(options.actuator, journal, clock) {
  if (!random_) {
    auto engine = std::make_shared<std::mt19937>(std::random_device{}());
    random_ = [engine] { return static_cast<uint32_t>((*engine)()); };
  }
  for (ClusterDeps& deps : clusters) {
    auto state = std::make_unique<ClusterState>();
    state->template_ids = deps.template_ids;
    state->donor_volume_id = deps.donor_volume_id;
    state->deps = std::move(deps);
    clusters_.push_back(std::move(state));
  }
  try {
    LoadState();
  } catch (const std::exception& e) {
    // The checks above should leave nothing to throw; a saved file never stops the service.
    log::Error("operator state ignored", {{"path", options_.state_path}, {"error", e.what()}});
  }
  actuator_.SetOnCompletion([this](const Completion& c) { OnActionCompleted(c); });
}

Controller::~Controller() {
  Stop();
  // An action still running after Stop's deadline must not reach the loop's members, which go
  // before the actuator: once cleared, the callback is not running and never runs again.
  actuator_.SetOnCompletion(nullptr);
}

std::string StatePathFor(const config::JournalConfig& journal) {
  if (journal.path.empty()) return "";
  return (std::filesystem::path(journal.path).parent_path() / "state.json").string();
}

namespace {

constexpr int kStateVersion = 1;

int64_t UnixMillis(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// Writes `text` to `path` so that a reader (or a restart after a crash) sees either the old
// file or the new one, never a part: a temporary file beside it, flushed, then renamed over.
Result<void> WriteAtomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  // O_NOFOLLOW: a link planted at the temporary name must not redirect the write.
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
  if (fd < 0) {
    return Fail(ErrorKind::kInternal,
                fmt::format("cannot create {}: {}", tmp, std::strerror(errno)));
  }
  size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return Fail(ErrorKind::kInternal, fmt::format("cannot write {}: {}", tmp, why));
    }
    written += static_cast<size_t>(n);
  }
  const bool synced = ::fsync(fd) == 0;
  const std::string sync_error = synced ? std::string() : std::strerror(errno);
  ::close(fd);
  if (!synced) {
    ::unlink(tmp.c_str());
    return Fail(ErrorKind::kInternal, fmt::format("cannot sync {}: {}", tmp, sync_error));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    ::unlink(tmp.c_str());
    return Fail(ErrorKind::kInternal,
                fmt::format("cannot rename {} to {}: {}", tmp, path, ec.message()));
  }
  // The rename itself lives in the directory: sync it too, or a crash could bring the old file
  // back. A failure here loses at most this change on a crash, so it is not an error.
  const std::string dir = std::filesystem::path(path).parent_path().string();
  if (const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

}  // namespace

void Controller::LoadState() {
  const std::string& path = options_.state_path;
  if (path.empty()) return;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return;  // first start: nothing was set yet
  const TimePoint now = clock_.Now();
  const auto ignore = [&](const std::string& why) {
    log::Error("operator state ignored", {{"path", path}, {"error", why}});
    journal_.Append(
        {.at = now,
         .type = "state_ignored",
         .message = fmt::format("the saved overrides and pauses in {} were ignored "
                                "({}): none is in force; set them again through the API",
                                path, why)});
  };
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in.good() && !in.eof()) return ignore("it could not be read");
  nlohmann::json doc = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return ignore("it is not valid JSON");
  if (!doc.is_object() || !doc.contains("clusters") || !doc["clusters"].is_object()) {
    return ignore("it has no 'clusters' object");
  }
  const auto version = doc.find("version");
  if (version == doc.end() || !version->is_number_integer() ||
      version->get<int64_t>() != kStateVersion) {
    return ignore(fmt::format("version {} is not {}",
                              version == doc.end() ? std::string("(none)") : version->dump(),
                              kStateVersion));
  }
  std::lock_guard lock(mu_);
  for (const auto& [name, entry] : doc["clusters"].items()) {
    ClusterState* state = Find(name);
    if (state == nullptr || !entry.is_object()) {
      log::Warn("operator state of an unknown cluster dropped", {{"cluster", name}});
      continue;
    }
    if (const auto it = entry.find("paused"); it != entry.end() && it->is_boolean() && *it) {
      state->paused = true;
      const auto reason = entry.find("paused_reason");
      state->paused_reason =
          reason != entry.end() && reason->is_string() ? reason->get<std::string>() : std::string();
    }
    const auto o = entry.find("override");
    if (o == entry.end() || !o->is_object()) continue;
    const auto replicas = o->find("replicas");
    if (replicas == o->end() || !replicas->is_number_integer() || replicas->get<int64_t>() < 0 ||
        replicas->get<int64_t>() > 1'000'000) {
      log::Warn("saved override without a replica count dropped", {{"cluster", name}});
      continue;
    }
    policies::ManualOverride manual;
    manual.replicas = replicas->get<int>();
    if (const auto r = o->find("reason"); r != o->end() && r->is_string()) manual.reason = *r;
    // Milliseconds within ±10^14 (about 3000 years) convert to the clock's nanoseconds safely.
    if (const auto e = o->find("expires_at_unix_ms"); e != o->end()) {
      // An expiry that cannot be read must not make the override permanent: dropped.
      constexpr int64_t kLimit = 100'000'000'000'000;
      int64_t ms = 0;
      bool readable = false;
      if (e->is_number_unsigned()) {  // how the parser reads any non-negative integer
        readable = e->get<uint64_t>() < static_cast<uint64_t>(kLimit);
        ms = readable ? static_cast<int64_t>(e->get<uint64_t>()) : 0;
      } else if (e->is_number_integer()) {
        ms = e->get<int64_t>();
        readable = ms > -kLimit && ms < kLimit;
      }
      if (!readable) {
        log::Warn("saved override with an unreadable expiry dropped",
                  {{"cluster", name}, {"expires_at_unix_ms", e->dump()}});
        continue;
      }
      manual.expires_at =
          TimePoint(std::chrono::duration_cast<Duration>(std::chrono::milliseconds(ms)));
    }
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
    state->manual = manual;
  }
}

void Controller::SaveState() {
  if (options_.state_path.empty()) return;
  std::lock_guard file_lock(state_file_mu_);
  nlohmann::json clusters = nlohmann::json::object();
  {
    std::lock_guard lock(mu_);
    for (const auto& state : clusters_) {
      nlohmann::json entry = nlohmann::json::object();
      if (state->paused) {
        entry["paused"] = true;
        entry["paused_reason"] = state->paused_reason;
      }
      if (state->manual) {
        nlohmann::json o{{"replicas", state->manual->replicas}, {"reason", state->manual->reason}};
        if (state->manual->expires_at) {
          o["expires_at_unix_ms"] = UnixMillis(*state->manual->expires_at);
          o["expires_at"] = FormatTime(*state->manual->expires_at);  // for people reading it
        }
        entry["override"] = std::move(o);
      }
      if (!entry.empty()) clusters[state->deps.cluster->name] = std::move(entry);
    }
  }
  const nlohmann::json doc{{"version", kStateVersion}, {"clusters", std::move(clusters)}};
  if (auto written = WriteAtomically(options_.state_path, doc.dump(2) + "\n"); !written) {
    log::Error("operator state not saved: an override or pause will not survive a restart",
               {{"path", options_.state_path}, {"error", written.error().message}});
  }
}

Controller::ClusterState* Controller::Find(const std::string& cluster) {
  for (auto& state : clusters_) {
    if (state->deps.cluster->name == cluster) return state.get();
  }
  return nullptr;
}

const Controller::ClusterState* Controller::Find(const std::string& cluster) const {
  for (const auto& state : clusters_) {
    if (state->deps.cluster->name == cluster) return state.get();
  }
  return nullptr;
}

uint32_t Controller::NextRandom() { return random_(); }

std::vector<std::string> Controller::FreshNames(const ClusterState& state, const Observed& observed,
                                                int count) {
  const config::Cluster& cluster = *state.deps.cluster;
  std::set<std::string> taken;
  for (const ObservedReplica& r : observed.replicas) taken.insert(r.name);
  for (const std::string& name : observed.foreign_lb_servers) taken.insert(name);
  for (const auto& [name, memory] : state.memory.replicas) taken.insert(name);
  std::vector<std::string> names;
  // Bounded: 2^24 ids make a collision rare; give up rather than spin on a broken source.
  for (int attempt = 0; static_cast<int>(names.size()) < count && attempt < count * 20; ++attempt) {
    const std::string id = fmt::format("{:06x}", NextRandom() & 0xffffffu);
    std::string name = ReplicaName(cluster.replica.name_template, cluster.name, id, "");
    if (taken.insert(name).second) names.push_back(std::move(name));
  }
  return names;
}

Controller::ObserveResult Controller::Observe(ClusterState& state, TimePoint now) {
  const ClusterDeps& deps = state.deps;
  const config::Cluster& cluster = *deps.cluster;
  ObserveResult out;
  Observed& observed = out.observed;
  auto error = [&out](std::string component, Error e) {
    out.errors.emplace_back(std::move(component), std::move(e));
  };

  // The cloud: our replicas by tag.
  std::map<std::string, ObservedReplica> replicas;
  if (auto listed = deps.cloud->ListReplicas(cluster.name); listed) {
    for (openstack::ReplicaFacts& facts : *listed) {
      ObservedReplica& r = replicas[facts.name];
      r.name = facts.name;
      r.server = std::move(facts.server);
      r.volume = std::move(facts.volume);
    }
  } else {
    observed.cloud_error = listed.error();
    error("cloud", listed.error());
  }

  // HAProxy: ours are the servers named like a replica of ours, or like the names we make.
  static const std::string kIdMark = "\x01";
  const std::string shape = ReplicaName(cluster.replica.name_template, cluster.name, kIdMark, "");
  std::string pattern;
  for (char c : shape) {
    if (c == '\x01') {
      pattern += "[0-9a-f]{6}";
    } else if (std::isalnum(static_cast<unsigned char>(c))) {
      pattern += c;
    } else {
      pattern += '\\';
      pattern += c;
    }
  }
  const std::regex ours(pattern);
  if (auto servers = deps.lb->ListMembers(); servers) {
    for (lb::Member& server : *servers) {
      auto it = replicas.find(server.name);
      if (it == replicas.end() && !std::regex_match(server.name, ours)) {
        observed.foreign_lb_servers.push_back(server.name);
        continue;
      }
      ObservedReplica& r = replicas[server.name];
      r.name = server.name;
      r.lb = std::move(server);
    }
  } else {
    observed.lb_error = servers.error();
    error("dataplane", servers.error());
  }

  // Golden snapshots, oldest first. When the cloud did not answer the first read, the others
  // are not tried this cycle: each would wait out its own retries for the same outage.
  const bool cloud_down = observed.cloud_error && (IsRetryable(observed.cloud_error->kind) ||
                                                   observed.cloud_error->kind == ErrorKind::kAuth);
  if (cloud_down) {
    observed.snapshots_error = observed.cloud_error;
  } else if (auto snapshots = deps.cloud->ListSnapshots(cluster.name); snapshots) {
    observed.snapshots = std::move(*snapshots);
    std::stable_sort(observed.snapshots.begin(), observed.snapshots.end(),
                     [](const openstack::SnapshotFacts& a, const openstack::SnapshotFacts& b) {
                       return a.created.value_or(TimePoint{}) < b.created.value_or(TimePoint{});
                     });
  } else {
    observed.snapshots_error = snapshots.error();
    error("cloud", snapshots.error());
  }

  // The donor's volume, resolved once.
  if (state.donor_volume_id.empty() && deps.resolve_donor && !cloud_down) {
    if (auto volume = deps.resolve_donor(); volume) {
      state.donor_volume_id = *volume;
    } else {
      error("cloud", volume.error());
    }
  }
  observed.donor_volume_id = state.donor_volume_id;

  // Zones: the template's, else the cloud's (cached: they rarely change).
  if (!cluster.replica.zones.empty()) {
    observed.zones = cluster.replica.zones;
  } else {
    if (!cloud_down &&
        (!state.zones_cached_at || now - *state.zones_cached_at >= options_.zones_cache)) {
      if (auto zones = deps.cloud->AvailabilityZones(); zones) {
        state.zones_cache = std::move(*zones);
        state.zones_cached_at = now;
      } else {
        error("cloud", zones.error());
      }
    }
    observed.zones = state.zones_cache;
  }

  // The primary and its position, then every replica that can answer, in parallel.
  int64_t primary_lsn = -1;
  if (auto primary = deps.primary->Locate(); primary) {
    observed.primary_host = primary->host;
    observed.primary_port = primary->port;
    if (auto lsn = deps.probe->PrimaryLsn(primary->host, primary->port); lsn) {
      primary_lsn = *lsn;
      out.primary_lsn = *lsn;
    } else {
      error("postgres", lsn.error());
    }
  } else {
    error("postgres", primary.error());
  }
  std::vector<std::pair<std::string, std::future<ProbeResult>>> probes;
  for (auto& [name, r] : replicas) {
    if (!r.server || r.server->status != "ACTIVE" || r.server->address.empty()) continue;
    probes.emplace_back(
        name,
        std::async(std::launch::async, [&deps, &cluster, address = r.server->address, primary_lsn] {
          return deps.probe->ProbeReplica(address, cluster.postgres.port, primary_lsn);
        }));
  }
  for (auto& [name, future] : probes) replicas[name].probe = future.get();

  for (auto& [name, r] : replicas) observed.replicas.push_back(std::move(r));
  return out;
}

void Controller::ApplyCompletions(ClusterState& state, const std::vector<Completion>& completions,
                                  TimePoint now) {
  const config::Cluster& cluster = *state.deps.cluster;
  for (const Completion& c : completions) {
    const Action& a = c.action;
    const bool creates = a.kind == ActionKind::kCreateVolume || a.kind == ActionKind::kCreateServer;
    if (c.error) {
      metrics_.CountError(ComponentOf(a.kind), c.error->kind);
      if (creates) {
        const std::string_view reason = CreateFailureReason(*c.error);
        Error backoff = *c.error;
        // "No valid host" is capacity, not a transient glitch: it backs off like a quota.
        if (reason == "capacity") backoff.kind = ErrorKind::kQuota;
        // A server refused for quota or capacity will not come in that zone for a while: the
        // replica fails, so Reconcile deletes its volume and plans the replacement in another
        // zone (or blocks with the backoff's reason). Kept, it would count as active and stay
        // pinned to the backed-off zone through the whole backoff. A transient error is
        // retried with the same volume.
        const bool give_up = a.kind == ActionKind::kCreateServer &&
                             (reason == "quota" || reason == "capacity") && !a.replica.empty();
        const std::string message =
            fmt::format("server refused in {} ({}): {}",
                        a.zone.empty() ? "the cloud's zone" : a.zone, reason, c.error->message);
        {
          std::lock_guard lock(mu_);
          RecordZoneFailure(state.memory, a.zone, cluster.replica.flavor, backoff, now);
          if (give_up) {
            auto [m, added] = state.memory.replicas.try_emplace(a.replica);
            if (added) m->second.first_seen = m->second.phase_since = now;
            m->second.failure = message;
            m->second.failure_reason = std::string(reason);
            if (m->second.zone.empty()) m->second.zone = a.zone;
          }
        }
        metrics_.CountProvisioningFailure(cluster.name, a.zone, reason);
        if (give_up) {
          journal_.Append({.at = c.finished,
                           .cluster = cluster.name,
                           .replica = a.replica,
                           .type = "replica_failed",
                           .result = std::string(reason),
                           .message = message + "; its volume is deleted and the replica replaced",
                           .details = {{"zone", a.zone}}});
        }
      }
      if (a.kind == ActionKind::kEnsureDns) {
        // Reconcile asks for a record when a replica starts serving: once failed, ask again.
        std::lock_guard lock(mu_);
        auto m = state.memory.replicas.find(a.replica);
        if (m != state.memory.replicas.end()) m->second.dns_retry = true;
      }
      continue;
    }
    if (creates) {
      std::lock_guard lock(mu_);
      RecordZoneSuccess(state.memory, a.zone, cluster.replica.flavor);
    }
    if (a.kind == ActionKind::kRemoveFromLb && a.force) {
      metrics_.CountForcedDrain(cluster.name);
      journal_.Append(
          {.at = c.finished,
           .cluster = cluster.name,
           .replica = a.replica,
           .type = "forced_drain",
           .message = fmt::format(
               "{} removed from HAProxy after the drain timeout with {} session(s) still open",
               a.replica, a.sessions),
           .details = {{"sessions", a.sessions}}});
    }
  }
}

bool Controller::RunOnce(TimePoint now) {
  std::lock_guard cycle(cycle_mu_);
  const auto started = std::chrono::steady_clock::now();
  bool ok = true;
  for (auto& state : clusters_) {
    try {
      ok = RunCluster(*state, now) && ok;
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

bool Controller::RunCluster(ClusterState& state, TimePoint now) {
  const ClusterDeps& deps = state.deps;
  const config::Cluster& cluster = *deps.cluster;
  ++state.cycles;

  ApplyCompletions(state, actuator_.TakeCompletions(cluster.name), now);
  const BusySet busy = actuator_.Busy(cluster.name);

  ObserveResult seen = Observe(state, now);
  const bool cloud_unread = seen.observed.cloud_error.has_value();

  // Policies: each query through the metrics source, outside the lock.
  const std::map<std::string, std::string> queries = policies::Queries(cluster.policy);
  std::map<std::string, policies::Reading> readings;
  for (const auto& [policy, query] : queries) {
    Result<policies::QueryResult> answer =
        deps.metrics ? deps.metrics->Query(query, now)
                     : Result<policies::QueryResult>(
                           Fail(ErrorKind::kConfig, "no metrics source is configured"));
    policies::Reading reading =
        policies::ToReading(answer, now, cluster.policy.missing_data.max_age);
    if (reading.error) metrics_.CountError("metrics", reading.error->kind);
    readings[policy] = std::move(reading);
  }

  std::optional<Plan> previous;
  Plan plan;
  policies::Decision decision;
  int previous_desired = 0;
  bool override_expired = false;
  std::optional<policies::ManualOverride> expired;
  {
    std::lock_guard lock(mu_);
    previous = state.last_plan;
    if (state.manual && state.manual->expires_at && *state.manual->expires_at <= now) {
      expired = state.manual;
      state.manual.reset();
      override_expired = true;
    }
    ReconcileInput rin;
    rin.cluster = &cluster;
    rin.observed = seen.observed;
    rin.busy = busy.replicas;
    rin.snapshot_busy = busy.snapshot;
    rin.now = now;
    // The policies' current count is the replicas active now, as Reconcile counts them: leaving
    // ones (marked by us, or found in drain after a restart) are not. The previous plan's
    // `active` was counted before its victims left and its re-admissions came back, so it
    // swung between two values from one cycle to the next; with no scale event recorded (a
    // restart empties the history) the engine's baseline is that count, and the desired count
    // followed it: a draining replica was re-admitted and drained again every other cycle.
    // When a source could not be read, nothing is known better than the last count.
    int current = 0;
    if ((seen.observed.cloud_error || seen.observed.lb_error) && state.decision) {
      current = state.decision->current;
    } else {
      ClusterMemory scratch = state.memory;
      ReconcileInput count = rin;
      count.paused = true;  // plans no victim, no re-admission, nothing new: it only counts
      current = Reconcile(count, scratch).active;
    }
    policies::EvaluationInput input;
    input.current_replicas = current;
    input.readings = std::move(readings);
    input.manual = state.manual;
    input.now = now;
    decision = policies::Evaluate(cluster.policy, state.memory.policy_history, input);
    previous_desired = state.desired.value_or(current);
    // Paused across a restart, with a first cycle that could not read the cloud or HAProxy: the
    // count to hold is not known yet (0 would be held until resume); hold what is seen, and
    // learn the count from the first readable cycle.
    const bool hold_unknown = state.paused && !decision.override_active && !state.desired &&
                              (seen.observed.cloud_error || seen.observed.lb_error);
    if (state.paused && !decision.override_active) {
      // Paused: the count stays where it was; building and draining still finish.
      decision.desired = previous_desired;
      decision.reason =
          fmt::format("paused ({}): holding {} replica(s); the policies said: {}",
                      state.paused_reason.empty() ? "no reason given" : state.paused_reason,
                      previous_desired, decision.reason);
    }
    state.memory.policy_history =
        policies::Record(cluster.policy, state.memory.policy_history, decision, now);

    rin.desired = decision.desired;
    // Pause stops the policies, not an operator: a manual count is acted on while paused.
    rin.paused = state.paused && !decision.override_active;
    // Names are made outside Reconcile (it never makes randomness); enough for this cycle.
    const int wanted = std::max(0, decision.desired - current) + 2;
    rin.fresh_names = FreshNames(state, seen.observed, wanted);
    const ClusterMemory before = state.memory;
    plan = Reconcile(rin, state.memory);
    if (!plan.failures.empty()) {
      // Reconcile finds failures and plans their replacements in one call, but the zone's
      // backoff is the loop's to record: record it, then plan again from the same memory so
      // the replacement does not go straight back to the zone that just failed.
      state.memory = before;
      for (const FailureEvent& f : plan.failures) {
        const ErrorKind kind = f.reason == "quota" || f.reason == "capacity" ? ErrorKind::kQuota
                                                                             : ErrorKind::kInternal;
        RecordZoneFailure(state.memory, f.zone, cluster.replica.flavor, Error{kind, f.message},
                          now);
      }
      plan = Reconcile(rin, state.memory);
    }

    // A server's first boot follows the primary named in its user_data. With none known the
    // server waits, blocked with the reason; failing it in the actuator would back the zone off
    // for a fault that is not the zone's. No new volume is started either: it would wait for a
    // server until its budget ran out, and be failed and made again, over and over.
    if (seen.observed.primary_host.empty()) {
      std::set<std::string> not_started;
      std::erase_if(plan.actions, [&plan, &not_started](const Action& a) {
        if (a.kind != ActionKind::kCreateServer && a.kind != ActionKind::kCreateVolume) {
          return false;
        }
        if (a.kind == ActionKind::kCreateVolume) not_started.insert(a.replica);
        plan.blocked.push_back(
            Blocked{.kind = a.kind,
                    .replica = a.replica,
                    .reason = "the current primary is unknown, so a new replica's first boot "
                              "would have nothing to follow: it is built once the primary is "
                              "found"});
        return true;
      });
      // Reconcile remembered the replicas it planned; those not started are not replicas.
      for (const std::string& name : not_started) state.memory.replicas.erase(name);
      std::erase_if(plan.replicas,
                    [&](const ReplicaView& v) { return not_started.contains(v.name); });
    }

    // A snapshot about to be requested: remember it so the next cycles do not ask again.
    for (const Action& a : plan.actions) {
      if (a.kind == ActionKind::kTakeSnapshot) {
        state.memory.snapshot_requested_at = now;
        state.memory.snapshot_on_demand = false;
      }
    }
    state.last_plan = plan;
    state.decision = decision;
    state.decided_at = now;
    if (!hold_unknown) state.desired = decision.desired;
    state.last_cycle_at = now;
    state.primary =
        seen.observed.primary_host.empty()
            ? std::string()
            : fmt::format("{}:{}", seen.observed.primary_host, seen.observed.primary_port);
    state.newest_snapshot.reset();
    state.snapshot_creating = false;
    for (const openstack::SnapshotFacts& s : seen.observed.snapshots) {
      if (s.status == "available") state.newest_snapshot = s;
      state.snapshot_creating |= s.status == "creating";
    }
    std::string last_error;
    for (const auto& [component, e] : seen.errors) {
      if (!last_error.empty()) last_error += "; ";
      last_error += fmt::format("{}: {}", component, log::Redact(e.ToString()));
    }
    state.last_error = last_error;
  }

  if (override_expired) {
    SaveState();
    journal_.Append({.at = now,
                     .cluster = cluster.name,
                     .type = "manual_override_expired",
                     .message = fmt::format("the manual count of {} expired; the policies decide "
                                            "again",
                                            expired->replicas)});
  }
  for (const auto& [component, e] : seen.errors) {
    metrics_.CountError(component, e.kind);
    log::Warn("observe failed", {{"cluster", cluster.name},
                                 {"component", component},
                                 {"kind", ToString(e.kind)},
                                 {"error", log::Redact(e.message)}});
  }

  // Creating needs the template's ids: resolved at the first need, never inside the lock.
  std::vector<Action> actions = plan.actions;
  const bool creates = std::any_of(actions.begin(), actions.end(), [](const Action& a) {
    return a.kind == ActionKind::kCreateVolume || a.kind == ActionKind::kCreateServer;
  });
  if (creates && !state.template_ids && deps.resolve_template) {
    if (auto ids = deps.resolve_template(); ids) {
      state.template_ids = std::move(*ids);
    } else {
      seen.errors.emplace_back("cloud", ids.error());
      metrics_.CountError("cloud", ids.error().kind);
      log::Warn("template not resolved: nothing is created this cycle",
                {{"cluster", cluster.name}, {"error", log::Redact(ids.error().message)}});
      std::lock_guard lock(mu_);
      if (!state.last_error.empty()) state.last_error += "; ";
      state.last_error += "cloud: " + log::Redact(ids.error().ToString());
    }
  }
  if (creates && !state.template_ids) {
    std::erase_if(actions, [](const Action& a) {
      return a.kind == ActionKind::kCreateVolume || a.kind == ActionKind::kCreateServer;
    });
  }

  ReportPlan(state, previous, plan, now);
  metrics_.RecordCycle(cluster.name, decision, previous_desired, plan);
  if (decision.desired != previous_desired || !previous) {
    journal_.Append({.at = now,
                     .cluster = cluster.name,
                     .type = "decision",
                     .message = decision.reason,
                     .details = {{"from", previous_desired},
                                 {"to", decision.desired},
                                 {"current", decision.current},
                                 {"override", decision.override_active}}});
  }

  // The quota, now and then, for the dashboard.
  if (options_.quota_every_cycles > 0 && (state.cycles - 1) % options_.quota_every_cycles == 0 &&
      !cloud_unread) {
    if (auto quota = deps.cloud->RemainingQuota(); quota) {
      // -1 means unlimited: no gauge rather than a negative figure that reads as "exhausted".
      const std::pair<std::string_view, int> figures[] = {{"instances", quota->instances},
                                                          {"cores", quota->cores},
                                                          {"ram_mb", quota->ram_mb},
                                                          {"volumes", quota->volumes},
                                                          {"gigabytes", quota->gigabytes}};
      for (const auto& [resource, value] : figures) {
        if (value >= 0) metrics_.SetQuota(cluster.name, resource, value);
      }
    } else {
      metrics_.CountError("cloud", quota.error().kind);
    }
  }

  int serving = 0;
  for (const ReplicaView& v : plan.replicas) {
    serving += v.phase == Phase::kServing && !v.foreign ? 1 : 0;
  }
  log::Info("cycle", {{"cluster", cluster.name},
                      {"desired", plan.desired},
                      {"active", plan.active},
                      {"serving", serving},
                      {"actions", actions.size()},
                      {"blocked", plan.blocked.size()},
                      {"decision", decision.reason},
                      {"reason", plan.reason}});

  if (!actions.empty()) {
    ActionContext context;
    context.cluster = &cluster;
    context.cloud = deps.cloud;
    context.lb = deps.lb;
    context.dns = deps.dns;
    if (state.template_ids) context.ids = *state.template_ids;
    context.primary_host = seen.observed.primary_host;
    context.primary_port = seen.observed.primary_port;
    context.donor_volume_id = state.donor_volume_id;
    actuator_.Submit(cluster.name, std::move(context), std::move(actions));
  }
  return seen.errors.empty();
}

void Controller::ReportPlan(ClusterState& state, const std::optional<Plan>& previous,
                            const Plan& plan, TimePoint now) {
  const config::Cluster& cluster = *state.deps.cluster;
  std::map<std::string, const ReplicaView*> before;
  if (previous) {
    for (const ReplicaView& v : previous->replicas) before[v.name] = &v;
  }
  for (const ReplicaView& v : plan.replicas) {
    auto it = before.find(v.name);
    const ReplicaView* old = it == before.end() ? nullptr : it->second;
    if (old && old->phase == v.phase) continue;
    Event event;
    event.at = now;
    event.cluster = cluster.name;
    event.replica = v.name;
    event.type = "phase_changed";
    event.message = old ? fmt::format("{} -> {}{}{}", ToString(old->phase), ToString(v.phase),
                                      v.detail.empty() ? "" : ": ", v.detail)
                        : fmt::format("first seen in {}{}{}", ToString(v.phase),
                                      v.detail.empty() ? "" : ": ", v.detail);
    event.details = {{"to", ToString(v.phase)}, {"zone", v.zone}};
    if (old) event.details["from"] = ToString(old->phase);
    journal_.Append(std::move(event));

    // Durations of the steps of a scale-up, observed when a replica leaves a step going up.
    if (old && UpRank(old->phase) >= 0 && UpRank(v.phase) > UpRank(old->phase)) {
      const std::string_view step = DurationPhase(old->phase);
      if (!step.empty())
        metrics_.ObservePhaseDuration(cluster.name, step, Seconds(now - old->phase_since));
      if (v.phase == Phase::kServing) {
        // From the request (first seen by this process), else from the cloud's creation time.
        TimePoint began = v.created;
        {
          std::lock_guard lock(mu_);
          auto m = state.memory.replicas.find(v.name);
          if (m != state.memory.replicas.end() && m->second.first_seen != TimePoint{}) {
            began = m->second.first_seen;
          }
        }
        if (began != TimePoint{} && began <= now) {
          metrics_.ObservePhaseDuration(cluster.name, "total", Seconds(now - began));
        }
      }
    }
  }

  // Replicas that failed in this cycle (their zone's backoff was recorded before planning).
  for (const FailureEvent& f : plan.failures) {
    journal_.Append({.at = now,
                     .cluster = cluster.name,
                     .replica = f.replica,
                     .type = "replica_failed",
                     .result = f.reason,
                     .message = f.message,
                     .details = {{"zone", f.zone}}});
    metrics_.CountProvisioningFailure(cluster.name, f.zone, f.reason);
  }

  std::map<std::string, std::string> blocked;
  for (const Blocked& b : plan.blocked) blocked[BlockedKey(b)] = b.reason;
  std::map<std::string, std::string> before_blocked;
  {
    std::lock_guard lock(mu_);
    before_blocked = std::exchange(state.blocked, blocked);
  }
  for (const Blocked& b : plan.blocked) {
    auto it = before_blocked.find(BlockedKey(b));
    if (it != before_blocked.end() && it->second == b.reason) continue;
    journal_.Append({.at = now,
                     .cluster = cluster.name,
                     .replica = b.replica,
                     .type = "blocked",
                     .action = std::string(ToString(b.kind)),
                     .message = b.reason});
  }
}

// ---------------------------------------------------------------------------------------------
// the loop

void Controller::Run() {
  std::unique_lock lock(loop_mu_);
  while (!stop_requested_) {
    triggered_ = false;
    const auto began = std::chrono::steady_clock::now();
    lock.unlock();
    RunOnce(clock_.Now());
    lock.lock();
    Duration wait = config_.loop.interval;
    if (config_.loop.jitter.count() > 0) {
      lock.unlock();
      const uint64_t r = NextRandom();
      lock.lock();
      wait += Duration(
          static_cast<int64_t>(r % (static_cast<uint64_t>(config_.loop.jitter.count()) + 1)));
    }
    loop_cv_.wait_for(lock, wait, [this] { return stop_requested_ || triggered_; });
    // Four admits finishing together (or a burst of API calls) make one early cycle: requests
    // that arrive meanwhile are folded into it, and whatever requests cycles, they never begin
    // closer than kMinCycleGap.
    loop_cv_.wait_until(lock, began + kMinCycleGap, [this] { return stop_requested_; });
  }
}

void Controller::Start() {
  std::lock_guard lock(loop_mu_);
  if (loop_thread_.joinable() || stopped_) return;
  loop_thread_ = std::thread([this] { Run(); });
}

bool Controller::Stop() {
  {
    std::lock_guard lock(loop_mu_);
    stop_requested_ = true;
  }
  loop_cv_.notify_all();
  if (loop_thread_.joinable() && loop_thread_.get_id() != std::this_thread::get_id()) {
    loop_thread_.join();
  }
  {
    std::lock_guard lock(loop_mu_);
    stopped_ = true;
  }
  return actuator_.Stop();
}

bool Controller::CycleRequested() const {
  std::lock_guard lock(loop_mu_);
  return triggered_;
}

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

void Controller::TriggerCycle() {
  {
    std::lock_guard lock(loop_mu_);
    triggered_ = true;
  }
  loop_cv_.notify_all();
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
  s.paused = state->paused;
  s.paused_reason = state->paused_reason;
  s.manual = state->manual;
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
  {
    std::lock_guard lock(mu_);
    ClusterState* state = Find(cluster);
    if (!state) return Fail(ErrorKind::kNotFound, fmt::format("no cluster named '{}'", cluster));
    const policies::ClusterPolicy& p = state->deps.cluster->policy;
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
    state->manual = manual;
  }
  SaveState();
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
  {
    std::lock_guard lock(mu_);
    ClusterState* state = Find(cluster);
    if (!state) return Fail(ErrorKind::kNotFound, fmt::format("no cluster named '{}'", cluster));
    was = std::exchange(state->manual, std::nullopt);
  }
  if (was) {
    SaveState();
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
  bool changed = false;
  {
    std::lock_guard lock(mu_);
    ClusterState* state = Find(cluster);
    if (!state) return Fail(ErrorKind::kNotFound, fmt::format("no cluster named '{}'", cluster));
    changed = !state->paused || state->paused_reason != reason;
    state->paused = true;
    state->paused_reason = reason;
  }
  if (changed) {
    SaveState();
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
  bool changed = false;
  {
    std::lock_guard lock(mu_);
    ClusterState* state = Find(cluster);
    if (!state) return Fail(ErrorKind::kNotFound, fmt::format("no cluster named '{}'", cluster));
    changed = state->paused;
    state->paused = false;
    state->paused_reason.clear();
  }
  if (changed) {
    SaveState();
    journal_.Append({.at = clock_.Now(),
                     .cluster = cluster,
                     .type = "resumed",
                     .message = "automatic scaling resumed"});
    TriggerCycle();
  }
  return {};
}

Result<void> Controller::RequestSnapshot(const std::string& cluster) {
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
  return health;
}

}  // namespace ra::autoscaler
