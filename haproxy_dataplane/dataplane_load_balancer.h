#pragma once

#include "haproxy_dataplane/dataplane_client.h"
#include "haproxy_dataplane/server_view.h"
#include "lb/load_balancer.h"

namespace ra::haproxy {

/// lb::LoadBalancer over the HAProxy Data Plane API (v2 or v3): a member is a server of one
/// backend; kReady, kDraining and kMaint are HAProxy's admin states ready, drain and maint, set at
/// runtime without a reload. EnsureMember and Remove write the configuration and wait for the
/// reload they cause (bounded by DataPlaneOptions::reload_timeout); a failed reload is kTransient.
///
/// Admission of a new server: it is written with `check` on and `maintenance` enabled (`disabled`
/// in haproxy.cfg), so after the reload it is in maint and takes nothing; the client moves it to
/// drain, where its health check runs without traffic, and sets it ready once the first check has
/// completed (UP only if PostgreSQL answered). Then `disabled` is removed from the configuration
/// with a second write (see EnsureMember in the .cc for why); the server-state-file keeps it
/// ready across that reload.
class DataPlaneLoadBalancer final : public lb::LoadBalancer {
 public:
  /// `client` must outlive this object.
  explicit DataPlaneLoadBalancer(DataPlaneClient& client) : client_(client) {}

  Result<std::vector<lb::Member>> ListMembers() override;
  Result<void> EnsureMember(const lb::MemberSpec& spec) override;
  Result<void> Drain(std::string_view name) override;
  Result<void> Maint(std::string_view name) override;
  Result<int64_t> SessionCount(std::string_view name) override;
  Result<lb::RemoveOutcome> Remove(std::string_view name, lb::RemoveMode mode) override;

  /// Every server of the backend in HAProxy's own terms (what ListMembers summarizes): parsed
  /// stats status, last check, loaded or not. Read-only, idempotent.
  Result<std::vector<ServerView>> ListServers();

 private:
  ServerConfig ConfigFor(const lb::MemberSpec& spec) const;
  Result<void> WaitReload(const WriteOutcome& outcome);
  Result<void> Admit(const std::string& name);

  DataPlaneClient& client_;
};

}  // namespace ra::haproxy
