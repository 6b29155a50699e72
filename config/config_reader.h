#pragma once

// The problem-collecting YAML reader under config/config.cc. Internal to the loader: every
// reader reports what is wrong with the node it was given (with its path and line) and leaves its
// output untouched, so one bad field never stops the walk.

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"

namespace ra::config::internal {

/// A node of the document and where it is.
struct Located {
  YAML::Node node{};
  std::string path{};
  /// The value's position; its key's when the value is empty (yaml-cpp puts an empty value on the
  /// next line).
  YAML::Mark mark{};
  /// The key's position (a list item's own position): where "missing field" problems point.
  YAML::Mark key_mark{};
};

/// Collects problems and what must be checked on the machine after the walk.
class Context {
 public:
  Context(const LoadOptions& options, std::string_view text);

  /// Where an empty list item ("-" alone on its line) is: yaml-cpp places it at the next token.
  YAML::Mark EmptyItemMark(const YAML::Mark& reported) const;

  void Add(const std::string& path, const YAML::Mark& mark, std::string message);
  void Add(const Located& at, std::string message) { Add(at.path, at.mark, std::move(message)); }
  ConfigProblems& problems() { return problems_; }
  size_t count() const { return problems_.size(); }
  const LoadOptions& options() const { return options_; }

  /// `path` made absolute against the configuration's folder.
  std::string ResolvePath(const std::string& path) const;

  /// A secret reference seen at `at`, checked after the walk.
  struct SecretUse {
    SecretRef ref{};
    std::string path{};
    YAML::Mark mark{};
  };
  void NoteSecret(const SecretRef& ref, const Located& at);
  const std::vector<SecretUse>& secrets() const { return secrets_; }

  /// A file that must exist and be readable on the service's machine.
  struct FileUse {
    std::string file{};
    std::string path{};
    YAML::Mark mark{};
  };
  void NoteFile(const std::string& file, const Located& at);
  const std::vector<FileUse>& files() const { return files_; }

 private:
  const LoadOptions& options_;
  std::vector<std::string> lines_{};
  ConfigProblems problems_{};
  std::vector<SecretUse> secrets_{};
  std::vector<FileUse> files_{};
};

/// "a mapping", "a list", "nothing", or the scalar quoted and shortened.
std::string Describe(const YAML::Node& node);

/// Describe(at.node), except that a scalar where credentials belong (auth:, headers:, an API
/// token entry, a key named like a secret) is not quoted: it is likely the secret itself.
std::string DescribeValue(const Located& at);

/// The closest of `candidates` to `word` when it is close enough to be a likely typo.
std::optional<std::string> Suggest(std::string_view word,
                                   const std::vector<std::string>& candidates);

/// Where a key that is unknown at one place belongs ("under a cluster's replica:"), for keys
/// that exist in one place only.
std::optional<std::string> WhereKeyBelongs(std::string_view key);

/// " (did you mean 'x'?)" or "".
std::string DidYouMean(std::string_view word, const std::vector<std::string>& candidates);

std::string ChildPath(const std::string& parent, std::string_view key);
std::string IndexPath(const std::string& parent, size_t index);

// Scalar readers: report and return nullopt when the node is not what is wanted.
std::optional<std::string> ReadString(Context& ctx, const Located& at, bool allow_empty = false);
std::optional<int64_t> ReadInt(Context& ctx, const Located& at, int64_t min, int64_t max);
std::optional<double> ReadNumber(Context& ctx, const Located& at, double min, double max,
                                 bool min_exclusive = false);
std::optional<bool> ReadBool(Context& ctx, const Located& at);
/// ra::ParseDuration's syntax ("30s", "5m", "1h30m"); at least `min`.
std::optional<Duration> ReadDuration(Context& ctx, const Located& at, Duration min = Duration(0));
/// Bytes: a whole number, or one with B, KiB, MiB, GiB, TiB (kB, MB, GB, TB as in PostgreSQL:
/// powers of 1024).
std::optional<int64_t> ReadSize(Context& ctx, const Located& at, int64_t min);
/// http(s)://host[:port][/path]; never echoes a URL that carries credentials.
std::optional<std::string> ReadUrl(Context& ctx, const Located& at);
/// A path; relative paths resolved against the configuration's folder.
std::optional<std::string> ReadPath(Context& ctx, const Located& at);
/// A list of non-empty strings, each unique.
std::optional<std::vector<std::string>> ReadStringList(Context& ctx, const Located& at,
                                                       bool allow_empty_list = true);
/// `{file: PATH}` or `{env: NAME}`. A plain value is a literal secret: reported without its value.
std::optional<SecretRef> ReadSecretRef(Context& ctx, const Located& at);

template <typename T>
using EnumTable = std::vector<std::pair<std::string_view, T>>;

/// One of `table`'s names; the problem lists them all.
template <typename T>
std::optional<T> ReadEnum(Context& ctx, const Located& at, const EnumTable<T>& table);

/// The list's items, each with its path; reports anything that is not a list (an empty value is
/// an empty list).
std::optional<std::vector<Located>> ReadList(Context& ctx, const Located& at);

/// A mapping's entries, checked against the keys it may hold. Reports on construction: a value
/// that is not a mapping, duplicate keys, unknown keys (with a "did you mean" hint, and the right
/// spelling for secrets written as password_file:). YAML merge keys (`<<: *anchor`) are applied:
/// keys written in the mapping win over merged ones.
class MapReader {
 public:
  MapReader(Context& ctx, const Located& at, std::vector<std::string> keys,
            std::vector<std::string> secret_keys = {});

  /// The value was a mapping (or empty).
  bool ok() const { return ok_; }
  const std::string& path() const { return at_.path; }
  const Located& at() const { return at_; }
  Context& ctx() const { return ctx_; }

  bool Has(std::string_view key) const;
  std::optional<Located> Get(std::string_view key) const;
  /// The entry, or a "missing required field" problem at the mapping (with `hint` appended).
  std::optional<Located> Require(std::string_view key, std::string_view hint = "") const;
  /// Keys present, in document order.
  std::vector<std::string> Keys() const;

  // Shorthands: read `key` when present (or report it missing when `required`) into `*out`,
  // which is left alone when absent or invalid. They return whether `*out` was set.
  bool String(std::string_view key, std::string* out, bool required = false) const;
  bool Int(std::string_view key, int* out, int64_t min, int64_t max, bool required = false) const;
  bool Int64(std::string_view key, int64_t* out, int64_t min, int64_t max) const;
  bool Number(std::string_view key, double* out, double min, double max, bool min_exclusive = false,
              bool required = false) const;
  bool Bool(std::string_view key, bool* out) const;
  bool Dur(std::string_view key, Duration* out, Duration min = Duration(0)) const;
  bool Size(std::string_view key, int64_t* out, int64_t min) const;
  bool Url(std::string_view key, std::string* out, bool required = false) const;
  bool Path(std::string_view key, std::string* out) const;
  bool StringList(std::string_view key, std::vector<std::string>* out,
                  bool allow_empty_list = true) const;
  bool Secret(std::string_view key, SecretRef* out, bool required = false) const;
  template <typename T>
  bool Enum(std::string_view key, T* out, const EnumTable<T>& table, bool required = false) const {
    auto at = required ? Require(key) : Get(key);
    if (!at) return false;
    auto value = ReadEnum(ctx_, *at, table);
    if (value) *out = *value;
    return value.has_value();
  }

 private:
  struct Entry {
    std::string key{};
    Located value{};
  };
  void Collect(const YAML::Node& node, bool merged, int depth);
  const Entry* Find(std::string_view key) const;

  Context& ctx_;
  Located at_;
  std::vector<std::string> keys_;
  std::vector<std::string> secret_keys_;
  std::vector<Entry> entries_{};
  bool ok_ = true;
};

template <typename T>
std::optional<T> ReadEnum(Context& ctx, const Located& at, const EnumTable<T>& table) {
  std::vector<std::string> names;
  for (const auto& [name, value] : table) names.emplace_back(name);
  auto text = ReadString(ctx, at);
  if (!text) return std::nullopt;
  for (const auto& [name, value] : table) {
    if (*text == name) return value;
  }
  std::string allowed;
  for (const auto& name : names) allowed += (allowed.empty() ? "" : ", ") + name;
  ctx.Add(at,
          "expected one of " + allowed + "; got " + Describe(at.node) + DidYouMean(*text, names));
  return std::nullopt;
}

}  // namespace ra::config::internal
