#include "openstack/errors.h"

#include <fmt/format.h>

#include <charconv>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

#include "core/log.h"
#include "openstack/json_fields.h"

namespace ra::openstack {

namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

ErrorKind ServerFaultKind(std::string_view fault) {
  const std::string lower = Lower(fault);
  auto says = [&lower](std::string_view text) { return lower.find(text) != std::string::npos; };
  // The schedulers' own words first: Nova's "No valid host was found. There are not enough hosts
  // available.", Cinder's "No valid backend was found". Then quota ("Quota exceeded for cores"),
  // before the vaguer "Insufficient free space" (Cinder) and "insufficient capacity" (public
  // clouds), so that a quota message that also says "insufficient" stays a quota error.
  if (says("no valid host") || says("no valid backend")) return ErrorKind::kCapacity;
  if (says("quota")) return ErrorKind::kQuota;
  if (says("insufficient") || says("capacity")) return ErrorKind::kCapacity;
  return ErrorKind::kInternal;
}

std::string CloudMessage(std::string_view body) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return "";
  // Huawei API gateway and Huawei services: {"error_code": "...", "error_msg": "..."}.
  if (std::string msg = StringField(j, "error_msg"); !msg.empty()) {
    std::string code = StringField(j, "error_code");
    return code.empty() ? msg : code + " " + msg;
  }
  // Designate: {"code": 404, "type": "zone_not_found", "message": "..."}.
  if (std::string msg = StringField(j, "message"); !msg.empty()) return msg;
  // Nova, Cinder, Keystone: one wrapper key ({"badRequest": {...}}, {"error": {...}}).
  for (const auto& [key, value] : j.items()) {
    if (!value.is_object()) continue;
    if (std::string msg = StringField(value, "message"); !msg.empty()) return msg;
    if (std::string msg = StringField(value, "error_msg"); !msg.empty()) return msg;
  }
  return "";
}

Error ErrorFromResponse(const HttpResponse& response, std::string_view what) {
  std::string message = CloudMessage(response.body);
  if (message.empty()) {
    // Not an OpenStack error body (a proxy's HTML page, an empty 503): keep a short excerpt.
    // Redacted before the cut: a secret cut in two is no longer recognised afterwards.
    std::string excerpt = log::Redact(response.body).substr(0, 200);
    for (char& c : excerpt)
      if (c == '\n' || c == '\r') c = ' ';
    message = excerpt.empty() ? "(no body)" : excerpt;
  }
  const int status = response.status;
  const ErrorKind said = ServerFaultKind(message);
  ErrorKind kind = ErrorKind::kInternal;
  if (status == 400 || status == 422) {
    kind = ErrorKind::kBadRequest;
  } else if (status == 401) {
    kind = ErrorKind::kAuth;
  } else if (status == 403) {
    kind = said == ErrorKind::kQuota ? ErrorKind::kQuota : ErrorKind::kAuth;
  } else if (status == 404) {
    kind = ErrorKind::kNotFound;
  } else if (status == 409) {
    kind = said == ErrorKind::kCapacity ? ErrorKind::kCapacity : ErrorKind::kConflict;
  } else if (status == 413) {
    // Cinder's over-quota answer carries "Retry-After: 0" (webob's OverLimit), so the header
    // alone does not make a 413 a throttle: a wait of 0, or a message that says quota, is a
    // quota refusal (Cinder's snapshot refusal says only "Maximum number of snapshots allowed
    // (10) exceeded").
    const std::string retry_after = response.Header("Retry-After");
    const bool throttled = !retry_after.empty() && retry_after != "0" && said != ErrorKind::kQuota;
    kind = throttled ? ErrorKind::kTransient : ErrorKind::kQuota;
  } else if (status == 429) {
    kind = ErrorKind::kTransient;
  } else if (status >= 500) {
    // Some clouds refuse a boot at once, with a 500 computeFault, when the scheduler finds no host.
    kind = said == ErrorKind::kCapacity ? ErrorKind::kCapacity : ErrorKind::kTransient;
  } else if (status >= 400) {
    kind = ErrorKind::kBadRequest;
  } else {
    kind = ErrorKind::kParse;
    message = "unexpected status; " + message;
  }
  std::string request_id = response.Header("X-Openstack-Request-Id");
  if (request_id.empty()) request_id = response.Header("X-Compute-Request-Id");
  if (request_id.empty()) request_id = response.Header("X-Request-Id");
  std::string text = fmt::format("{}: HTTP {}: {}", what, status, message);
  if (!request_id.empty()) text += fmt::format(" (request {})", request_id);
  return Error{kind, log::Redact(text)};
}

std::optional<Duration> ParseRetryAfter(std::string_view value, TimePoint now) {
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  if (value.empty()) return std::nullopt;
  long long seconds = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
  if (ec == std::errc() && end == value.data() + value.size()) {
    if (seconds < 0) return std::nullopt;
    return std::chrono::seconds(std::min<long long>(seconds, 86400LL * 365));
  }
  // HTTP-date: "Sun, 06 Nov 1994 08:49:37 GMT".
  std::tm tm{};
  char month[4] = {};
  char weekday[4] = {};
  const std::string copy(value);
  if (std::sscanf(copy.c_str(), "%3s, %2d %3s %4d %2d:%2d:%2d GMT", weekday, &tm.tm_mday, month,
                  &tm.tm_year, &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 7) {
    return std::nullopt;
  }
  static constexpr std::string_view kMonths = "JanFebMarAprMayJunJulAugSepOctNovDec";
  const size_t m = kMonths.find(month);
  if (m == std::string_view::npos || m % 3 != 0) return std::nullopt;
  tm.tm_mon = static_cast<int>(m / 3);
  tm.tm_year -= 1900;
  // In seconds: a far-future year does not fit a TimePoint and would wrap into the past.
  const long long when = timegm(&tm);
  const long long now_s =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  if (when <= now_s) return Duration(0);
  return std::chrono::seconds(std::min<long long>(when - now_s, 86400LL * 365));
}

}  // namespace ra::openstack
