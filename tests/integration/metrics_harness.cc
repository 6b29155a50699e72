#include "tests/integration/metrics_harness.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "core/base64.h"
#include "policies/prometheus_source.h"

namespace ra::testing {

namespace {

using namespace std::chrono_literals;

constexpr Duration kStartTimeout = 30s;
constexpr Duration kDataTimeout = 15s;
constexpr auto kPollInterval = 100ms;

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

int64_t Millis(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::string Seconds(TimePoint t) {
  const int64_t ms = Millis(t);
  return fmt::format("{}.{:03}", ms / 1000, ms % 1000);
}

std::string LabelSet(const std::map<std::string, std::string>& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [name, value] : labels) {
    if (!first) out += ",";
    first = false;
    out += name + "=\"";
    for (char c : value) {
      if (c == '\\' || c == '"') {
        out += '\\';
        out += c;
      } else if (c == '\n') {
        out += "\\n";
      } else {
        out += c;
      }
    }
    out += "\"";
  }
  return out + "}";
}

std::string Tail(const std::string& text, size_t n = 3000) {
  return text.size() <= n ? text : "..." + text.substr(text.size() - n);
}

bool WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  return static_cast<bool>(out);
}

// Polls GET url until it answers 200, the child dies, or the timeout passes.
Result<void> WaitForHttpOk(HttpTransport& http, const std::string& url, const HttpHeaders& headers,
                           ChildProcess& child, Duration timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string last = "no answer yet";
  while (std::chrono::steady_clock::now() < deadline) {
    if (!child.Running()) return Fail(ErrorKind::kInternal, "the server exited while starting");
    HttpRequest request;
    request.url = url;
    request.headers = headers;
    request.timeout = 2s;
    auto answer = http.Send(request);
    if (answer && answer->status == 200) return {};
    last = answer ? fmt::format("HTTP {}: {}", answer->status, Tail(answer->body, 200))
                  : answer.error().message;
    std::this_thread::sleep_for(kPollInterval);
  }
  return Fail(ErrorKind::kTimeout,
              fmt::format("{} not ready after {} ms ({})", url, timeout.count(), last));
}

// Starts a server on a free port and waits until GET base + ready_path answers 200. FreePort()
// can race with another process taking the port: the server then exits at once, and the next
// attempt takes another port. Returns the port.
Result<int> LaunchOnFreePort(const std::function<std::vector<std::string>(int)>& argv_for,
                             const std::string& log_path, const std::string& path_prefix,
                             const std::string& ready_path, const HttpHeaders& headers,
                             ChildProcess* process) {
  CurlHttpTransport http(LoopbackHttpOptions());
  Error last{ErrorKind::kInternal, "not started"};
  for (int attempt = 0; attempt < 3; ++attempt) {
    const int port = FreePort();
    if (port == 0) return Fail(ErrorKind::kInternal, "no free port");
    auto child = ChildProcess::Start({.argv = argv_for(port), .log_path = log_path});
    if (!child) return Fail(child.error());
    *process = std::move(*child);
    auto ready = WaitForTcp("127.0.0.1", port, kStartTimeout, process);
    if (ready) {
      ready =
          WaitForHttpOk(http, fmt::format("http://127.0.0.1:{}{}{}", port, path_prefix, ready_path),
                        headers, *process, kStartTimeout);
    }
    if (ready) return port;
    last = ready.error();
    if (process->Running()) break;  // alive but not ready: another port will not help
  }
  return Fail(last.kind, last.message + "\n" + Tail(ReadFile(log_path)));
}

}  // namespace

HttpOptions LoopbackHttpOptions() {
  HttpOptions options;
  options.connect_timeout = 2s;
  options.total_timeout = 5s;
  // A proxy from the environment must never see loopback test traffic.
  options.proxy_from_env = false;
  return options;
}

std::string ToPrometheusText(const std::vector<MetricSample>& samples) {
  std::string out;
  for (const MetricSample& s : samples) {
    out +=
        fmt::format("{}{} {} {}\n", s.name, LabelSet(s.labels), FormatValue(s.value), Millis(s.at));
  }
  return out;
}

std::string ToOpenMetrics(const std::vector<MetricSample>& samples) {
  std::vector<const MetricSample*> sorted;
  for (const MetricSample& s : samples) sorted.push_back(&s);
  // OpenMetrics wants each family contiguous and each series in time order.
  std::stable_sort(sorted.begin(), sorted.end(), [](const MetricSample* a, const MetricSample* b) {
    return std::tie(a->name, a->labels, a->at) < std::tie(b->name, b->labels, b->at);
  });
  std::string out;
  std::string family;
  for (const MetricSample* s : sorted) {
    if (s->name != family) {
      family = s->name;
      out += fmt::format("# TYPE {} gauge\n", family);
    }
    out += fmt::format("{}{} {} {}\n", s->name, LabelSet(s->labels), FormatValue(s->value),
                       Seconds(s->at));
  }
  return out + "# EOF\n";
}

// --- VictoriaMetrics ---------------------------------------------------------------------------

Result<std::unique_ptr<VictoriaMetricsServer>> VictoriaMetricsServer::Start(Options options) {
  std::unique_ptr<VictoriaMetricsServer> vm(new VictoriaMetricsServer());
  vm->options_ = options;
  vm->dir_ = std::make_unique<TempDir>("ra-vm");
  if (vm->dir_->path().empty()) return Fail(ErrorKind::kInternal, "cannot create a temp dir");
  vm->http_ = std::make_unique<CurlHttpTransport>(LoopbackHttpOptions());
  HttpHeaders headers;
  if (!options.username.empty()) {
    headers["Authorization"] = "Basic " + Base64Encode(options.username + ":" + options.password);
  }
  auto argv_for = [&](int port) {
    std::vector<std::string> argv = {
        "/usr/bin/victoria-metrics",
        fmt::format("-httpListenAddr=127.0.0.1:{}", port),
        "-storageDataPath=" + vm->dir_->path() + "/data",
        "-retentionPeriod=1",
        // Polling for freshly loaded data must not be answered from a cached empty result.
        "-search.disableCache",
    };
    if (!options.path_prefix.empty()) argv.push_back("-http.pathPrefix=" + options.path_prefix);
    if (!options.username.empty()) {
      argv.push_back("-httpAuth.username=" + options.username);
      argv.push_back("-httpAuth.password=" + options.password);
    }
    return argv;
  };
  auto port = LaunchOnFreePort(argv_for, vm->dir_->path() + "/victoria-metrics.log",
                               options.path_prefix, "/health", headers, &vm->process_);
  if (!port) return Fail(port.error());
  vm->base_url_ = fmt::format("http://127.0.0.1:{}{}", *port, options.path_prefix);
  return vm;
}

VictoriaMetricsServer::~VictoriaMetricsServer() { process_.Stop(5s); }

std::string VictoriaMetricsServer::LogTail() const {
  return dir_ ? Tail(ReadFile(dir_->path() + "/victoria-metrics.log")) : "";
}

Result<HttpResponse> VictoriaMetricsServer::Send(HttpRequest request) {
  if (!options_.username.empty()) {
    request.headers["Authorization"] =
        "Basic " + Base64Encode(options_.username + ":" + options_.password);
  }
  return http_->Send(request);
}

Result<void> VictoriaMetricsServer::Import(const std::vector<MetricSample>& samples) {
  if (samples.empty()) return {};
  HttpRequest import;
  import.method = "POST";
  import.url = base_url_ + "/api/v1/import/prometheus";
  import.headers["Content-Type"] = "text/plain";
  import.body = ToPrometheusText(samples);
  auto sent = Send(import);
  if (!sent) return Fail(sent.error());
  if (sent->status / 100 != 2) {
    return Fail(ErrorKind::kInternal,
                fmt::format("import: HTTP {}: {}", sent->status, Tail(sent->body, 500)));
  }
  // Makes in-memory parts searchable now instead of within a second or so.
  HttpRequest flush;
  flush.url = base_url_ + "/internal/force_flush";
  if (auto flushed = Send(flush); !flushed || flushed->status / 100 != 2) {
    return Fail(ErrorKind::kInternal, "force_flush failed");
  }

  // Visible means: counting every loaded sample over the loaded time span gives them all.
  std::set<std::string> names;
  TimePoint first = samples.front().at;
  TimePoint last = samples.front().at;
  for (const MetricSample& s : samples) {
    names.insert(s.name);
    first = std::min(first, s.at);
    last = std::max(last, s.at);
  }
  std::string name_regex;
  for (const std::string& n : names) name_regex += (name_regex.empty() ? "" : "|") + n;
  const auto span = std::chrono::duration_cast<std::chrono::seconds>(last - first) + 2s;
  const std::string promql =
      fmt::format("sum(count_over_time({{__name__=~\"{}\"}}[{}s]))", name_regex, span.count());
  const auto deadline = std::chrono::steady_clock::now() + kDataTimeout;
  std::string seen = "nothing";
  while (std::chrono::steady_clock::now() < deadline) {
    HttpRequest query;
    query.method = "POST";
    query.url = base_url_ + "/api/v1/query";
    query.headers["Content-Type"] = "application/x-www-form-urlencoded";
    query.body = "query=" + policies::FormEncode(promql) + "&time=" + Seconds(last + 1ms);
    auto answer = Send(query);
    if (answer && answer->status == 200) {
      const auto json = nlohmann::json::parse(answer->body, nullptr, false);
      try {
        const auto& result = json.at("data").at("result");
        if (!result.empty()) {
          const double count = std::stod(result[0].at("value")[1].get<std::string>());
          if (count == static_cast<double>(samples.size())) return {};
          seen = fmt::format("{} of {} samples", count, samples.size());
        }
      } catch (const std::exception& e) {
        seen = std::string("unreadable answer: ") + e.what();
      }
    } else {
      seen = answer ? fmt::format("HTTP {}", answer->status) : answer.error().message;
    }
    std::this_thread::sleep_for(kPollInterval);
  }
  return Fail(ErrorKind::kTimeout, fmt::format("loaded data not queryable after {} ms: {} ({})",
                                               kDataTimeout.count(), seen, promql));
}

// --- Prometheus --------------------------------------------------------------------------------

Result<std::unique_ptr<PrometheusServer>> PrometheusServer::Start(Options options) {
  std::unique_ptr<PrometheusServer> prom(new PrometheusServer());
  prom->dir_ = std::make_unique<TempDir>("ra-prom");
  const std::string& dir = prom->dir_->path();
  if (dir.empty()) return Fail(ErrorKind::kInternal, "cannot create a temp dir");
  const std::string data = dir + "/data";

  if (!WriteFile(dir + "/prometheus.yml",
                 "global:\n  scrape_interval: 15s\nscrape_configs: []\n")) {
    return Fail(ErrorKind::kInternal, "cannot write prometheus.yml");
  }
  if (!options.backfill.empty()) {
    const std::string om = dir + "/backfill.om";
    if (!WriteFile(om, ToOpenMetrics(options.backfill))) {
      return Fail(ErrorKind::kInternal, "cannot write " + om);
    }
    CommandResult r =
        RunCommand({"promtool", "tsdb", "create-blocks-from", "openmetrics", om, data}, 60s);
    if (r.status != 0) {
      return Fail(ErrorKind::kInternal,
                  fmt::format("promtool backfill failed ({}): {}", r.status, Tail(r.output)));
    }
  }
  HttpHeaders headers;
  std::vector<std::string> argv = {"/usr/bin/prometheus",
                                   "--config.file=" + dir + "/prometheus.yml",
                                   "--storage.tsdb.path=" + data};
  if (!options.username.empty()) {
    // bcrypt at the lowest cost: the hash only has to be valid, and cost 4 checks in ~1 ms.
    CommandResult r = RunCommand(
        {"htpasswd", "-n", "-b", "-B", "-C", "4", options.username, options.password}, 30s);
    const size_t colon = r.output.find(':');
    if (r.status != 0 || colon == std::string::npos) {
      return Fail(ErrorKind::kInternal,
                  fmt::format("htpasswd failed ({}); is apache2-utils installed? {}", r.status,
                              Tail(r.output, 300)));
    }
    std::string hash = r.output.substr(colon + 1);
    while (!hash.empty() && (hash.back() == '\n' || hash.back() == '\r')) hash.pop_back();
    if (!WriteFile(dir + "/web.yml",
                   fmt::format("basic_auth_users:\n  {}: '{}'\n", options.username, hash))) {
      return Fail(ErrorKind::kInternal, "cannot write web.yml");
    }
    argv.push_back("--web.config.file=" + dir + "/web.yml");
    headers["Authorization"] = "Basic " + Base64Encode(options.username + ":" + options.password);
  }
  auto argv_for = [&](int port) {
    std::vector<std::string> with_port = argv;
    with_port.push_back(fmt::format("--web.listen-address=127.0.0.1:{}", port));
    return with_port;
  };
  auto port =
      LaunchOnFreePort(argv_for, dir + "/prometheus.log", "", "/-/ready", headers, &prom->process_);
  if (!port) return Fail(port.error());
  prom->base_url_ = fmt::format("http://127.0.0.1:{}", *port);
  return prom;
}

PrometheusServer::~PrometheusServer() { process_.Stop(5s); }

std::string PrometheusServer::LogTail() const {
  return dir_ ? Tail(ReadFile(dir_->path() + "/prometheus.log")) : "";
}

// --- LoopbackHttpServer ------------------------------------------------------------------------

Result<std::unique_ptr<LoopbackHttpServer>> LoopbackHttpServer::Start() {
  std::unique_ptr<LoopbackHttpServer> server(new LoopbackHttpServer());
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Fail(ErrorKind::kInternal, "socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 16) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    return Fail(ErrorKind::kInternal, "cannot listen on 127.0.0.1");
  }
  server->listen_fd_ = fd;
  server->port_ = ntohs(addr.sin_port);
  server->thread_ = std::thread([s = server.get()] { s->Serve(); });
  return server;
}

LoopbackHttpServer::~LoopbackHttpServer() { Stop(); }

void LoopbackHttpServer::SetReply(Reply reply) {
  std::lock_guard lock(mu_);
  reply_ = std::move(reply);
}

void LoopbackHttpServer::SetHang(bool hang) {
  std::lock_guard lock(mu_);
  hang_ = hang;
}

std::vector<LoopbackHttpServer::Received> LoopbackHttpServer::received() const {
  std::lock_guard lock(mu_);
  return received_;
}

void LoopbackHttpServer::Stop() {
  if (stop_.exchange(true)) return;
  if (thread_.joinable()) thread_.join();
  if (listen_fd_ >= 0) close(listen_fd_);
  listen_fd_ = -1;
  std::lock_guard lock(mu_);
  for (int fd : held_) close(fd);
  held_.clear();
}

void LoopbackHttpServer::Serve() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) Handle(fd);
  }
}

void LoopbackHttpServer::Handle(int fd) {
  // Read the head, then Content-Length bytes of body; give up on a silent client after 5 s.
  std::string data;
  size_t head_end = std::string::npos;
  size_t want = 0;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  char buffer[4096];
  while (!stop_ && std::chrono::steady_clock::now() < deadline) {
    if (head_end != std::string::npos && data.size() >= head_end + 4 + want) break;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n <= 0) break;
    data.append(buffer, static_cast<size_t>(n));
    if (head_end == std::string::npos && (head_end = data.find("\r\n\r\n")) != std::string::npos) {
      const size_t cl = data.find("\r\nContent-Length:");
      const size_t cl_lower = data.find("\r\ncontent-length:");
      const size_t at = cl != std::string::npos ? cl : cl_lower;
      if (at != std::string::npos && at < head_end) want = std::stoul(data.substr(at + 17));
    }
  }
  Received got;
  if (head_end != std::string::npos) {
    const std::string head = data.substr(0, head_end);
    const size_t line_end = head.find("\r\n");
    const std::string request_line = head.substr(0, line_end);
    const size_t sp1 = request_line.find(' ');
    const size_t sp2 = request_line.find(' ', sp1 + 1);
    got.method = request_line.substr(0, sp1);
    got.target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
    size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
    while (pos < head.size()) {
      size_t end = head.find("\r\n", pos);
      if (end == std::string::npos) end = head.size();
      const std::string line = head.substr(pos, end - pos);
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        size_t v = colon + 1;
        while (v < line.size() && line[v] == ' ') ++v;
        got.headers[line.substr(0, colon)] = line.substr(v);
      }
      pos = end + 2;
    }
    got.body = data.substr(head_end + 4);
  }
  std::lock_guard lock(mu_);
  received_.push_back(got);
  if (hang_) {
    held_.push_back(fd);
    return;
  }
  std::string response = fmt::format("HTTP/1.1 {} Scripted\r\n", reply_.status);
  for (const auto& [name, value] : reply_.headers) response += name + ": " + value + "\r\n";
  response += fmt::format("Content-Length: {}\r\nConnection: close\r\n\r\n", reply_.body.size());
  response += reply_.body;
  size_t off = 0;
  while (off < response.size()) {
    const ssize_t n = send(fd, response.data() + off, response.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  close(fd);
}

}  // namespace ra::testing
