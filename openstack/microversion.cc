#include "openstack/microversion.h"

#include <fmt/format.h>

#include <charconv>
#include <nlohmann/json.hpp>

#include "openstack/json_fields.h"

namespace ra::openstack {

using nlohmann::json;

std::optional<std::pair<int, int>> ParseMicroversion(std::string_view text) {
  const size_t dot = text.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 == text.size()) return std::nullopt;
  int major = 0;
  int minor = 0;
  const char* end = text.data() + text.size();
  auto a = std::from_chars(text.data(), text.data() + dot, major);
  auto b = std::from_chars(text.data() + dot + 1, end, minor);
  if (a.ec != std::errc() || a.ptr != text.data() + dot || b.ec != std::errc() || b.ptr != end) {
    return std::nullopt;
  }
  return std::make_pair(major, minor);
}

Result<std::optional<std::string>> VersionDocumentUrl(const std::string& endpoint, bool compute) {
  auto segment_at = [&endpoint](std::string_view segment) -> std::optional<size_t> {
    for (size_t pos = endpoint.find(segment); pos != std::string::npos;
         pos = endpoint.find(segment, pos + 1)) {
      const size_t after = pos + segment.size();
      if (after == endpoint.size() || endpoint[after] == '/') return after;
    }
    return std::nullopt;
  };
  if (auto after = segment_at(compute ? "/v2.1" : "/v3")) {
    return std::optional<std::string>(endpoint.substr(0, *after) + "/");
  }
  if (compute && segment_at("/v2")) {
    return Fail(ErrorKind::kConfig,
                fmt::format("compute endpoint {} is Nova's legacy v2 API, which has no "
                            "microversions: use the v2.1 endpoint",
                            endpoint));
  }
  return std::optional<std::string>();
}

Result<std::string> ChooseMicroversion(const std::string& document, bool compute,
                                       const MicroversionNeed& need, const std::string& url) {
  const char* service = compute ? "compute" : "volume";
  json body = json::parse(document, nullptr, false);
  if (!body.is_object()) {
    return Fail(ErrorKind::kParse, fmt::format("{} version document {} is not JSON", service, url));
  }
  const json* version = nullptr;
  if (auto it = body.find("version"); it != body.end() && it->is_object()) {
    version = &*it;
  } else if (auto list = body.find("versions"); list != body.end() && list->is_array()) {
    const std::string prefix = compute ? "v2.1" : "v3";
    for (const json& v : *list) {
      if (v.is_object() && StringField(v, "id").starts_with(prefix)) version = &v;
    }
  }
  if (version == nullptr) {
    return Fail(ErrorKind::kParse,
                fmt::format("{} version document {} has no version entry", service, url));
  }
  const std::string max_text = StringField(*version, "version");
  const std::string min_text = StringField(*version, "min_version");
  auto max = ParseMicroversion(max_text);
  auto min = ParseMicroversion(min_text);
  auto wanted = ParseMicroversion(need.version);
  if (!max || !wanted) {
    return Fail(ErrorKind::kConfig,
                fmt::format("{} API at {} announces no microversions; replica-autoscaler needs "
                            "{} ({})",
                            service, url, need.version, need.reason));
  }
  if (*max < *wanted) {
    return Fail(ErrorKind::kConfig,
                fmt::format("{} API at {} supports microversions {} to {}; replica-autoscaler "
                            "needs {} ({})",
                            service, url, min_text.empty() ? "?" : min_text, max_text, need.version,
                            need.reason));
  }
  if (min && *min > *wanted) return min_text;
  return std::string(need.version);
}

}  // namespace ra::openstack
