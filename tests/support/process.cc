#include "tests/support/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace ra::testing {

namespace {

constexpr char kTestUser[] = "ra-test";

// Waits for the child without blocking forever; returns true once it has been reaped.
bool TryReap(pid_t pid, int* status) {
  int raw = 0;
  const pid_t got = waitpid(pid, &raw, WNOHANG);
  if (got != pid) return false;
  *status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
  return true;
}

// In the child after fork: only async-signal-safe calls until exec.
[[noreturn]] void ExecChild(const std::vector<char*>& argv, const std::vector<char*>& envp,
                            const ProcessOptions& options, uid_t uid, gid_t gid, int log_fd) {
  setpgid(0, 0);
  const int devnull = open("/dev/null", O_RDONLY);
  if (devnull >= 0) dup2(devnull, STDIN_FILENO);
  if (log_fd >= 0) {
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
  }
  if (!options.run_as_user.empty()) {
    if (setgroups(0, nullptr) != 0 || setgid(gid) != 0 || setuid(uid) != 0) _exit(126);
  }
  if (!options.working_dir.empty() && chdir(options.working_dir.c_str()) != 0) _exit(126);
  execvpe(argv[0], argv.data(), envp.data());
  _exit(127);
}

}  // namespace

ChildProcess::~ChildProcess() { Stop(); }

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), status_(other.status_) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    Stop();
    pid_ = std::exchange(other.pid_, -1);
    status_ = other.status_;
  }
  return *this;
}

Result<ChildProcess> ChildProcess::Start(const ProcessOptions& options) {
  if (options.argv.empty()) return Fail(ErrorKind::kInternal, "ChildProcess: empty argv");
  uid_t uid = 0;
  gid_t gid = 0;
  if (!options.run_as_user.empty()) {
    const passwd* pw = getpwnam(options.run_as_user.c_str());
    if (pw == nullptr) return Fail(ErrorKind::kConfig, "no such user: " + options.run_as_user);
    uid = pw->pw_uid;
    gid = pw->pw_gid;
  }
  // Everything the child needs is prepared before fork.
  std::vector<std::string> env_strings;
  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view kv(*e);
    const size_t eq = kv.find('=');
    if (eq != std::string_view::npos)
      env[std::string(kv.substr(0, eq))] = std::string(kv.substr(eq + 1));
  }
  for (const auto& [k, v] : options.env) env[k] = v;
  if (!options.run_as_user.empty()) {
    const passwd* pw = getpwnam(options.run_as_user.c_str());
    env["HOME"] = pw->pw_dir;
    env["USER"] = options.run_as_user;
  }
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = options.argv;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int log_fd = -1;
  if (!options.log_path.empty()) {
    log_fd = open(options.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) {
      return Fail(ErrorKind::kInternal,
                  fmt::format("cannot open {}: {}", options.log_path, std::strerror(errno)));
    }
    if (!options.run_as_user.empty() && fchown(log_fd, uid, gid) != 0) {
      // Not fatal: the parent holds the descriptor.
    }
  }
  const pid_t pid = fork();
  if (pid < 0) {
    if (log_fd >= 0) close(log_fd);
    return Fail(ErrorKind::kInternal, fmt::format("fork: {}", std::strerror(errno)));
  }
  if (pid == 0) ExecChild(argv, envp, options, uid, gid, log_fd);
  if (log_fd >= 0) close(log_fd);
  setpgid(pid, pid);  // also in the parent, so Signal() works before the child runs
  ChildProcess child;
  child.pid_ = pid;
  return child;
}

bool ChildProcess::Running() {
  if (pid_ < 0) return false;
  if (TryReap(pid_, &status_)) {
    pid_ = -1;
    return false;
  }
  return true;
}

void ChildProcess::Signal(int signal) {
  if (pid_ > 0) kill(-pid_, signal);
}

int ChildProcess::Stop(Duration grace) {
  if (pid_ < 0) return status_;
  if (TryReap(pid_, &status_)) {
    kill(-pid_, SIGKILL);  // leftovers of the group
    pid_ = -1;
    return status_;
  }
  kill(-pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (std::chrono::steady_clock::now() < deadline) {
    if (TryReap(pid_, &status_)) {
      kill(-pid_, SIGKILL);
      pid_ = -1;
      return status_;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(-pid_, SIGKILL);
  int raw = 0;
  waitpid(pid_, &raw, 0);
  status_ = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
  pid_ = -1;
  return status_;
}

Result<void> WaitForTcp(const std::string& host, int port, Duration timeout, ChildProcess* child) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return Fail(ErrorKind::kConfig, "WaitForTcp: not an IPv4 address: " + host);
  }
  while (std::chrono::steady_clock::now() < deadline) {
    if (child != nullptr && !child->Running()) {
      return Fail(ErrorKind::kInternal,
                  fmt::format("process exited before {}:{} opened", host, port));
    }
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
      const int rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
      close(fd);
      if (rc == 0) return {};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return Fail(ErrorKind::kTimeout,
              fmt::format("nothing listens on {}:{} after {} ms", host, port, timeout.count()));
}

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd >= 0) close(fd);
    return 0;
  }
  close(fd);
  return ntohs(addr.sin_port);
}

TempDir::TempDir(const std::string& prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string templ =
      std::string(base != nullptr && *base ? base : "/tmp") + "/" + prefix + "-XXXXXX";
  if (mkdtemp(templ.data()) != nullptr) {
    path_ = templ;
    chmod(path_.c_str(), 0755);
  }
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

Result<std::string> UnprivilegedUser() {
  if (geteuid() != 0) return std::string();
  if (getpwnam(kTestUser) == nullptr) {
    CommandResult r =
        RunCommand({"useradd", "--system", "--create-home", "--shell", "/bin/sh", kTestUser},
                   std::chrono::seconds(30));
    if (r.status != 0 && getpwnam(kTestUser) == nullptr) {
      return Fail(ErrorKind::kInternal,
                  "useradd " + std::string(kTestUser) + " failed: " + r.output);
    }
  }
  return std::string(kTestUser);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

CommandResult RunCommand(const std::vector<std::string>& argv, Duration timeout,
                         const std::string& run_as_user) {
  CommandResult result;
  char templ[] = "/tmp/ra-cmd-XXXXXX";
  const int fd = mkstemp(templ);
  if (fd < 0) return result;
  close(fd);
  ProcessOptions options{.argv = argv, .log_path = templ, .run_as_user = run_as_user};
  auto child = ChildProcess::Start(options);
  if (!child) {
    unlink(templ);
    result.output = child.error().message;
    return result;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (child->Running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  result.status = child->Stop(std::chrono::seconds(2));
  result.output = ReadFile(templ);
  unlink(templ);
  return result;
}

}  // namespace ra::testing
