#include "lb/multi_load_balancer.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

namespace ra::lb {

namespace {

// Several balancers' errors as one: the first one's kind (a transient outage stays transient),
// each message behind its balancer's name.
Error Combined(std::string_view what, const std::vector<std::pair<std::string, Error>>& errors) {
  std::string message = std::string(what) + ":";
  for (const auto& [name, error] : errors) {
    message += fmt::format(" {}: {};", name, error.message);
  }
  message.pop_back();
  return Error{errors.front().second.kind, std::move(message)};
}

}  // namespace

MultiLoadBalancer::MultiLoadBalancer(std::vector<Named> balancers, int quorum)
    : balancers_(std::move(balancers)),
      quorum_(std::clamp(quorum, 1, std::max(1, static_cast<int>(balancers_.size())))) {}

std::vector<BalancerReading> MultiLoadBalancer::ListEach() {
  std::vector<BalancerReading> out;
  out.reserve(balancers_.size());
  for (const Named& b : balancers_) {
    out.push_back(BalancerReading{.balancer = b.name, .members = b.balancer->ListMembers()});
  }
  return out;
}

std::vector<Member> MultiLoadBalancer::Merge(const std::vector<BalancerReading>& readings,
                                             int quorum) {
  struct Acc {
    Member merged{};
    int serving = 0;
    int holders = 0;
    int up = 0;
    bool ready = false;
    bool draining = false;
    bool down = false;
  };
  std::map<std::string, Acc> by_name;
  std::vector<std::string> order;  // first seen first, as the balancers list them
  for (const BalancerReading& reading : readings) {
    if (!reading.members) continue;
    for (const Member& m : *reading.members) {
      auto [it, fresh] = by_name.try_emplace(m.name);
      Acc& acc = it->second;
      if (fresh) {
        order.push_back(m.name);
        acc.merged = m;
        acc.merged.sessions = 0;
        acc.merged.total_sessions = 0;
        acc.merged.detail.clear();
      }
      ++acc.holders;
      acc.serving += m.serving ? 1 : 0;
      acc.up += m.health == Health::kUp ? 1 : 0;
      acc.ready = acc.ready || m.admin == AdminState::kReady;
      acc.draining = acc.draining || m.admin == AdminState::kDraining;
      acc.down = acc.down || m.health == Health::kDown;
      acc.merged.sessions += m.sessions;
      acc.merged.total_sessions += m.total_sessions;
      if (!acc.merged.detail.empty()) acc.merged.detail += "; ";
      acc.merged.detail += reading.balancer + ": " + m.detail;
    }
  }
  std::vector<Member> out;
  out.reserve(order.size());
  for (const std::string& name : order) {
    Acc& acc = by_name[name];
    Member m = std::move(acc.merged);
    m.serving = acc.serving >= quorum;
    m.admin = acc.ready      ? AdminState::kReady
              : acc.draining ? AdminState::kDraining
                             : AdminState::kMaint;
    m.health = acc.down ? Health::kDown : acc.up == acc.holders ? Health::kUp : Health::kUnknown;
    out.push_back(std::move(m));
  }
  return out;
}

Result<std::vector<Member>> MultiLoadBalancer::ListMembers() {
  std::vector<BalancerReading> readings = ListEach();
  std::vector<std::pair<std::string, Error>> errors;
  for (const BalancerReading& r : readings) {
    if (!r.members) errors.emplace_back(r.balancer, r.members.error());
  }
  if (!readings.empty() && errors.size() == readings.size()) {
    return Fail(Combined("no load balancer answered", errors));
  }
  return Merge(readings, quorum_);
}

Result<void> MultiLoadBalancer::EachOrNamedErrors(std::string_view what, const Write& write,
                                                  bool skip_not_found) {
  std::vector<std::pair<std::string, Error>> errors;
  size_t not_found = 0;
  for (const Named& b : balancers_) {
    auto done = write(*b.balancer);
    if (done) continue;
    if (skip_not_found && done.error().kind == ErrorKind::kNotFound) {
      ++not_found;
      continue;
    }
    errors.emplace_back(b.name, done.error());
  }
  if (skip_not_found && not_found == balancers_.size() && !balancers_.empty()) {
    return Fail(ErrorKind::kNotFound, fmt::format("{}: a member of no load balancer", what));
  }
  if (!errors.empty()) return Fail(Combined(what, errors));
  return {};
}

Result<void> MultiLoadBalancer::EnsureMember(const MemberSpec& spec) {
  return EachOrNamedErrors(
      "admit " + spec.name, [&](LoadBalancer& b) { return b.EnsureMember(spec); }, false);
}

Result<void> MultiLoadBalancer::Drain(std::string_view name) {
  return EachOrNamedErrors(
      fmt::format("drain {}", name), [&](LoadBalancer& b) { return b.Drain(name); }, true);
}

Result<void> MultiLoadBalancer::Maint(std::string_view name) {
  return EachOrNamedErrors(
      fmt::format("maint {}", name), [&](LoadBalancer& b) { return b.Maint(name); }, true);
}

Result<int64_t> MultiLoadBalancer::SessionCount(std::string_view name) {
  int64_t total = 0;
  size_t not_found = 0;
  std::vector<std::pair<std::string, Error>> errors;
  for (const Named& b : balancers_) {
    auto count = b.balancer->SessionCount(name);
    if (count) {
      total += *count;
    } else if (count.error().kind == ErrorKind::kNotFound) {
      ++not_found;
    } else {
      errors.emplace_back(b.name, count.error());
    }
  }
  if (!errors.empty()) return Fail(Combined(fmt::format("sessions of {}", name), errors));
  if (not_found == balancers_.size() && !balancers_.empty()) {
    return Fail(ErrorKind::kNotFound, fmt::format("{}: a member of no load balancer", name));
  }
  return total;
}

Result<RemoveOutcome> MultiLoadBalancer::Remove(std::string_view name, RemoveMode mode) {
  std::vector<std::pair<std::string, Error>> errors;
  RemoveOutcome out{.status = RemoveOutcome::Status::kAbsent, .sessions = 0};
  bool still = false;
  for (const Named& b : balancers_) {
    auto done = b.balancer->Remove(name, mode);
    if (!done) {
      errors.emplace_back(b.name, done.error());
      continue;
    }
    switch (done->status) {
      case RemoveOutcome::Status::kRemoved:
        if (out.status == RemoveOutcome::Status::kAbsent) out.status = done->status;
        break;
      case RemoveOutcome::Status::kAbsent:
        break;
      case RemoveOutcome::Status::kStillHasConnections:
        still = true;
        out.sessions += done->sessions;
        break;
    }
  }
  // A balancer that did not answer may still route to it: never report it gone.
  if (!errors.empty()) return Fail(Combined(fmt::format("remove {}", name), errors));
  if (still) out.status = RemoveOutcome::Status::kStillHasConnections;
  return out;
}

}  // namespace ra::lb
