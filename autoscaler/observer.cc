#include "autoscaler/observer.h"

#include <algorithm>
#include <future>
#include <map>
#include <regex>
#include <set>

#include "autoscaler/replica_names.h"
#include "core/log.h"

namespace ra::autoscaler {

namespace {

using Replicas = std::map<std::string, ObservedReplica>;

struct Reading {
  ClusterObservation& out;
  void Error(std::string component, ra::Error e) {
    out.errors.emplace_back(std::move(component), std::move(e));
  }
};

// The cloud: our replicas by tag.
void ReadCloud(const ClusterDeps& deps, Replicas& replicas, Reading& reading) {
  if (auto listed = deps.cloud->ListReplicas(deps.cluster->name); listed) {
    for (openstack::ReplicaFacts& facts : *listed) {
      ObservedReplica& r = replicas[facts.name];
      r.name = facts.name;
      r.server = std::move(facts.server);
      r.volume = std::move(facts.volume);
    }
  } else {
    reading.out.observed.cloud_error = listed.error();
    reading.Error("cloud", listed.error());
  }
}

// The load balancer: ours are the members named like a replica of ours, or like the names we
// make (one made before a restart may be listed there before the cloud lists it).
void ReadLoadBalancer(const ClusterDeps& deps, ObserverCache& cache, Replicas& replicas,
                      Reading& reading) {
  const config::Cluster& cluster = *deps.cluster;
  const std::regex ours(ReplicaNamePattern(cluster.replica.name_template, cluster.name));
  Observed& observed = reading.out.observed;
  std::vector<lb::BalancerReading> each;
  Result<std::vector<lb::Member>> members;
  if (deps.multi != nullptr) {
    each = deps.multi->ListEach();
    size_t failed = 0;
    for (const lb::BalancerReading& r : each) {
      if (r.members) continue;
      ++failed;
      observed.lb_unreachable.push_back(r.balancer);
      reading.Error("dataplane", ra::Error{r.members.error().kind,
                                           r.balancer + ": " + r.members.error().message});
    }
    if (failed == each.size() && !each.empty()) {
      observed.lb_unreachable.clear();
      members = Fail(each.front().members.error());
    } else {
      members = lb::MultiLoadBalancer::Merge(each, deps.multi->quorum());
      // The quorum counts a balancer that does not answer as it was at its last answer.
      std::map<std::string, int> serving_in;
      for (const lb::BalancerReading& r : each) {
        if (r.members) {
          std::set<std::string>& now = cache.last_serving[r.balancer];
          now.clear();
          for (const lb::Member& m : *r.members) {
            if (m.serving) now.insert(m.name);
          }
        }
        for (const std::string& name : cache.last_serving[r.balancer]) ++serving_in[name];
      }
      for (lb::Member& m : *members) m.serving = serving_in[m.name] >= deps.multi->quorum();
    }
  } else {
    members = deps.lb->ListMembers();
  }
  if (members) {
    for (lb::Member& member : *members) {
      auto it = replicas.find(member.name);
      if (it == replicas.end() && !std::regex_match(member.name, ours)) {
        observed.foreign_lb_servers.push_back(member.name);
        continue;
      }
      ObservedReplica& r = replicas[member.name];
      r.name = member.name;
      r.lb = std::move(member);
    }
  } else {
    observed.lb_error = members.error();
    if (deps.multi == nullptr) reading.Error("dataplane", members.error());
    return;
  }
  // Each balancer's own view of every replica, for the planner and the status.
  for (auto& [name, r] : replicas) {
    for (const lb::BalancerReading& reading_of : each) {
      BalancerView view{.balancer = reading_of.balancer,
                        .reachable = reading_of.members.has_value()};
      if (view.reachable) {
        for (const lb::Member& m : *reading_of.members) {
          if (m.name == name) view.member = m;
        }
      }
      r.balancers.push_back(std::move(view));
    }
  }
}

// Golden snapshots (oldest first), the donor's volume (once) and the zones (cached). When the
// cloud did not answer the first read, these are not tried this cycle: each would wait out its
// own retries for the same outage.
void ReadCloudExtras(const ClusterDeps& deps, ObserverCache& cache, TimePoint now,
                     Duration zones_ttl, Reading& reading) {
  const config::Cluster& cluster = *deps.cluster;
  Observed& observed = reading.out.observed;
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
    reading.Error("cloud", snapshots.error());
  }

  if (cache.donor_volume_id.empty() && deps.resolve_donor && !cloud_down) {
    if (auto donor = deps.resolve_donor(); donor) {
      cache.donor_volume_id = donor->volume_id;
      cache.donor_server_id = donor->server_id;
      cache.donor_address = donor->address;
    } else {
      reading.Error("cloud", donor.error());
    }
  }
  observed.donor_volume_id = cache.donor_volume_id;

  if (!cluster.replica.zones.empty()) {
    observed.zones = cluster.replica.zones;
    return;
  }
  if (!cloud_down && (!cache.zones_at || now - *cache.zones_at >= zones_ttl)) {
    if (auto zones = deps.cloud->AvailabilityZones(); zones) {
      cache.zones = std::move(*zones);
      cache.zones_at = now;
    } else {
      reading.Error("cloud", zones.error());
    }
  }
  observed.zones = cache.zones;
}

// The primary and its position.
void ReadPrimary(const ClusterDeps& deps, Reading& reading) {
  const config::Cluster& cluster = *deps.cluster;
  Observed& observed = reading.out.observed;
  if (auto primary = deps.primary->Locate(); primary) {
    observed.primary_host = primary->host;
    observed.primary_port = primary->port;
    if (auto facts = deps.probe->PrimaryPosition(primary->host, primary->port); facts) {
      reading.out.primary_lsn = facts->lsn;
      observed.primary = std::move(*facts);
    } else {
      reading.Error("postgres", facts.error());
    }
    // Placement's measure, not a source the cycle depends on: a failure is logged, never fails
    // the cycle (a probe user without pg_monitor would otherwise fail every one).
    if (auto latencies = deps.probe->ReplicationLatencies(primary->host, primary->port);
        latencies) {
      reading.out.latencies = std::move(*latencies);
    } else {
      log::Warn("replication latencies not read",
                {{"cluster", cluster.name},
                 {"kind", ToString(latencies.error().kind)},
                 {"error", log::Redact(latencies.error().message)}});
    }
  } else {
    reading.Error("postgres", primary.error());
  }
}

// A server that is the donor, or stands at the primary's or the donor's address, is not ours
// whatever the cloud's listing and its tags say: it leaves the reading before anything plans
// for it.
void DropProtected(const ClusterDeps& deps, const ObserverCache& cache, Replicas& replicas,
                   Reading& reading) {
  const std::string& primary = reading.out.observed.primary_host;
  for (auto it = replicas.begin(); it != replicas.end();) {
    const auto& server = it->second.server;
    const char* why = nullptr;
    if (server && !cache.donor_server_id.empty() && server->id == cache.donor_server_id) {
      why = "it is the donor";
    } else if (server && !server->address.empty() && server->address == primary) {
      why = "it has the primary's address";
    } else if (server && !server->address.empty() && server->address == cache.donor_address) {
      why = "it has the donor's address";
    }
    if (why == nullptr) {
      ++it;
      continue;
    }
    log::Warn("a listed server is left alone: " + std::string(why),
              {{"cluster", deps.cluster->name}, {"replica", it->first}, {"server", server->id}});
    reading.out.observed.foreign_lb_servers.push_back(it->first);
    it = replicas.erase(it);
  }
}

// Every replica that can answer, probed in parallel.
void ProbeReplicas(const ClusterDeps& deps, Replicas& replicas, Reading& reading) {
  const config::Cluster& cluster = *deps.cluster;
  const int64_t primary_lsn = reading.out.primary_lsn.value_or(-1);
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

  // A replica that replayed past the primary's flush position may only have overtaken the first
  // reading (the primary went on writing). Read it again: one still beyond holds WAL the primary
  // does not have, as a replica of the old primary after a failover does.
  Observed& observed = reading.out.observed;
  if (!observed.primary) return;
  const bool past = std::any_of(replicas.begin(), replicas.end(), [&](const auto& entry) {
    const auto& probe = entry.second.probe;
    return probe && probe->replay_lsn && *probe->replay_lsn > observed.primary->flush_lsn;
  });
  if (!past) return;
  if (auto again = deps.probe->PrimaryPosition(observed.primary_host, observed.primary_port);
      again && again->timeline == observed.primary->timeline &&
      again->system_identifier == observed.primary->system_identifier) {
    observed.primary_flush_after = again->flush_lsn;
  } else if (!again) {
    reading.Error("postgres", again.error());
  }
}

}  // namespace

ClusterObservation ObserveCluster(const ClusterDeps& deps, ObserverCache& cache, TimePoint now,
                                  Duration zones_ttl) {
  ClusterObservation out;
  Reading reading{out};
  Replicas replicas;
  ReadCloud(deps, replicas, reading);
  ReadLoadBalancer(deps, cache, replicas, reading);
  ReadCloudExtras(deps, cache, now, zones_ttl, reading);
  ReadPrimary(deps, reading);
  DropProtected(deps, cache, replicas, reading);
  ProbeReplicas(deps, replicas, reading);
  for (auto& [name, r] : replicas) out.observed.replicas.push_back(std::move(r));
  return out;
}

}  // namespace ra::autoscaler
