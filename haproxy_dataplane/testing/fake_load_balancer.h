#pragma once

#include <fmt/format.h>

#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "haproxy_dataplane/load_balancer.h"

namespace ra::haproxy::testing {

/// An in-memory LoadBalancer for the service's unit tests. It keeps the same contracts as
/// DataPlaneLoadBalancer (idempotence, remove only when drained or in maint, "still has
/// connections" as an outcome) without HAProxy: tests set health and session counts by hand,
/// queue errors for the next calls, and read the calls back in order.
class FakeLoadBalancer final : public LoadBalancer {
 public:
  /// A server as a test arranges it; EnsureServer adds one UP with a passed check, no sessions.
  void Put(LbServer server) {
    std::lock_guard lock(mu_);
    servers_[server.name] = std::move(server);
  }
  void SetSessions(const std::string& name, int64_t sessions) {
    std::lock_guard lock(mu_);
    servers_.at(name).sessions = sessions;
  }
  void SetHealth(const std::string& name, Health health) {
    std::lock_guard lock(mu_);
    servers_.at(name).status.health = health;
  }
  /// The next call of `method` ("ListServers", "EnsureServer", "Drain", "Maint", "SessionCount",
  /// "Remove") fails with `error` instead of acting.
  void FailNext(const std::string& method, Error error) {
    std::lock_guard lock(mu_);
    failures_[method].push_back(std::move(error));
  }
  /// Every call as "Method(arg)", in order.
  std::vector<std::string> calls() const {
    std::lock_guard lock(mu_);
    return calls_;
  }
  bool Has(const std::string& name) const {
    std::lock_guard lock(mu_);
    return servers_.contains(name);
  }
  LbServer Get(const std::string& name) const {
    std::lock_guard lock(mu_);
    return servers_.at(name);
  }

  Result<std::vector<LbServer>> ListServers() override {
    std::lock_guard lock(mu_);
    if (auto failed = Injected("ListServers", ""); !failed) return Fail(failed.error());
    std::vector<LbServer> out;
    for (const auto& [name, server] : servers_) out.push_back(server);
    return out;
  }

  Result<void> EnsureServer(const ServerSpec& spec) override {
    std::lock_guard lock(mu_);
    if (auto failed = Injected("EnsureServer", spec.name); !failed) return failed;
    if (spec.name.empty()) return Fail(ErrorKind::kBadRequest, "server name is empty");
    auto it = servers_.find(spec.name);
    if (it == servers_.end() || it->second.address != spec.address ||
        it->second.port != spec.port) {
      LbServer server;
      server.name = spec.name;
      server.address = spec.address;
      server.port = spec.port;
      server.loaded = true;
      server.status.health = Health::kUp;
      server.status.raw = "UP";
      server.check.code = server.check.raw = "L7OK";
      server.check.completed = server.check.passed = true;
      servers_[spec.name] = server;
      it = servers_.find(spec.name);
    }
    SetAdmin(it->second, AdminState::kReady);
    return {};
  }

  Result<void> Drain(std::string_view name) override { return SetState(name, AdminState::kDrain); }
  Result<void> Maint(std::string_view name) override { return SetState(name, AdminState::kMaint); }

  Result<int64_t> SessionCount(std::string_view name) override {
    std::lock_guard lock(mu_);
    if (auto failed = Injected("SessionCount", name); !failed) return Fail(failed.error());
    auto it = servers_.find(std::string(name));
    if (it == servers_.end()) return NotFound(name);
    return it->second.sessions;
  }

  Result<RemoveOutcome> Remove(std::string_view name, RemoveMode mode) override {
    std::lock_guard lock(mu_);
    if (auto failed = Injected("Remove", name); !failed) return Fail(failed.error());
    auto it = servers_.find(std::string(name));
    if (it == servers_.end()) return RemoveOutcome{RemoveOutcome::Status::kAbsent, 0};
    if (it->second.admin_state == AdminState::kReady) {
      return Fail(
          ErrorKind::kConflict,
          fmt::format("server {} is ready: drain it (or put it in maint) before removing", name));
    }
    const int64_t sessions = it->second.sessions;
    if (sessions > 0 && mode == RemoveMode::kWhenIdle) {
      return RemoveOutcome{RemoveOutcome::Status::kStillHasConnections, sessions};
    }
    servers_.erase(it);
    return RemoveOutcome{RemoveOutcome::Status::kRemoved, sessions};
  }

 private:
  Result<void> Injected(const std::string& method, std::string_view arg) {
    calls_.push_back(method + "(" + std::string(arg) + ")");
    auto it = failures_.find(method);
    if (it == failures_.end() || it->second.empty()) return {};
    Error error = std::move(it->second.front());
    it->second.pop_front();
    return Fail(std::move(error));
  }
  static tl::unexpected<Error> NotFound(std::string_view name) {
    return Fail(ErrorKind::kNotFound, fmt::format("no server {}", name));
  }
  static void SetAdmin(LbServer& server, AdminState state) {
    server.admin_state = state;
    server.status.drain = state == AdminState::kDrain;
    server.status.maint = state == AdminState::kMaint;
  }
  Result<void> SetState(std::string_view name, AdminState state) {
    std::lock_guard lock(mu_);
    if (auto failed = Injected(state == AdminState::kDrain ? "Drain" : "Maint", name); !failed) {
      return failed;
    }
    auto it = servers_.find(std::string(name));
    if (it == servers_.end()) return NotFound(name);
    SetAdmin(it->second, state);
    return {};
  }

  mutable std::mutex mu_;
  std::map<std::string, LbServer> servers_;
  std::map<std::string, std::deque<Error>> failures_;
  std::vector<std::string> calls_;
};

}  // namespace ra::haproxy::testing
