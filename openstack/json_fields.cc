#include "openstack/json_fields.h"

#include <fmt/format.h>

namespace ra::openstack {

std::string StringField(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

int IntField(const nlohmann::json& j, const char* key, int fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int>() : fallback;
}

Result<nlohmann::json> ParseObject(const HttpResponse& response, std::string_view what,
                                   const char* required_key) {
  nlohmann::json j = nlohmann::json::parse(response.body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Fail(ErrorKind::kParse, fmt::format("{}: answer is not a JSON object", what));
  }
  if (required_key != nullptr && !j.contains(required_key)) {
    return Fail(ErrorKind::kParse, fmt::format("{}: answer has no '{}'", what, required_key));
  }
  return j;
}

}  // namespace ra::openstack
