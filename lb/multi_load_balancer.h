#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "lb/load_balancer.h"

namespace ra::lb {

/// What one balancer answered to ListMembers.
struct BalancerReading {
  std::string balancer{};
  Result<std::vector<Member>> members{};
};

/// A cluster's replicas behind several balancers at once (`load_balancer:` as a list), as one
/// LoadBalancer: every call goes to every balancer, in their configured order, and one that does
/// not answer never stops the call from reaching the others. Each write therefore succeeds only
/// when every balancer did it; its error names the balancers that did not (the others are done,
/// and the call is idempotent, so calling it again finishes the job).
///
/// Blocks for as long as the slowest balancer (calls are made one after another, each bounded by
/// its backend's timeouts). Thread-safe as far as the balancers are.
class MultiLoadBalancer final : public LoadBalancer {
 public:
  struct Named {
    std::string name{};
    LoadBalancer* balancer = nullptr;  ///< not owned; must outlive this object
  };

  /// `quorum`: in how many balancers a member must serve to be `serving` in ListMembers
  /// (clamped to 1..balancers.size()).
  MultiLoadBalancer(std::vector<Named> balancers, int quorum);

  int quorum() const { return quorum_; }
  const std::vector<Named>& balancers() const { return balancers_; }

  /// Every balancer's own answer, in the configured order. Read-only, idempotent.
  std::vector<BalancerReading> ListEach();

  /// The members of every balancer that answered, merged by name (see Merge). Fails only when no
  /// balancer answered (with the first one's error kind and every balancer's error).
  Result<std::vector<Member>> ListMembers() override;

  /// Adds and admits `spec` in every balancer. Balancers where it is already ready only admit it
  /// again (the backends' EnsureMember is idempotent).
  Result<void> EnsureMember(const MemberSpec& spec) override;

  /// Drains (or puts in maint) `name` wherever it is a member. A balancer that does not hold it
  /// is skipped; kNotFound only when none does.
  Result<void> Drain(std::string_view name) override;
  Result<void> Maint(std::string_view name) override;

  /// Sessions open to `name` through all balancers together. Fails when one does not answer:
  /// a count that leaves a balancer out could read zero while it still routes.
  Result<int64_t> SessionCount(std::string_view name) override;

  /// Removes `name` from every balancer. kRemoved (or kAbsent when no balancer held it) only when
  /// it has left all of them; kStillHasConnections, with the sessions of every balancer that
  /// kept it, when one still holds sessions (those without are removed meanwhile).
  Result<RemoveOutcome> Remove(std::string_view name, RemoveMode mode) override;

  /// One member per name across `readings` that answered: serving when it serves in at least
  /// `quorum` of them; sessions summed; admin kReady when ready in any balancer (a drain or maint
  /// is not done until it is done everywhere), else kDraining when draining in any, else kMaint;
  /// health kDown when down in any, kUp when up in every balancer that holds it.
  static std::vector<Member> Merge(const std::vector<BalancerReading>& readings, int quorum);

 private:
  using Write = std::function<Result<void>(LoadBalancer&)>;
  Result<void> EachOrNamedErrors(std::string_view what, const Write& write, bool skip_not_found);

  std::vector<Named> balancers_;
  int quorum_ = 1;
};

}  // namespace ra::lb
