#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "autoscaler/actuator.h"
#include "autoscaler/probe.h"
#include "autoscaler/reconcile.h"
#include "config/config.h"
#include "core/clock.h"
#include "lb/load_balancer.h"
#include "lb/multi_load_balancer.h"
#include "openstack/cloud_provider.h"
#include "policies/metrics_source.h"

/// Step 0 of a cycle: read the cloud, the load balancer and PostgreSQL once, into one snapshot.
namespace ra::autoscaler {

/// What the loop talks to for one cluster. Pointers are not owned and must outlive the
/// Controller; every one is required unless it says nullable.
struct ClusterDeps {
  const config::Cluster* cluster = nullptr;
  openstack::CloudProvider* cloud = nullptr;
  lb::LoadBalancer* lb = nullptr;
  /// Nullable: set (to the same object as `lb`) when the cluster has several balancers, so each
  /// one's view is read and one that does not answer does not hide the others.
  lb::MultiLoadBalancer* multi = nullptr;
  ReplicaProbe* probe = nullptr;
  PrimaryLocator* primary = nullptr;
  DnsHooks dns{};                              ///< not enabled when the cluster has no dns
  policies::MetricsSource* metrics = nullptr;  ///< nullable when no policy queries metrics
  /// The template's ids, or a resolver run (outside any lock) at the first cycle that creates
  /// something, and again each such cycle until it succeeds.
  std::optional<TemplateIds> template_ids{};
  std::function<Result<TemplateIds>()> resolve_template{};
  /// The donor's data volume id (and server id), or a resolver run each cycle until it
  /// succeeds. The donor's server is never one of ours, whatever its tags say.
  std::string donor_volume_id{};
  std::string donor_server_id{};
  std::function<Result<openstack::DonorFacts>()> resolve_donor{};
};

/// What observing keeps from one cycle to the next.
struct ObserverCache {
  std::vector<std::string> zones{};  ///< the cloud's zones, when the template lists none
  std::optional<TimePoint> zones_at{};
  std::string donor_volume_id{};  ///< resolved once
  std::string donor_server_id{};
  std::string donor_address{};
  /// With several balancers: the replicas each one served at its last answer. While one does
  /// not answer, a replica it served then still counts there towards the quorum, so an outage
  /// of a balancer does not make every replica stop counting as serving.
  std::map<std::string, std::set<std::string>> last_serving{};
};

/// One cycle's reading of one cluster.
struct ClusterObservation {
  Observed observed{};
  std::vector<std::pair<std::string, Error>> errors{};  ///< component, error
  std::optional<int64_t> primary_lsn{};
  /// Round trip from the primary to each replica streaming from it (application_name ->
  /// seconds, ReplicaProbe::ReplicationLatencies); empty when it could not be read.
  std::map<std::string, double> latencies{};
};

/// Reads everything one cycle needs: our replicas by tag, the backend's members, golden
/// snapshots, the donor's volume (resolved once), zones (cached for `zones_ttl`), the primary and
/// its LSN, then every replica that can answer, probed in parallel. A listed server that is the
/// donor's (by id) or sits at the primary's or the donor's address is dropped with a warning: it
/// is never planned for, probed or deleted. Blocks for the reads, each
/// bounded by its client's timeouts. Never throws for a source that fails: its error is kept.
ClusterObservation ObserveCluster(const ClusterDeps& deps, ObserverCache& cache, TimePoint now,
                                  Duration zones_ttl);

}  // namespace ra::autoscaler
