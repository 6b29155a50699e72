#include "autoscaler/replica_names.h"

#include <fmt/format.h>

#include <cctype>
#include <string_view>

namespace ra::autoscaler {

namespace {

std::string ReplaceAll(std::string text, std::string_view from, std::string_view to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

}  // namespace

std::string ReplicaName(const std::string& name_template, const std::string& cluster,
                        const std::string& id, const std::string& zone) {
  std::string name = ReplaceAll(ReplaceAll(name_template, "{cluster}", cluster), "{id}", id);
  name = ReplaceAll(name, "{zone}", zone);
  if (zone.empty()) {
    // The zone is chosen by the planner after the name: leave no doubled or dangling separator.
    for (const char* twice : {"--", "..", "__"}) {
      for (size_t at = name.find(twice); at != std::string::npos; at = name.find(twice)) {
        name.erase(at, 1);
      }
    }
    while (!name.empty() && (name.front() == '-' || name.front() == '.')) name.erase(0, 1);
    while (!name.empty() && (name.back() == '-' || name.back() == '.')) name.pop_back();
  }
  return name;
}

std::string ReplicaNamePattern(const std::string& name_template, const std::string& cluster) {
  static const std::string kIdMark = "\x01";
  const std::string shape = ReplicaName(name_template, cluster, kIdMark, "");
  std::string pattern;
  for (char c : shape) {
    if (c == '\x01') {
      pattern += "[0-9a-f]{6}";
    } else if (std::isalnum(static_cast<unsigned char>(c))) {
      pattern += c;
    } else {
      pattern += '\\';
      pattern += c;
    }
  }
  return pattern;
}

std::vector<std::string> FreshReplicaNames(const std::string& name_template,
                                           const std::string& cluster, std::set<std::string> taken,
                                           int count, const std::function<uint32_t()>& random) {
  std::vector<std::string> names;
  // 2^24 ids make a collision rare; give up rather than spin on a broken source.
  for (int attempt = 0; static_cast<int>(names.size()) < count && attempt < count * 20; ++attempt) {
    const std::string id = fmt::format("{:06x}", random() & 0xffffffu);
    std::string name = ReplicaName(name_template, cluster, id, "");
    if (taken.insert(name).second) names.push_back(std::move(name));
  }
  return names;
}

}  // namespace ra::autoscaler
