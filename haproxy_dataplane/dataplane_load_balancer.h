#pragma once

#include "haproxy_dataplane/dataplane_client.h"
#include "haproxy_dataplane/load_balancer.h"

namespace ra::haproxy {

/// LoadBalancer over the HAProxy Data Plane API (v2 or v3).
///
/// Admission of a new server: it is written with `check` on and `maintenance` enabled (`disabled`
/// in haproxy.cfg), so after the reload it is in maint and takes nothing; the client moves it to
/// drain, where its health check runs without traffic, and sets it ready once the first check has
/// completed (UP only if PostgreSQL answered). Then `disabled` is removed from the configuration
/// with a second write (see EnsureServer in the .cc for why); the server-state-file keeps it
/// ready across that reload.
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
