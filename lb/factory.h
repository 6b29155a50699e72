#pragma once

#include <memory>

#include "config/config.h"
#include "core/clock.h"
#include "core/http_transport.h"
#include "core/result.h"
#include "core/secret.h"
#include "lb/load_balancer.h"

/// Builds the lb::LoadBalancer a `load_balancers:` entry's `type` names, so the service does not
/// know the backends. A separate library (ra_lb_backends) from the contract (ra_lb): it links
/// every backend, and the backends link the contract.
namespace ra::lb {

/// What a cluster's balancer is made of besides its configuration entry.
struct BackendDeps {
  /// The entry's password, already resolved (config::ResolveSecret); empty when none is set.
  Secret password{};
  /// Carries the requests; shared by every cluster of the entry, must outlive the balancer.
  HttpTransport& transport;
  /// Times reloads and first checks; must outlive the balancer.
  const Clock& clock;
};

/// The balancer for one cluster: `entry` says where and how to talk to it, `cluster` which
/// backend holds the cluster's replicas and how they are health-checked. The result owns what it
/// needs (the Data Plane client for haproxy_dataplane) besides `deps`. Contacts nothing.
/// kConfig, naming the entry, when the options are not usable.
Result<std::unique_ptr<LoadBalancer>> MakeLoadBalancer(const config::LoadBalancer& entry,
                                                       const config::ClusterLoadBalancer& cluster,
                                                       BackendDeps deps);

}  // namespace ra::lb
