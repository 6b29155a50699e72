#pragma once

#include <fmt/format.h>

#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "lb/load_balancer.h"

namespace ra::testing {

/// An in-memory lb::LoadBalancer for the service's unit tests. It keeps the same contracts as
/// DataPlaneLoadBalancer (idempotence, remove only when draining or in maint, "still has
/// connections" as an outcome) without a balancer: tests set health and session counts by hand,
/// queue errors for the next calls, and read the calls back in order.
class FakeLoadBalancer final : public lb::LoadBalancer {
 public:
  /// A member as a test arranges it; EnsureMember adds one up and serving, no sessions.
  void Put(lb::Member member) {
    std::lock_guard lock(mu_);
    members_[member.name] = std::move(member);
  }
  void SetSessions(const std::string& name, int64_t sessions) {
    std::lock_guard lock(mu_);
    members_.at(name).sessions = sessions;
  }
  /// Health as the balancer's checks would report it; a ready member serves only while up.
  void SetHealth(const std::string& name, lb::Health health) {
    std::lock_guard lock(mu_);
    lb::Member& member = members_.at(name);
    member.health = health;
    member.serving = member.admin == lb::AdminState::kReady && health == lb::Health::kUp;
  }
  /// The next call of `method` ("ListMembers", "EnsureMember", "Drain", "Maint", "SessionCount",
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
    return members_.contains(name);
  }
  lb::Member Get(const std::string& name) const {
    std::lock_guard lock(mu_);
    return members_.at(name);
  }

  Result<std::vector<lb::Member>> ListMembers() override {
    std::lock_guard lock(mu_);
    if (auto failed = Injected("ListMembers", ""); !failed) return Fail(failed.error());
    std::vector<lb::Member> out;
    for (const auto& [name, member] : members_) out.push_back(member);
    return out;
  }

  Result<void> EnsureMember(const lb::MemberSpec& spec) override {
    std::lock_guard lock(mu_);
    if (auto failed = Injected("EnsureMember", spec.name); !failed) return failed;
    if (spec.name.empty()) return Fail(ErrorKind::kBadRequest, "member name is empty");
    auto it = members_.find(spec.name);
    if (it == members_.end() || it->second.address != spec.address ||
        it->second.port != spec.port) {
      lb::Member member;
      member.name = spec.name;
      member.address = spec.address;
      member.port = spec.port;
      member.health = lb::Health::kUp;
      member.detail = "UP, check L7OK";
      members_[spec.name] = member;
      it = members_.find(spec.name);
    }
    SetAdmin(it->second, lb::AdminState::kReady);
    return {};
  }

  Result<void> Drain(std::string_view name) override {
    return SetState(name, lb::AdminState::kDraining);
  }
  Result<void> Maint(std::string_view name) override {
    return SetState(name, lb::AdminState::kMaint);
  }

  Result<int64_t> SessionCount(std::string_view name) override {
    std::lock_guard lock(mu_);
    if (auto failed = Injected("SessionCount", name); !failed) return Fail(failed.error());
    auto it = members_.find(std::string(name));
    if (it == members_.end()) return NotFound(name);
    return it->second.sessions;
  }

  Result<lb::RemoveOutcome> Remove(std::string_view name, lb::RemoveMode mode) override {
    std::lock_guard lock(mu_);
    if (auto failed = Injected("Remove", name); !failed) return Fail(failed.error());
    auto it = members_.find(std::string(name));
    if (it == members_.end()) return lb::RemoveOutcome{lb::RemoveOutcome::Status::kAbsent, 0};
    if (it->second.admin == lb::AdminState::kReady) {
      return Fail(
          ErrorKind::kConflict,
          fmt::format("member {} is ready: drain it (or put it in maint) before removing", name));
    }
    const int64_t sessions = it->second.sessions;
    if (sessions > 0 && mode == lb::RemoveMode::kWhenIdle) {
      return lb::RemoveOutcome{lb::RemoveOutcome::Status::kStillHasConnections, sessions};
    }
    members_.erase(it);
    return lb::RemoveOutcome{lb::RemoveOutcome::Status::kRemoved, sessions};
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
    return Fail(ErrorKind::kNotFound, fmt::format("no member {}", name));
  }
  // Serving follows the admin state the way a balancer's would: only a ready, healthy member.
  static void SetAdmin(lb::Member& member, lb::AdminState state) {
    member.admin = state;
    member.serving = state == lb::AdminState::kReady && member.health == lb::Health::kUp;
  }
  Result<void> SetState(std::string_view name, lb::AdminState state) {
    std::lock_guard lock(mu_);
    if (auto failed = Injected(state == lb::AdminState::kDraining ? "Drain" : "Maint", name);
        !failed) {
      return failed;
    }
    auto it = members_.find(std::string(name));
    if (it == members_.end()) return NotFound(name);
    SetAdmin(it->second, state);
    return {};
  }

  mutable std::mutex mu_;
  std::map<std::string, lb::Member> members_;
  std::map<std::string, std::deque<Error>> failures_;
  std::vector<std::string> calls_;
};

}  // namespace ra::testing
