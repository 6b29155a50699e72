#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/http_transport.h"
#include "core/result.h"
#include "tests/support/process.h"

/// Real metrics servers (VictoriaMetrics, Prometheus) and a scriptable HTTP listener on loopback,
/// for integration tests. Each object owns what it started and stops it in its destructor; every
/// wait is bounded.
namespace ra::testing {

/// One sample to load: name{labels} value at a timestamp (millisecond precision).
struct MetricSample {
  std::string name{};
  std::map<std::string, std::string> labels{};
  double value = 0;
  TimePoint at{};
};

/// Short timeouts and no proxy from the environment: what tests talking to loopback servers use.
HttpOptions LoopbackHttpOptions();

/// Prometheus text exposition with millisecond timestamps (VictoriaMetrics' import format).
std::string ToPrometheusText(const std::vector<MetricSample>& samples);

/// OpenMetrics text with second timestamps, series grouped and time-ordered, ending in "# EOF"
/// (what `promtool tsdb create-blocks-from openmetrics` reads).
std::string ToOpenMetrics(const std::vector<MetricSample>& samples);

/// A single-node VictoriaMetrics (/usr/bin/victoria-metrics) on 127.0.0.1 with its own data
/// directory.
class VictoriaMetricsServer {
 public:
  struct Options {
    /// -http.pathPrefix, e.g. "/select/0/prometheus" to look like a vmselect URL.
    std::string path_prefix{};
    /// -httpAuth.username / -httpAuth.password when non-empty.
    std::string username{};
    std::string password{};
  };

  /// Starts the server and waits (bounded) until /health answers OK.
  static Result<std::unique_ptr<VictoriaMetricsServer>> Start(Options options);
  ~VictoriaMetricsServer();

  /// http://127.0.0.1:PORT plus the path prefix: what PrometheusSourceOptions::base_url takes.
  const std::string& base_url() const { return base_url_; }

  /// Loads samples through /api/v1/import/prometheus, asks for a flush, then polls (bounded)
  /// until every loaded series is visible to queries at the newest sample's time.
  Result<void> Import(const std::vector<MetricSample>& samples);

  /// The last part of the server's log, for failure messages.
  std::string LogTail() const;

 private:
  VictoriaMetricsServer() = default;
  Result<HttpResponse> Send(HttpRequest request);

  Options options_;
  std::unique_ptr<TempDir> dir_;
  ChildProcess process_;
  std::string base_url_;
  std::unique_ptr<CurlHttpTransport> http_;
};

/// A Prometheus 2.x (/usr/bin/prometheus) on 127.0.0.1 that scrapes nothing. Known data is
/// backfilled with promtool into its TSDB before it starts, so tests query exact values at exact
/// times without waiting for scrapes.
class PrometheusServer {
 public:
  struct Options {
    std::vector<MetricSample> backfill{};
    /// --web.config.file with this user (bcrypt-hashed by `htpasswd -B`) when non-empty.
    std::string username{};
    std::string password{};
  };

  /// Backfills, starts, and waits (bounded) until /-/ready answers 200.
  static Result<std::unique_ptr<PrometheusServer>> Start(Options options);
  ~PrometheusServer();

  const std::string& base_url() const { return base_url_; }
  std::string LogTail() const;

 private:
  PrometheusServer() = default;

  std::unique_ptr<TempDir> dir_;
  ChildProcess process_;
  std::string base_url_;
};

/// A tiny HTTP/1.1 server on 127.0.0.1 running on its own thread: it records each request and
/// answers it with the scripted response, or (hang mode) reads it and never answers, holding the
/// connection until Stop(). One request per connection.
class LoopbackHttpServer {
 public:
  struct Received {
    std::string method{};
    std::string target{};
    HttpHeaders headers{};
    std::string body{};
  };
  struct Reply {
    int status = 200;
    HttpHeaders headers{};
    std::string body{};
  };

  /// Listens on a kernel-chosen port; fails if the socket cannot be set up.
  static Result<std::unique_ptr<LoopbackHttpServer>> Start();
  ~LoopbackHttpServer();

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  void SetReply(Reply reply);
  /// Accept and read requests but never answer them.
  void SetHang(bool hang);
  std::vector<Received> received() const;
  void Stop();

 private:
  LoopbackHttpServer() = default;
  void Serve();
  void Handle(int fd);

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex mu_;
  Reply reply_;
  bool hang_ = false;
  std::vector<Received> received_;
  std::vector<int> held_;  ///< connections kept open in hang mode
};

}  // namespace ra::testing
