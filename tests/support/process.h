#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/result.h"

/// Helpers for integration tests that start real components (VictoriaMetrics, Prometheus,
/// PostgreSQL, HAProxy, the sandbox servers) on loopback. Everything started here is stopped by
/// the destructor, so a failing test leaves nothing running.
namespace ra::testing {

struct ProcessOptions {
  std::vector<std::string> argv{};           ///< argv[0] is looked up in PATH
  std::map<std::string, std::string> env{};  ///< added to (or replacing in) the environment
  std::string working_dir{};                 ///< empty: inherit
  std::string log_path{};                    ///< stdout and stderr go here; empty: /dev/null
  std::string run_as_user{};                 ///< drop to this user (root only), e.g. for PostgreSQL
};

/// A child process in its own process group. Stop() (and the destructor) sends SIGTERM to the
/// group, waits up to `grace`, then SIGKILL. Not copyable; movable.
class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess();
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  static Result<ChildProcess> Start(const ProcessOptions& options);

  pid_t pid() const { return pid_; }
  bool Running();
  /// Exit status (or 128 + signal) once it has ended; blocks up to `grace` before killing.
  int Stop(Duration grace = std::chrono::seconds(10));
  /// Sends `signal` to the process group without waiting (e.g. SIGKILL to simulate a crash).
  void Signal(int signal);

 private:
  pid_t pid_ = -1;
  int status_ = -1;
};

/// Polls `predicate` every `interval` until it holds or `timeout` passes (steady clock); the
/// answer of a last try at the deadline. For integration tests, which wait on real components.
template <typename F>
bool Eventually(F predicate, Duration timeout, Duration interval = std::chrono::milliseconds(200)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(interval);
  }
  return predicate();
}

/// Blocks until something accepts TCP connections on host:port, the child dies, or `timeout`.
Result<void> WaitForTcp(const std::string& host, int port, Duration timeout,
                        ChildProcess* child = nullptr);

/// A TCP port on 127.0.0.1 that was free a moment ago.
int FreePort();

/// A fresh directory under $TMPDIR (or /tmp), removed recursively by the destructor.
/// World-traversable so a component run as an unprivileged user can use it.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "ra-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_{};
};

/// The unprivileged user that runs PostgreSQL in tests (PostgreSQL refuses root). Created on
/// first use when running as root; returns "" when not root (run as yourself then).
Result<std::string> UnprivilegedUser();

/// Reads a whole file; "" if it cannot.
std::string ReadFile(const std::string& path);

/// Runs a command to completion, returning its exit status and combined output.
struct CommandResult {
  int status = -1;
  std::string output{};
};
CommandResult RunCommand(const std::vector<std::string>& argv, Duration timeout,
                         const std::string& run_as_user = "");

}  // namespace ra::testing
