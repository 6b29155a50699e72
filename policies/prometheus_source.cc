#include "policies/prometheus_source.h"

#include <fmt/format.h>
#include <strings.h>

#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/base64.h"
#include "core/log.h"

namespace ra::policies {

namespace {

using nlohmann::json;

// Enough of a body or a query to recognise it in an error message without flooding the log.
constexpr size_t kSnippetLength = 200;
constexpr std::string_view kApiPath = "/api/v1/query";

// One line, printable, at most `limit` bytes, and with every registered secret masked: a body
// may echo request headers, and error messages end up in logs and API answers.
std::string Snippet(std::string_view text, size_t limit = kSnippetLength) {
  std::string out;
  bool space = false;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      space = !out.empty();
      continue;
    }
    if (space) {
      out.push_back(' ');
      space = false;
    }
    out.push_back(c);
  }
  if (out.size() > limit) {
    size_t cut = limit;
    // Do not split a UTF-8 sequence: back off over continuation bytes.
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
    out.resize(cut);
    out += "...";
  }
  return log::Redact(out);
}

// Milliseconds as decimal seconds without trailing zeros: 2500 -> "2.5", 10000 -> "10".
std::string FormatSeconds(int64_t ms) {
  const bool negative = ms < 0;
  const uint64_t abs_ms = negative ? 0 - static_cast<uint64_t>(ms) : static_cast<uint64_t>(ms);
  std::string out = fmt::format("{}{}", negative ? "-" : "", abs_ms / 1000);
  if (const uint64_t frac = abs_ms % 1000; frac != 0) {
    std::string digits = fmt::format("{:03}", frac);
    while (digits.back() == '0') digits.pop_back();
    out += "." + digits;
  }
  return out;
}

// The API writes sample values as strings so that NaN and infinities survive JSON:
// "1.5", "NaN", "+Inf", "-Inf" (Go's strconv formatting).
std::optional<double> ParseSampleValue(std::string_view text) {
  std::string_view digits = text;
  if (digits.starts_with('+')) digits.remove_prefix(1);
  if (digits.empty() || digits.starts_with('+')) return std::nullopt;
  double value = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return value;
}

// A [unix_seconds, "value"] pair, as in a vector element's "value" or a scalar's "result".
Result<Series> ParseSample(const json& pair, std::string_view where) {
  if (!pair.is_array() || pair.size() != 2 || !pair[0].is_number() || !pair[1].is_string()) {
    return Fail(ErrorKind::kParse, fmt::format("{}: expected [unix_seconds, \"value\"], got {}",
                                               where, Snippet(pair.dump())));
  }
  const double seconds = pair[0].get<double>();
  // 1e11 s is year 5138: anything beyond is not a timestamp, and would overflow the clock.
  if (!std::isfinite(seconds) || std::fabs(seconds) > 1e11) {
    return Fail(ErrorKind::kParse,
                fmt::format("{}: timestamp {} is out of range", where, pair[0].dump()));
  }
  const std::string& text = pair[1].get_ref<const std::string&>();
  const std::optional<double> value = ParseSampleValue(text);
  if (!value) {
    return Fail(ErrorKind::kParse,
                fmt::format("{}: sample value \"{}\" is not a number", where, Snippet(text)));
  }
  Series series;
  series.value = *value;
  series.timestamp = TimePoint(std::chrono::milliseconds(std::llround(seconds * 1000.0)));
  return series;
}

Result<QueryResult> ParseVector(const json& result) {
  if (!result.is_array()) {
    return Fail(ErrorKind::kParse, "data.result of a vector answer is not a list");
  }
  QueryResult out;
  out.type = QueryResult::Type::kVector;
  out.series.reserve(result.size());
  for (size_t i = 0; i < result.size(); ++i) {
    const json& element = result[i];
    const std::string where = fmt::format("data.result[{}]", i);
    if (!element.is_object()) {
      return Fail(ErrorKind::kParse, where + " is not an object");
    }
    if (!element.contains("value") && element.contains("histogram")) {
      return Fail(ErrorKind::kBadRequest,
                  where +
                      " is a native histogram sample; reduce it to a number in the query, e.g. "
                      "with histogram_quantile() or histogram_count()");
    }
    auto it = element.find("value");
    if (it == element.end()) {
      return Fail(ErrorKind::kParse, where + " has no \"value\"");
    }
    auto series = ParseSample(*it, where + ".value");
    if (!series) return Fail(series.error());
    if (auto metric = element.find("metric"); metric != element.end() && !metric->is_null()) {
      if (!metric->is_object()) {
        return Fail(ErrorKind::kParse, where + ".metric is not an object");
      }
      for (const auto& [name, value] : metric->items()) {
        if (!value.is_string()) {
          return Fail(ErrorKind::kParse,
                      fmt::format("{}.metric.{} is not a string", where, Snippet(name)));
        }
        series->labels.emplace(name, value.get<std::string>());
      }
    }
    out.series.push_back(std::move(*series));
  }
  return out;
}

// The "data" of a successful answer.
Result<QueryResult> ParseData(const json& answer, std::string_view promql) {
  auto data = answer.find("data");
  if (data == answer.end() || !data->is_object()) {
    return Fail(ErrorKind::kParse, "answer has no \"data\" object");
  }
  auto type = data->find("resultType");
  auto result = data->find("result");
  if (type == data->end() || !type->is_string() || result == data->end()) {
    return Fail(ErrorKind::kParse, "answer's data lacks \"resultType\" or \"result\"");
  }
  const std::string& result_type = type->get_ref<const std::string&>();
  if (result_type == "vector") return ParseVector(*result);
  if (result_type == "scalar") {
    auto sample = ParseSample(*result, "data.result");
    if (!sample) return Fail(sample.error());
    QueryResult out;
    out.type = QueryResult::Type::kScalar;
    out.series.push_back(std::move(*sample));
    return out;
  }
  if (result_type == "matrix") {
    return Fail(ErrorKind::kBadRequest,
                fmt::format("\"{}\" returned a range vector (matrix); policies need an instant "
                            "vector or a scalar: drop the [range] selector or wrap it in a "
                            "function such as rate(), avg_over_time() or max_over_time()",
                            Snippet(promql)));
  }
  if (result_type == "string") {
    return Fail(ErrorKind::kBadRequest,
                fmt::format("\"{}\" returned a string; policies need an instant vector or a "
                            "scalar",
                            Snippet(promql)));
  }
  return Fail(ErrorKind::kParse,
              fmt::format("unknown resultType \"{}\"", Snippet(result_type, 40)));
}

void LogWarnings(const json& answer, std::string_view promql) {
  auto it = answer.find("warnings");
  if (it != answer.end() && it->is_array() && !it->empty()) {
    json warnings = json::array();
    for (const auto& w : *it)
      warnings.push_back(w.is_string() ? Snippet(w.get<std::string>()) : Snippet(w.dump()));
    log::Warn("metrics query answered with warnings",
              {{"query", Snippet(promql)}, {"warnings", std::move(warnings)}});
  }
  // VictoriaMetrics cluster: some vmstorage nodes did not answer, so the result may be short.
  if (auto partial = answer.find("isPartial");
      partial != answer.end() && partial->is_boolean() && partial->get<bool>()) {
    log::Warn("metrics query answer is partial (some storage nodes did not answer)",
              {{"query", Snippet(promql)}});
  }
}

ErrorKind KindForStatus(int status) {
  if (status == 401 || status == 403) return ErrorKind::kAuth;
  if (status == 404) return ErrorKind::kConfig;
  if (status == 429 || status >= 500) return ErrorKind::kTransient;
  if (status >= 400) return ErrorKind::kBadRequest;
  return ErrorKind::kParse;
}

// Prometheus names the error class in errorType; VictoriaMetrics puts the HTTP status there
// ("422"), which the status mapping already covers.
ErrorKind KindForApiError(std::string_view error_type, int status) {
  if (status == 401 || status == 403) return ErrorKind::kAuth;
  if (error_type == "bad_data" || error_type == "execution") return ErrorKind::kBadRequest;
  if (error_type == "timeout") return ErrorKind::kTimeout;
  if (error_type == "canceled" || error_type == "unavailable" || error_type == "internal") {
    return ErrorKind::kTransient;
  }
  if (error_type == "not_found") return ErrorKind::kNotFound;
  const ErrorKind by_status = KindForStatus(status);
  // An error body with a 2xx status: the server says it failed, but not why in a known way.
  return by_status == ErrorKind::kParse ? ErrorKind::kBadRequest : by_status;
}

}  // namespace

std::string FormEncode(std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(value.size() * 3);
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if ((u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') || u == '-' ||
        u == '.' || u == '_' || u == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
  return out;
}

std::string FormatApiTime(TimePoint at) {
  return FormatSeconds(
      std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count());
}

Result<void> ValidatePrometheusSourceOptions(const PrometheusSourceOptions& options) {
  const std::string& url = options.base_url;
  if (url.empty()) return Fail(ErrorKind::kConfig, "base_url: required");
  size_t authority = 0;
  if (url.starts_with("http://")) {
    authority = 7;
  } else if (url.starts_with("https://")) {
    authority = 8;
  } else {
    return Fail(ErrorKind::kConfig,
                fmt::format("base_url: \"{}\" must start with http:// or https://", Snippet(url)));
  }
  const size_t path = url.find('/', authority);
  const std::string_view host_port =
      std::string_view(url).substr(authority, path == std::string::npos ? path : path - authority);
  if (host_port.empty()) {
    return Fail(ErrorKind::kConfig, "base_url: no host after the scheme");
  }
  // Credentials in the URL would end up in every transport error message.
  if (host_port.find('@') != std::string_view::npos) {
    return Fail(ErrorKind::kConfig,
                "base_url: must not contain credentials (user:password@); use username/password "
                "or bearer_token");
  }
  if (url.find_first_of("?#") != std::string::npos) {
    return Fail(
        ErrorKind::kConfig,
        fmt::format("base_url: \"{}\" must not contain a query string or fragment", Snippet(url)));
  }
  if (url.find_first_of(" \t\r\n") != std::string::npos) {
    return Fail(ErrorKind::kConfig, "base_url: must not contain whitespace");
  }
  std::string trimmed = url;
  while (trimmed.size() > authority && trimmed.back() == '/') trimmed.pop_back();
  if (trimmed.ends_with(kApiPath) || trimmed.ends_with("/api/v1")) {
    return Fail(ErrorKind::kConfig,
                fmt::format("base_url: \"{}\" should stop before /api/v1 (the source appends "
                            "/api/v1/query)",
                            Snippet(url)));
  }
  if (!options.bearer_token.empty() && !options.username.empty()) {
    return Fail(ErrorKind::kConfig,
                "bearer_token and username/password are exclusive: configure one of them");
  }
  if (options.username.empty() && !options.password.empty()) {
    return Fail(ErrorKind::kConfig, "password: set without a username");
  }
  if (options.username.find(':') != std::string::npos) {
    return Fail(ErrorKind::kConfig, "username: must not contain ':' (HTTP basic auth)");
  }
  if (options.timeout <= Duration::zero()) {
    return Fail(ErrorKind::kConfig,
                fmt::format("timeout: must be positive, got {} ms", options.timeout.count()));
  }
  for (const auto& [name, value] : options.extra_headers) {
    if (strcasecmp(name.c_str(), "Authorization") == 0 ||
        strcasecmp(name.c_str(), "Content-Type") == 0) {
      return Fail(ErrorKind::kConfig,
                  fmt::format("extra_headers: \"{}\" is set by the source itself{}", name,
                              strcasecmp(name.c_str(), "Authorization") == 0
                                  ? "; use username/password or bearer_token"
                                  : ""));
    }
    if (name.empty() || name.find_first_of(": \t\r\n") != std::string::npos ||
        value.find_first_of("\r\n") != std::string::npos) {
      return Fail(ErrorKind::kConfig,
                  fmt::format("extra_headers: \"{}\" is not a valid header", Snippet(name)));
    }
  }
  return {};
}

Result<PrometheusSource> PrometheusSource::Create(PrometheusSourceOptions options,
                                                  HttpTransport& transport) {
  if (auto valid = ValidatePrometheusSourceOptions(options); !valid) return Fail(valid.error());
  return PrometheusSource(std::move(options), transport);
}

PrometheusSource::PrometheusSource(PrometheusSourceOptions options, HttpTransport& transport)
    : options_(std::move(options)), transport_(&transport) {
  query_url_ = options_.base_url;
  while (query_url_.ends_with('/')) query_url_.pop_back();
  query_url_ += kApiPath;
  if (!options_.username.empty()) {
    const std::string credentials =
        Base64Encode(options_.username + ":" + options_.password.Reveal());
    // The encoded form is as secret as the password: a server or proxy that echoes the request
    // must not put it in an error message or a log line either.
    log::RegisterSecret(credentials);
    authorization_ = "Basic " + credentials;
  } else if (!options_.bearer_token.empty()) {
    authorization_ = "Bearer " + options_.bearer_token.Reveal();
  }
}

Result<QueryResult> PrometheusSource::Query(std::string_view promql, std::optional<TimePoint> at) {
  if (promql.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return Fail(ErrorKind::kBadRequest, "empty PromQL query");
  }
  HttpRequest request;
  request.method = "POST";
  request.url = query_url_;
  request.timeout = options_.timeout;
  request.headers = options_.extra_headers;
  request.headers["Content-Type"] = "application/x-www-form-urlencoded";
  request.headers["Accept"] = "application/json";
  if (!authorization_.empty()) request.headers["Authorization"] = authorization_;
  request.body = "query=" + FormEncode(promql);
  if (at) request.body += "&time=" + FormatApiTime(*at);
  request.body += "&timeout=" + FormatSeconds(options_.timeout.count());

  const std::string context = fmt::format("query \"{}\" at {}", Snippet(promql), query_url_);
  Result<HttpResponse> sent = transport_->Send(request);
  if (!sent) {
    return Fail(sent.error().kind,
                fmt::format("{}: {}", context, log::Redact(sent.error().message)));
  }
  const HttpResponse& response = *sent;
  log::Debug("metrics query", {{"query", Snippet(promql)}, {"status", response.status}});

  try {
    const json answer = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
    const bool is_api =
        answer.is_object() && answer.contains("status") && answer["status"].is_string();
    if (is_api) LogWarnings(answer, promql);

    if (is_api && answer["status"] == "error") {
      std::string error_type;
      if (auto t = answer.find("errorType"); t != answer.end()) {
        error_type = t->is_string() ? t->get<std::string>() : t->dump();
      }
      std::string message = "(no message)";
      if (auto e = answer.find("error"); e != answer.end() && e->is_string()) {
        message = e->get<std::string>();
      }
      return Fail(KindForApiError(error_type, response.status),
                  fmt::format("{}: HTTP {}{}: {}", context, response.status,
                              error_type.empty() || error_type == std::to_string(response.status)
                                  ? ""
                                  : " (" + Snippet(error_type, 40) + ")",
                              Snippet(message, 1000)));
    }
    if (response.status == 401 || response.status == 403) {
      const char* configured = !options_.username.empty() ? "basic auth as the configured user"
                               : !options_.bearer_token.empty() ? "the configured bearer token"
                                                                : "no credentials configured";
      return Fail(ErrorKind::kAuth,
                  fmt::format("{}: HTTP {}: credentials rejected or missing ({}): {}", context,
                              response.status, configured, Snippet(response.body)));
    }
    if (response.status < 200 || response.status > 299 || !is_api) {
      const ErrorKind kind = KindForStatus(response.status);
      std::string what = is_api ? "an unexpected answer" : "not the Prometheus API's JSON";
      if (response.status == 404) {
        what += "; check base_url (VictoriaMetrics cluster needs /select/<tenant>/prometheus)";
      }
      const std::string type = response.Header("Content-Type");
      return Fail(kind,
                  fmt::format("{}: HTTP {}, {}{}: {}", context, response.status, what,
                              type.empty() ? "" : " (" + Snippet(type, 60) + ")",
                              response.body.empty() ? "(empty body)" : Snippet(response.body)));
    }
    if (answer["status"] != "success") {
      return Fail(ErrorKind::kParse,
                  fmt::format("{}: unknown status {}", context, Snippet(answer["status"].dump())));
    }
    auto parsed = ParseData(answer, promql);
    if (!parsed) return Fail(parsed.error().kind, context + ": " + parsed.error().message);
    return parsed;
  } catch (const std::exception& e) {
    // nlohmann throws on type mismatches that the checks above should already have excluded.
    return Fail(ErrorKind::kParse, fmt::format("{}: malformed answer: {}", context, e.what()));
  }
}

Result<QueryResult> ParseQueryResponse(std::string_view body, std::string_view promql) {
  try {
    const json answer = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (answer.is_discarded()) {
      return Fail(ErrorKind::kParse, fmt::format("answer is not JSON: {}",
                                                 body.empty() ? "(empty body)" : Snippet(body)));
    }
    if (!answer.is_object() || !answer.contains("status")) {
      return Fail(ErrorKind::kParse,
                  fmt::format("answer is JSON but not the Prometheus API's (no \"status\"): {}",
                              Snippet(body)));
    }
    if (answer["status"] != "success") {
      return Fail(ErrorKind::kParse, fmt::format("answer status is {}, not \"success\"",
                                                 Snippet(answer["status"].dump())));
    }
    return ParseData(answer, promql);
  } catch (const std::exception& e) {
    return Fail(ErrorKind::kParse, fmt::format("malformed answer: {}", e.what()));
  }
}

}  // namespace ra::policies
