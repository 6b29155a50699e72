#include "lb/factory.h"

#include <fmt/format.h>

#include "haproxy_dataplane/dataplane_client.h"
#include "haproxy_dataplane/dataplane_load_balancer.h"

namespace ra::lb {

namespace {

haproxy::ApiVersion ToApiVersion(config::DataPlaneApiVersion v) {
  switch (v) {
    case config::DataPlaneApiVersion::kV2:
      return haproxy::ApiVersion::kV2;
    case config::DataPlaneApiVersion::kV3:
      return haproxy::ApiVersion::kV3;
    case config::DataPlaneApiVersion::kAuto:
      break;
  }
  return haproxy::ApiVersion::kAuto;
}

// DataPlaneLoadBalancer borrows its client; this one owns it, so the caller holds one object.
class OwningDataPlaneLoadBalancer final : public LoadBalancer {
 public:
  OwningDataPlaneLoadBalancer(haproxy::DataPlaneOptions options, HttpTransport& transport,
                              const Clock& clock)
      : client_(std::move(options), transport, clock), lb_(client_) {}

  Result<std::vector<Member>> ListMembers() override { return lb_.ListMembers(); }
  Result<void> EnsureMember(const MemberSpec& spec) override { return lb_.EnsureMember(spec); }
  Result<void> Drain(std::string_view name) override { return lb_.Drain(name); }
  Result<void> Maint(std::string_view name) override { return lb_.Maint(name); }
  Result<int64_t> SessionCount(std::string_view name) override { return lb_.SessionCount(name); }
  Result<RemoveOutcome> Remove(std::string_view name, RemoveMode mode) override {
    return lb_.Remove(name, mode);
  }

 private:
  haproxy::DataPlaneClient client_;
  haproxy::DataPlaneLoadBalancer lb_;
};

Result<std::unique_ptr<LoadBalancer>> MakeDataPlane(const config::LoadBalancer& entry,
                                                    const config::ClusterLoadBalancer& cluster,
                                                    BackendDeps deps) {
  haproxy::DataPlaneOptions dp;
  dp.url = entry.url;
  dp.api_version = ToApiVersion(entry.api_version);
  dp.username = entry.username;
  dp.password = std::move(deps.password);
  dp.backend = cluster.backend;
  dp.request_timeout = entry.http.total_timeout;
  dp.version_conflict_retries = entry.version_conflict_retries;
  dp.transient_retries = entry.transient_retries;
  dp.reload_timeout = entry.reload_timeout;
  if (cluster.check.enabled) {
    dp.check_inter_ms = static_cast<int>(cluster.check.interval.count());
    dp.check_rise = cluster.check.rise;
    dp.check_fall = cluster.check.fall;
  }
  if (auto problems = dp.Validate(); !problems.empty()) {
    return Fail(ErrorKind::kConfig,
                fmt::format("load balancer {}: {}", entry.name, problems.front()));
  }
  return std::make_unique<OwningDataPlaneLoadBalancer>(std::move(dp), deps.transport, deps.clock);
}

}  // namespace

Result<std::unique_ptr<LoadBalancer>> MakeLoadBalancer(const config::LoadBalancer& entry,
                                                       const config::ClusterLoadBalancer& cluster,
                                                       BackendDeps deps) {
  switch (entry.type) {
    case config::LoadBalancerType::kHaproxyDataplane:
      return MakeDataPlane(entry, cluster, std::move(deps));
  }
  // Not reached while every type has its case above (-Wswitch says when one is missing).
  return Fail(ErrorKind::kConfig,
              fmt::format("load balancer {}: type {} is not known to this build", entry.name,
                          static_cast<int>(entry.type)));
}

}  // namespace ra::lb
