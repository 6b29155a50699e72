#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/http_transport.h"
#include "core/result.h"

namespace ra::openstack {

/// Turns a non-2xx answer of Keystone, Nova, Cinder, Designate or the Huawei API gateway into a
/// typed error that keeps the cloud's own message:
///   400, 422 -> kBadRequest; 401 -> kAuth; 403 -> kAuth, or kQuota for "Quota exceeded";
///   404 -> kNotFound; 409 -> kConflict; 413 -> kQuota, or kTransient when it is a rate limit
///   (Retry-After present); 429 and 5xx -> kTransient; but 409 and 5xx -> kCapacity when the
///   message says the cloud has no room (as ServerFaultKind reads it).
/// Understands {"badRequest":{"message":..,"code":400}} (any wrapper key: overLimit,
/// itemNotFound, forbidden, conflictingRequest, computeFault...), Keystone's
/// {"error":{"message":..}}, Designate's {"message":..,"type":..}, and APIG's
/// {"error_code":"APIG.0308","error_msg":..}. `what` names the call ("nova: create server").
/// Registered secrets are redacted from the message. Never throws.
Error ErrorFromResponse(const HttpResponse& response, std::string_view what);

/// Classifies what a cloud says when it refuses a server or a volume, a Nova server's `fault`
/// (status ERROR) or an error answer's message, case-insensitively: kCapacity when there is
/// no room ("No valid host was found", Cinder's "No valid backend", "Insufficient free space",
/// "insufficient capacity"), kQuota when a quota is exceeded, kInternal for anything else.
/// The one place OpenStack's refusal texts are read. Pure; never throws.
ErrorKind ServerFaultKind(std::string_view fault);

/// The cloud's message from an error body, "" if none is found.
std::string CloudMessage(std::string_view body);

/// Retry-After as a wait: delta-seconds ("7") or an HTTP-date relative to `now`. nullopt when
/// absent or unreadable; a date in the past gives 0.
std::optional<Duration> ParseRetryAfter(std::string_view value, TimePoint now);

}  // namespace ra::openstack
