#include "openstack/session.h"

#include <fmt/format.h>

#include "core/backoff.h"
#include "core/log.h"
#include "openstack/errors.h"
#include "openstack/microversion.h"

namespace ra::openstack {

namespace {

void ReplaceAll(std::string& s, std::string_view from, std::string_view to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
}

bool IsBlockStorage(std::string_view type) {
  return type == "block-storage" || type == "volumev3" || type == "volume";
}

}  // namespace

std::string ExpandEndpoint(std::string url, const std::string& project_id) {
  ReplaceAll(url, "{project_id}", project_id);
  ReplaceAll(url, "%(project_id)s", project_id);
  ReplaceAll(url, "$(project_id)s", project_id);
  ReplaceAll(url, "%(tenant_id)s", project_id);
  ReplaceAll(url, "$(tenant_id)s", project_id);
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

Session::Session(OpenStackOptions options, SessionDeps deps)
    : options_(std::move(options)),
      deps_(std::move(deps)),
      auth_(options_.auth, deps_.transport, deps_.clock, options_.token_refresh_margin,
            options_.user_agent),
      limiter_(options_.requests_per_second, options_.burst, deps_.clock, deps_.sleeper) {
  if (!deps_.random) deps_.random = DefaultRandomSource();
}

Result<std::string> Session::EndpointFor(const Token& token,
                                         const std::string& service_type) const {
  for (const auto& [type, url] : options_.endpoint_overrides) {
    if (type == service_type || (IsBlockStorage(type) && IsBlockStorage(service_type))) {
      return ExpandEndpoint(url, token.project_id);
    }
  }
  auto url = FindEndpoint(token.catalog, service_type, options_.interface, options_.region_name);
  if (!url) return Fail(url.error());
  std::string out = *url;
  while (!out.empty() && out.back() == '/') out.pop_back();
  return out;
}

Result<std::string> Session::Microversion(const std::string& service_type) {
  auto token = auth_.GetToken();
  if (!token) return Fail(token.error());
  auto base = EndpointFor(**token, service_type);
  if (!base) return Fail(base.error());
  return NegotiateMicroversion(**token, service_type, *base);
}

Result<std::string> Session::NegotiateMicroversion(const Token& token,
                                                   const std::string& service_type,
                                                   const std::string& endpoint) {
  const bool compute = service_type == "compute";
  const std::string& pinned =
      compute ? options_.compute_microversion : options_.volume_microversion;
  if (!pinned.empty()) return pinned;
  const std::string key = compute ? "compute" : "volume";
  {
    std::lock_guard lock(microversions_mu_);
    if (auto it = microversions_.find(key); it != microversions_.end()) return it->second;
  }
  const MicroversionNeed& need = compute ? kComputeNeed : kVolumeNeed;
  auto keep = [this, &key](std::string version) -> Result<std::string> {
    std::lock_guard lock(microversions_mu_);
    return microversions_.emplace(key, std::move(version)).first->second;
  };
  auto url = VersionDocumentUrl(endpoint, compute);
  if (!url) return Fail(url.error());
  if (!*url) {
    log::Warn("openstack: endpoint has no version segment; microversion not negotiated",
              {{"service", key}, {"endpoint", log::Redact(endpoint)}, {"sent", need.version}});
    return keep(std::string(need.version));
  }
  limiter_.Acquire();
  HttpRequest http{.method = "GET", .url = **url};
  http.headers["X-Auth-Token"] = token.value.Reveal();
  http.headers["Accept"] = "application/json";
  http.headers["User-Agent"] = options_.user_agent;
  const TimePoint sent = deps_.clock.Now();
  auto response = deps_.transport.Send(http);
  const std::string what = key + ": version document";
  if (observer_) {
    observer_(RequestRecord{service_type, "GET", what, response ? response->status : 0,
                            std::chrono::duration_cast<Duration>(deps_.clock.Now() - sent), 1});
  }
  if (!response) {
    return Fail(response.error().kind,
                fmt::format("{}: {}", what, log::Redact(response.error().message)));
  }
  if (response->status >= 500 || response->status == 401 || response->status == 429) {
    return Fail(ErrorFromResponse(*response, what));
  }
  if (response->status >= 300) {
    // Some gateways serve no version document under the versioned path; the client then sends
    // the least it needs, and a cloud without it answers each call with its own error.
    log::Warn("openstack: no version document; microversion not negotiated",
              {{"service", key}, {"status", response->status}, {"sent", need.version}});
    return keep(std::string(need.version));
  }
  auto chosen = ChooseMicroversion(response->body, compute, need, **url);
  if (!chosen) {
    if (chosen.error().kind != ErrorKind::kParse) return Fail(chosen.error());
    log::Warn("openstack: unreadable version document; microversion not negotiated",
              {{"service", key}, {"error", chosen.error().message}, {"sent", need.version}});
    return keep(std::string(need.version));
  }
  log::Info("openstack: microversion negotiated", {{"service", key}, {"version", *chosen}});
  return keep(std::move(*chosen));
}

Result<std::string> Session::Endpoint(const std::string& service_type) {
  auto token = auth_.GetToken();
  if (!token) return Fail(token.error());
  return EndpointFor(**token, service_type);
}

Result<std::string> Session::ProjectId() {
  auto token = auth_.GetToken();
  if (!token) return Fail(token.error());
  return (*token)->project_id;
}

Result<HttpResponse> Session::Send(const ServiceRequest& request) {
  const RetryOptions& retry = options_.retry;
  const TimePoint started = deps_.clock.Now();
  bool reauthenticated = false;
  std::optional<Error> last_error;
  int attempts_made = 0;
  // The wait before the next attempt after a failure without an answer to read Retry-After from.
  auto back_off = [&](int attempt) {
    if (attempt < retry.max_attempts) {
      deps_.sleeper.SleepFor(
          BackoffDelay(retry.initial_backoff, retry.max_backoff, attempt + 1, deps_.random()));
    }
  };
  for (int attempt = 1; attempt <= std::max(1, retry.max_attempts); ++attempt) {
    if (attempt > 1 && deps_.clock.Now() - started >= retry.max_elapsed) break;
    attempts_made = attempt;
    limiter_.Acquire();
    auto token = auth_.GetToken();
    if (!token) {
      if (!IsRetryable(token.error().kind)) return Fail(token.error());
      last_error = token.error();
      back_off(attempt);
      continue;
    }
    auto base = EndpointFor(**token, request.service_type);
    if (!base) return Fail(base.error());
    std::string microversion;
    if (request.service_type == "compute" || IsBlockStorage(request.service_type)) {
      auto negotiated = NegotiateMicroversion(**token, request.service_type, *base);
      if (!negotiated) {
        if (!IsRetryable(negotiated.error().kind)) return Fail(negotiated.error());
        last_error = negotiated.error();
        back_off(attempt);
        continue;
      }
      microversion = std::move(*negotiated);
    }

    HttpRequest http;
    http.method = request.method;
    http.url = *base + request.path;
    http.headers = request.headers;
    http.headers["X-Auth-Token"] = (*token)->value.Reveal();
    http.headers["Accept"] = "application/json";
    http.headers["User-Agent"] = options_.user_agent;
    if (!request.body.empty()) http.headers["Content-Type"] = "application/json";
    if (request.service_type == "compute") {
      // Nova reads the legacy header; newer deployments and proxies read the generic one.
      http.headers["X-OpenStack-Nova-API-Version"] = microversion;
      http.headers["OpenStack-API-Version"] = "compute " + microversion;
    } else if (IsBlockStorage(request.service_type)) {
      http.headers["OpenStack-API-Version"] = "volume " + microversion;
    }
    http.body = request.body;

    const TimePoint sent = deps_.clock.Now();
    auto response = deps_.transport.Send(http);
    if (observer_) {
      observer_(RequestRecord{
          request.service_type, request.method, request.what, response ? response->status : 0,
          std::chrono::duration_cast<Duration>(deps_.clock.Now() - sent), attempt});
    }
    if (!response) {
      Error error{response.error().kind,
                  fmt::format("{}: {}", request.what, log::Redact(response.error().message))};
      log::Warn("openstack: request failed", {{"what", request.what},
                                              {"method", request.method},
                                              {"attempt", attempt},
                                              {"error", error.message}});
      // A timeout, a reset or an empty reply may come after the cloud got the request; the
      // transport cannot tell them from a refused connection, so only idempotent calls are
      // sent again.
      if (!IsRetryable(error.kind) || !request.idempotent) return Fail(error);
      last_error = error;
      back_off(attempt);
      continue;
    }
    const int status = response->status;
    log::Debug("openstack: request",
               {{"what", request.what},
                {"method", request.method},
                {"url", log::Redact(http.url)},
                {"status", status},
                {"attempt", attempt},
                {"ms", std::chrono::duration_cast<Duration>(deps_.clock.Now() - sent).count()}});
    if (status >= 200 && status < 300) return std::move(*response);
    if (status == 401 && !reauthenticated) {
      // The token was revoked or expired early: authenticate again, once, and resend without
      // counting this as a failed attempt.
      reauthenticated = true;
      auth_.Invalidate(*token);
      --attempt;
      continue;
    }
    Error error = ErrorFromResponse(*response, request.what);
    const std::string retry_after_header = response->Header("Retry-After");
    std::optional<Duration> retry_after;
    if (status == 429 || status == 413 || status == 503) {
      retry_after = ParseRetryAfter(retry_after_header, deps_.clock.Now());
    }
    bool retryable = false;
    if (status == 429 || (status == 503 && retry_after) ||
        (status == 413 && retry_after && error.kind == ErrorKind::kTransient)) {
      retryable = true;  // throttled before processing: safe even for POST
    } else if (status >= 500 && request.idempotent && IsRetryable(error.kind)) {
      retryable = true;  // not kCapacity: asking again at once finds no more room
    }
    if (!retryable) return Fail(error);
    last_error = error;
    Duration wait =
        BackoffDelay(retry.initial_backoff, retry.max_backoff, attempt + 1, deps_.random());
    if (retry_after) {
      if (*retry_after > retry.max_retry_after) {
        error.message += fmt::format(
            " (Retry-After {}s exceeds the {}s limit)",
            std::chrono::duration_cast<std::chrono::seconds>(*retry_after).count(),
            std::chrono::duration_cast<std::chrono::seconds>(retry.max_retry_after).count());
        return Fail(error);
      }
      wait = std::max(wait, *retry_after);
    }
    if (attempt < retry.max_attempts) {
      log::Warn("openstack: retrying", {{"what", request.what},
                                        {"status", status},
                                        {"attempt", attempt},
                                        {"wait_ms", wait.count()}});
      deps_.sleeper.SleepFor(wait);
    }
  }
  if (last_error) {
    last_error->message += fmt::format(" (gave up after {} attempts)", attempts_made);
    return Fail(*last_error);
  }
  return Fail(ErrorKind::kInternal, request.what + ": no attempt was made");
}

}  // namespace ra::openstack
