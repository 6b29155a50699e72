#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/http_transport.h"
#include "core/result.h"
#include "core/secret.h"
#include "policies/metrics_source.h"

namespace ra::policies {

/// Where and how to reach a Prometheus-compatible HTTP API (Prometheus, VictoriaMetrics single
/// node, vmselect, vmauth, or a proxy in front of them).
struct PrometheusSourceOptions {
  /// Scheme, host, port and an optional path prefix, without "/api/v1/...": for example
  /// "http://127.0.0.1:8428" (VictoriaMetrics), "http://prometheus:9090",
  /// "http://vmselect:8481/select/0/prometheus" (VictoriaMetrics cluster, tenant 0). A trailing
  /// slash is ignored. Must not carry credentials, a query string or a fragment.
  std::string base_url;
  /// HTTP basic auth when non-empty (the password may be empty).
  std::string username;
  Secret password;
  /// "Authorization: Bearer <token>" when non-empty. Exclusive with basic auth.
  Secret bearer_token;
  /// One query's budget: sent as the HTTP total timeout and as the API's `timeout` parameter,
  /// so the server gives up evaluating at the same moment the client stops waiting.
  Duration timeout = std::chrono::seconds(10);
  /// Sent with every query, e.g. a tenant header for a multi-tenant proxy. May not set
  /// Authorization (use the fields above) nor Content-Type.
  HttpHeaders extra_headers;
};

/// Checks `options` without contacting anything; every problem is kConfig with the field name.
Result<void> ValidatePrometheusSourceOptions(const PrometheusSourceOptions& options);

/// MetricsSource over the Prometheus HTTP API's instant query endpoint (`POST /api/v1/query`,
/// form-encoded), which Prometheus and VictoriaMetrics both serve.
///
/// Error mapping (see MetricsSource::Query): transport failures keep their kind (kTimeout,
/// kTransient); 401/403 are kAuth; an API error body ({"status":"error","errorType":...}) keeps
/// the server's message, as kBadRequest for bad_data/execution/400/422, kTimeout for the
/// server's own query timeout, kTransient for 429, 5xx, canceled, unavailable, internal; a 404 is
/// kConfig (base_url points at something that is not the API); any other non-JSON answer is
/// kTransient when its status is 5xx or 429 (a proxy's error page) and kParse otherwise, with the
/// status and the start of the body. Answer `warnings` are logged at warn level. Secrets never
/// appear in errors or logs.
class PrometheusSource final : public MetricsSource {
 public:
  /// Validates `options` (kConfig on error). `transport` is borrowed and must outlive the source.
  static Result<PrometheusSource> Create(PrometheusSourceOptions options, HttpTransport& transport);

  /// Blocks up to options.timeout. Idempotent (read-only API); thread-safe as the transport is.
  Result<QueryResult> Query(std::string_view promql, std::optional<TimePoint> at) override;

  const PrometheusSourceOptions& options() const { return options_; }

 private:
  PrometheusSource(PrometheusSourceOptions options, HttpTransport& transport);

  PrometheusSourceOptions options_;
  HttpTransport* transport_;
  std::string query_url_;
  std::string authorization_;  ///< the Authorization header's value, "" for none
};

/// Form-encodes one value (application/x-www-form-urlencoded, RFC 3986 unreserved kept, every
/// other byte as %XX). Exposed for tests.
std::string FormEncode(std::string_view value);

/// `at` as the API's `time` parameter: unix seconds with millisecond precision ("1700000000.5").
/// Exposed for tests.
std::string FormatApiTime(TimePoint at);

/// Parses a body of the instant query API whose HTTP status was 2xx. Exposed for tests.
Result<QueryResult> ParseQueryResponse(std::string_view body, std::string_view promql);

}  // namespace ra::policies
