#pragma once

#include "haproxy_dataplane/dataplane_client.h"
#include "haproxy_dataplane/load_balancer.h"

namespace ra::haproxy {

/// LoadBalancer over the HAProxy Data Plane API (v2 or v3).
///
/// Servers it creates are written with `check` on and `maintenance` enabled (`disabled` in
/// haproxy.cfg): after the reload a new server is in maint, the client moves it to drain so its
/// health check runs without traffic, and sets it ready once the first check has completed. A
/// server that HAProxy restarts from scratch (no server-state-file entry) therefore waits in maint
/// until the service admits it again, never taking traffic unchecked.
class DataPlaneLoadBalancer final : public LoadBalancer {
 public:
  /// `client` must outlive this object.
  explicit DataPlaneLoadBalancer(DataPlaneClient& client) : client_(client) {}

  Result<std::vector<LbServer>> ListServers() override;
  Result<void> EnsureServer(const ServerSpec& spec) override;
  Result<void> Drain(std::string_view name) override;
  Result<void> Maint(std::string_view name) override;
  Result<int64_t> SessionCount(std::string_view name) override;
  Result<RemoveOutcome> Remove(std::string_view name, RemoveMode mode) override;

 private:
  ServerConfig ConfigFor(const ServerSpec& spec) const;
  Result<void> WaitReload(const WriteOutcome& outcome);
  Result<void> Admit(const std::string& name);

  DataPlaneClient& client_;
};

}  // namespace ra::haproxy
