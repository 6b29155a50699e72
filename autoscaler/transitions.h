#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "autoscaler/reconcile.h"
#include "config/config.h"
#include "core/clock.h"
#include "core/rate_limiter.h"
#include "core/result.h"
#include "core/sleeper.h"

/// Following a replica through its slow phases between cycles. A cycle lists everything; a
/// replica whose volume is being cloned or whose server builds only needs one GET of that
/// resource to know when it is done. The watcher polls each such resource on its own schedule
/// (often at first, less often the longer it has waited) and asks for a cycle the moment one of
/// them has moved on, so the next step starts then instead of up to an interval later.
namespace ra::autoscaler {

/// What a watch waits for. Each one is a transition the next step of a replica waits on.
enum class WatchKind {
  kVolume,    ///< the data volume's status leaves `from` (or the volume is gone)
  kServer,    ///< the server's status leaves `from` (or the server is gone)
  kSnapshot,  ///< a golden snapshot's status leaves `from` (or it is gone)
  kPostgres,  ///< PostgreSQL at host:port answers PQping (phase postgres_starting)
  kCatchUp,   ///< its replay lag is within the admission bounds (phase catching_up)
  kBalancer,  ///< the member serves in the load balancer (phase admitting)
};

std::string_view ToString(WatchKind kind);  ///< "volume", "server", ...

/// One transition to follow. Plain data: the cycle makes it, the watcher schedules it and the
/// controller's poll function knows how to look.
struct TransitionWatch {
  std::string cluster{};
  std::string replica{};  ///< "" for a snapshot
  WatchKind kind = WatchKind::kVolume;
  std::string id{};    ///< kVolume, kServer, kSnapshot: the resource's id
  std::string from{};  ///< kVolume, kServer, kSnapshot: the status the cycle saw
  std::string host{};  ///< kPostgres, kCatchUp
  int port = 5432;
  std::string primary_host{};  ///< kCatchUp: its lag is measured against the primary's position
  int primary_port = 5432;
  /// Whose rate limit the poll counts against: the cluster's cloud for cloud resources, "" for
  /// PostgreSQL and the load balancer (no client-side limit of ours).
  std::string budget{};
  TimePoint since{};  ///< when the transition began (the replica entered its phase)

  /// Unique among the watches of one moment: cluster/replica/kind/id.
  std::string Key() const;
};

/// The transitions a cycle's plan leaves to wait for, read from what that cycle observed:
/// volumes `creating`, servers BUILD (and servers and volumes being deleted), snapshots
/// `creating`, replicas whose PostgreSQL does not answer yet, that catch up, or that were
/// admitted and do not serve yet. Replicas an action is still running for are left out: the
/// action's end is followed by the actuator's own completion. `budget` is the cluster's cloud.
std::vector<TransitionWatch> TransitionWatches(const config::Cluster& cluster,
                                               const Observed& observed, const Plan& plan);

/// Polls the watches handed to it by Sync, each on its own schedule, and calls `on_moved` when
/// one of them has moved on (once per round of polls, however many did). Between polls of one
/// watch it waits `fraction` of the time the transition has already taken, at least
/// `min_delay` and at most `max_delay`: a 3 s clone is seen within about 0.3 s of its end, a
/// 5 min one within 30 s, and the calls a watch makes grow with the logarithm of its duration.
/// The polls of one cloud start at most `polls_per_second` (from that cloud's budget, see
/// Options::budgets) a second, without waiting for a token: a poll that finds none is moved
/// later, so the cycle's own calls are never held up by polls. Thread-safe.
class TransitionWatcher {
 public:
  struct Options {
    Duration min_delay = std::chrono::milliseconds(250);
    Duration max_delay = std::chrono::seconds(30);  ///< the loop's interval
    double fraction = 0.1;
    int parallel = 4;  ///< polls at once
    /// Budget name (a cloud's) -> polls a second it may start; a name not here is unlimited
    /// (still bounded by min_delay per watch). Built from each cloud's requests_per_second.
    std::map<std::string, double> budgets{};
  };
  /// One look at a watch's resource: true when it has moved on. An error is counted and the
  /// watch stays (the cycle still sees the resource at the interval).
  using Poll = std::function<Result<bool>(const TransitionWatch&)>;

  /// `clock` must outlive the watcher.
  TransitionWatcher(Options options, const Clock& clock, Poll poll, std::function<void()> on_moved);
  ~TransitionWatcher();
  TransitionWatcher(const TransitionWatcher&) = delete;
  TransitionWatcher& operator=(const TransitionWatcher&) = delete;

  /// Replaces the watches with `watches` (a cycle's whole set): a watch kept keeps its
  /// schedule, a new one is first polled after its delay from `now`, one not given is dropped.
  void Sync(std::vector<TransitionWatch> watches, TimePoint now);

  /// Polls every watch due at `now` (up to `parallel` at once), reschedules the rest of them and
  /// calls on_moved if one has moved on. The polls made. Run() calls it; tests call it directly.
  int PollDue(TimePoint now);

  /// When the next watch is due; nullopt when there is none.
  std::optional<TimePoint> NextDue() const;

  /// The wait before polling again a transition that began at `since`, at `now`.
  Duration DelayFor(TimePoint since, TimePoint now) const;

  /// Polls on a thread of its own until Stop. Once.
  void Start();
  /// Ends the thread after the polls in progress. Idempotent.
  void Stop();

  /// Polls made and transitions seen to move on since the start (for metrics and tests).
  int64_t polls() const;
  int64_t moved() const;
  size_t size() const;

 private:
  struct Entry {
    TransitionWatch watch;
    TimePoint due;
  };
  void RunThread();

  const Options options_;
  const Clock& clock_;
  Poll poll_;
  std::function<void()> on_moved_;
  RealSleeper unused_sleeper_;  // the limiters are only asked TryAcquire, which never sleeps
  std::map<std::string, std::unique_ptr<RateLimiter>> limiters_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Entry> entries_;  // by Key()
  bool stop_ = false;
  bool started_ = false;
  int64_t polls_ = 0;
  int64_t moved_ = 0;
  std::thread thread_;
};

}  // namespace ra::autoscaler
