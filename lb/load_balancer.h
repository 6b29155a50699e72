#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

/// The backend-neutral load-balancer seam: what the service needs of whatever sends read
/// traffic to a cluster's replicas. HAProxy through its Data Plane API is one implementation
/// (haproxy_dataplane/); another backend maps its own states onto the ones below.
namespace ra::lb {

/// What the service asked of a member. A backend without a native drain or maint maps them as
/// its nearest equivalent and says so in its implementation's comment; for example an OpenStack
/// Octavia pool member: kReady = `admin_state_up: true` with its configured weight, kDraining =
/// weight 0 (no new connections, existing ones continue), kMaint = `admin_state_up: false`.
enum class AdminState {
  kReady,     ///< takes new connections once healthy
  kDraining,  ///< no new connections; existing ones continue until they end
  kMaint,     ///< out of rotation (no new connections, no health checks); existing ones continue
};

std::string_view ToString(AdminState state);  ///< "ready", "draining", "maint"

/// Health as the balancer's own checks see it.
enum class Health {
  kUp,
  kDown,
  kUnknown,  ///< not checked now (in maint), or not reported
};

std::string_view ToString(Health health);  ///< "up", "down", "unknown"

/// A replica as the balancer should know it.
struct MemberSpec {
  std::string name{};     ///< unique in the backend, no whitespace
  std::string address{};  ///< IPv4/IPv6 address or host name
  int port = 5432;
};

/// One member of the backend as the balancer shows it now.
struct Member {
  std::string name{};
  std::string address{};
  int port = 0;
  AdminState admin = AdminState::kMaint;
  Health health = Health::kUnknown;
  /// Takes new connections right now: admitted (kReady), live in the running balancer, healthy
  /// and its last check passed. A member just added and not yet checked is not serving.
  bool serving = false;
  /// Client sessions open through the balancer now, and since it started (as far as it knows).
  int64_t sessions = 0;
  int64_t total_sessions = 0;
  /// The balancer's own words for its state, for people: "UP, check L7OK", "DOWN, check L4CON".
  std::string detail{};
};

/// What Remove did. "Still has connections" is a normal answer, not an error: drain is under way;
/// ask again later (or remove with RemoveMode::kEvenWithSessions once the drain timeout passed).
struct RemoveOutcome {
  enum class Status {
    kRemoved,              ///< no longer a member
    kAbsent,               ///< there was no such member: nothing to do
    kStillHasConnections,  ///< draining or in maint, but `sessions` are still open; retry later
  };
  Status status = Status::kRemoved;
  int64_t sessions = 0;
};

std::string_view ToString(RemoveOutcome::Status status);  ///< "removed", "absent", ...

enum class RemoveMode {
  kWhenIdle,          ///< only once the member has no session left
  kEvenWithSessions,  ///< the drain timeout passed: remove anyway
};

/// The backend that holds one cluster's replicas, as the service uses it.
///
/// Every method talks to the balancer and blocks for the time it needs (bounded by the
/// implementation's timeouts; configuration changes also wait for what applies them).
/// Implementations are thread-safe. Errors are typed (core/result.h): kTransient or kTimeout may
/// succeed when retried, kAuth/kConfig/kBadRequest will not, kNotFound names an absent member,
/// kConflict a state that forbids the operation.
class LoadBalancer {
 public:
  virtual ~LoadBalancer() = default;

  /// Every member of the backend with its admin state, health and session counts. Read-only,
  /// idempotent.
  virtual Result<std::vector<Member>> ListMembers() = 0;

  /// Makes sure `spec` is a member, persisted (it survives the balancer's restarts) with health
  /// checks on, and admitted (kReady). A member added here takes no traffic before its first
  /// health check has passed. Idempotent: an existing member with the same address and port is
  /// only admitted; one with another address or port is replaced. kTimeout when the first check
  /// did not complete in time (calling again continues).
  virtual Result<void> EnsureMember(const MemberSpec& spec) = 0;

  /// Stops new connections to `name` while existing ones continue (kDraining). Idempotent.
  /// kNotFound when there is no such member.
  virtual Result<void> Drain(std::string_view name) = 0;

  /// Takes `name` out of rotation (kMaint), e.g. while its replica lags. Existing connections are
  /// not cut. Idempotent. kNotFound when there is no such member.
  virtual Result<void> Maint(std::string_view name) = 0;

  /// Sessions open through the balancer to `name` now. Read-only. kNotFound when there is no
  /// such member.
  virtual Result<int64_t> SessionCount(std::string_view name) = 0;

  /// Removes `name`. Only a member draining or in maint is removed (a ready one gives kConflict:
  /// drain it first); with kWhenIdle, one that still has sessions gives kStillHasConnections and
  /// is left alone. Idempotent: an absent member gives kAbsent.
  virtual Result<RemoveOutcome> Remove(std::string_view name, RemoveMode mode) = 0;
};

}  // namespace ra::lb
