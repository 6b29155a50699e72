#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/http_transport.h"
#include "core/result.h"

/// Lenient readers for the JSON the OpenStack services answer: a field of the wrong type reads
/// as absent, so one odd field never makes a whole answer unusable.
namespace ra::openstack {

/// The string at `key`, or "" when absent or not a string.
std::string StringField(const nlohmann::json& j, const char* key);

/// The integer at `key`, or `fallback` when absent or not an integer.
int IntField(const nlohmann::json& j, const char* key, int fallback);

/// The response body as a JSON object, or kParse naming `what`; with `required_key`, also
/// kParse when the object lacks it (e.g. "volume" in Cinder's answer to a volume create).
Result<nlohmann::json> ParseObject(const HttpResponse& response, std::string_view what,
                                   const char* required_key = nullptr);

}  // namespace ra::openstack
