#include "haproxy_dataplane/dataplane_load_balancer.h"

#include <fmt/format.h>

#include <map>

#include "core/log.h"

namespace ra::haproxy {

namespace {

template <typename T>
const T* Find(const std::vector<T>& items, std::string_view name) {
  for (const T& item : items) {
    if (item.name == name) return &item;
  }
  return nullptr;
}

}  // namespace

ServerConfig DataPlaneLoadBalancer::ConfigFor(const lb::MemberSpec& spec) const {
  const DataPlaneOptions& options = client_.options();
  ServerConfig config;
  config.name = spec.name;
  config.address = spec.address;
  config.port = spec.port;
  config.check = true;
  // Loaded in maint: it must not take traffic before its first health check (see Admit).
  config.maintenance = true;
  config.inter_ms = options.check_inter_ms;
  config.rise = options.check_rise;
  config.fall = options.check_fall;
  return config;
}

Result<void> DataPlaneLoadBalancer::WaitReload(const WriteOutcome& outcome) {
  if (!outcome.reload_id) return {};
  return client_.WaitForReload(*outcome.reload_id);
}

Result<std::vector<ServerView>> DataPlaneLoadBalancer::ListServers() {
  auto config = client_.GetServers();
  if (!config) return Fail(config.error());
  auto runtime = client_.GetRuntimeServers();
  if (!runtime) return Fail(runtime.error());
  auto stats = client_.GetServerStats();
  if (!stats) return Fail(stats.error());

  std::vector<ServerView> out;
  for (const ServerConfig& server : config->servers) {
    ServerView view;
    view.name = server.name;
    view.address = server.address;
    view.port = server.port.value_or(0);
    view.admin_state = server.maintenance ? AdminState::kMaint : AdminState::kReady;
    if (const RuntimeServer* rt = Find(*runtime, server.name)) {
      view.loaded = true;
      view.admin_state = rt->admin_state;
    }
    if (const ServerStats* st = Find(*stats, server.name)) {
      if (auto status = ParseServerStatus(st->status)) {
        view.status = std::move(*status);
      } else {
        // Keep the server listed; an unknown status counts as unknown health.
        view.status.raw = st->status;
        log::Warn("HAProxy server status not understood",
                  {{"server", server.name}, {"error", status.error().message}});
      }
      view.check = ParseCheckStatus(st->check_status);
      view.sessions = st->scur;
      view.total_sessions = st->stot;
    }
    out.push_back(std::move(view));
  }
  return out;
}

Result<std::vector<lb::Member>> DataPlaneLoadBalancer::ListMembers() {
  auto servers = ListServers();
  if (!servers) return Fail(servers.error());
  std::vector<lb::Member> out;
  out.reserve(servers->size());
  for (const ServerView& server : *servers) out.push_back(ToMember(server));
  return out;
}

Result<void> DataPlaneLoadBalancer::EnsureMember(const lb::MemberSpec& spec) {
  if (spec.name.empty() || spec.name.find_first_of(" \t\r\n/<>*;$#&{}\"") != std::string::npos) {
    return Fail(ErrorKind::kBadRequest, "server name '" + spec.name + "' is not valid for HAProxy");
  }
  if (spec.address.empty() || spec.address.find_first_of(" \t\r\n") != std::string::npos) {
    return Fail(ErrorKind::kBadRequest, "server address '" + spec.address + "' is not valid");
  }
  if (spec.port < 1 || spec.port > 65535) {
    return Fail(ErrorKind::kBadRequest, fmt::format("server port {} is out of range", spec.port));
  }
  auto servers = client_.GetServers();
  if (!servers) return Fail(servers.error());
  const ServerConfig* existing = Find(servers->servers, spec.name);
  const ServerConfig wanted = ConfigFor(spec);
  ServerConfig admitted = existing != nullptr ? *existing : wanted;
  if (existing == nullptr) {
    auto created = client_.CreateServer(wanted);
    if (!created && created.error().kind == ErrorKind::kConflict &&
        created.error().message.find("already exists") != std::string::npos) {
      // Another writer created it in between: check it is the same server. Only once it is
      // listed: an API that says "already exists" without listing it would recurse forever.
      auto again = client_.GetServers();
      if (!again) return Fail(again.error());
      if (Find(again->servers, spec.name) == nullptr) return Fail(created.error());
      return EnsureMember(spec);
    }
    if (!created) return Fail(created.error());
    if (auto reloaded = WaitReload(*created); !reloaded) return reloaded;
  } else if (existing->address != spec.address || existing->port.value_or(0) != spec.port) {
    log::Info("HAProxy server has another address: replacing it",
              {{"server", spec.name},
               {"was", fmt::format("{}:{}", existing->address, existing->port.value_or(0))},
               {"now", fmt::format("{}:{}", spec.address, spec.port)}});
    auto replaced = client_.RunTransaction([&](const std::string& tx) -> Result<void> {
      if (auto deleted = client_.DeleteServerIn(tx, spec.name);
          !deleted && deleted.error().kind != ErrorKind::kNotFound) {
        return deleted;
      }
      return client_.CreateServerIn(tx, wanted);
    });
    if (!replaced) return Fail(replaced.error());
    if (auto reloaded = WaitReload(*replaced); !reloaded) return reloaded;
    admitted = wanted;
  }
  if (auto ready = Admit(spec.name); !ready) return ready;
  if (!admitted.maintenance) return {};
  // Admitted: drop `disabled` from haproxy.cfg. The reload keeps the server ready (the
  // server-state-file says so), a restart will too, and its drain state reads back correctly:
  // the Data Plane API decodes the runtime admin flags of a `disabled` server wrongly (it reads
  // HAProxy's decimal flags as hexadecimal, so drain with `disabled` shows as maint).
  admitted.maintenance = false;
  auto finalized = client_.ReplaceServer(admitted);
  if (!finalized) return Fail(finalized.error());
  return WaitReload(*finalized);
}

Result<void> DataPlaneLoadBalancer::Admit(const std::string& name) {
  auto runtime = client_.GetRuntimeServers();
  if (!runtime) return Fail(runtime.error());
  const RuntimeServer* server = Find(*runtime, name);
  if (server == nullptr) {
    return Fail(ErrorKind::kTransient,
                "server " + name + " is configured but not yet loaded by HAProxy (reload pending)");
  }
  if (server->admin_state == AdminState::kReady) return {};
  if (server->admin_state == AdminState::kMaint) {
    // Drain, not ready: health checks run but no new connection is sent to it yet.
    if (auto drained = client_.SetAdminState(name, AdminState::kDrain); !drained) {
      return Fail(drained.error());
    }
  }
  const DataPlaneOptions& options = client_.options();
  // The client's clock and sleeper: tests move time instead of waiting.
  const TimePoint deadline = client_.clock().Now() + options.first_check_timeout;
  for (;;) {
    auto stats = client_.GetServerStats(name);
    if (!stats) return Fail(stats.error());
    const ServerStats* row = Find(*stats, name);
    if (row != nullptr) {
      const CheckStatus check = ParseCheckStatus(row->check_status);
      auto status = ParseServerStatus(row->status);
      if (check.completed || (status && !status->health_checked)) break;
      if (status && status->maint && status->maint_via.empty()) {
        // Our drain was lost to a reload of another change: HAProxy saved the servers' states,
        // the drain reached the old worker, and the new one loaded this server in maint from
        // `disabled` in haproxy.cfg. In maint no check ever runs, so waiting would only end at
        // the timeout: ask for drain again.
        if (auto drained = client_.SetAdminState(name, AdminState::kDrain); !drained) {
          return Fail(drained.error());
        }
      }
    }
    if (client_.clock().Now() >= deadline) {
      return Fail(ErrorKind::kTimeout,
                  fmt::format("server {}: no health check completed within {} ms; it stays in "
                              "drain until EnsureMember is called again",
                              name, options.first_check_timeout.count()));
    }
    client_.SleepFor(options.first_check_poll_interval);
  }
  if (auto ready = client_.SetAdminState(name, AdminState::kReady); !ready) {
    return Fail(ready.error());
  }
  return {};
}

Result<void> DataPlaneLoadBalancer::Drain(std::string_view name) {
  auto set = client_.SetAdminState(name, AdminState::kDrain);
  if (!set) return Fail(set.error());
  return {};
}

Result<void> DataPlaneLoadBalancer::Maint(std::string_view name) {
  auto set = client_.SetAdminState(name, AdminState::kMaint);
  if (!set) return Fail(set.error());
  return {};
}

Result<int64_t> DataPlaneLoadBalancer::SessionCount(std::string_view name) {
  auto stats = client_.GetServerStats(name);
  if (!stats) return Fail(stats.error());
  if (const ServerStats* row = Find(*stats, name)) return row->scur;
  return Fail(ErrorKind::kNotFound,
              fmt::format("HAProxy has no server {}/{}", client_.options().backend, name));
}

Result<lb::RemoveOutcome> DataPlaneLoadBalancer::Remove(std::string_view name,
                                                        lb::RemoveMode mode) {
  auto servers = client_.GetServers();
  if (!servers) return Fail(servers.error());
  if (Find(servers->servers, name) == nullptr) {
    return lb::RemoveOutcome{lb::RemoveOutcome::Status::kAbsent, 0};
  }
  auto runtime = client_.GetRuntimeServers();
  if (!runtime) return Fail(runtime.error());
  int64_t sessions = 0;
  // A server not yet loaded by a reload has no traffic to protect.
  if (const RuntimeServer* server = Find(*runtime, name)) {
    if (server->admin_state == AdminState::kReady) {
      return Fail(
          ErrorKind::kConflict,
          fmt::format("server {} is ready: drain it (or put it in maint) before removing", name));
    }
    auto count = SessionCount(name);
    if (!count && count.error().kind != ErrorKind::kNotFound) return Fail(count.error());
    sessions = count.value_or(0);
    if (sessions > 0 && mode == lb::RemoveMode::kWhenIdle) {
      return lb::RemoveOutcome{lb::RemoveOutcome::Status::kStillHasConnections, sessions};
    }
  }
  auto deleted = client_.DeleteServer(name);
  if (!deleted && deleted.error().kind == ErrorKind::kNotFound) {
    return lb::RemoveOutcome{lb::RemoveOutcome::Status::kAbsent, 0};
  }
  if (!deleted) return Fail(deleted.error());
  if (auto reloaded = WaitReload(*deleted); !reloaded) return Fail(reloaded.error());
  return lb::RemoveOutcome{lb::RemoveOutcome::Status::kRemoved, sessions};
}

}  // namespace ra::haproxy
