#include "config/config_reader.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <limits>

#include "core/duration.h"

namespace ra::config::internal {

namespace {

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Typos of a key are usually one or two letters, a case slip, or '-' for '_'.
size_t EditDistance(std::string_view a, std::string_view b) {
  auto norm = [](char c) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return c == '-' ? '_' : c;
  };
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t subst = prev[j - 1] + (norm(a[i - 1]) == norm(b[j - 1]) ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, subst});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

bool IsPlainKey(std::string_view key) {
  if (key.empty()) return false;
  return std::all_of(key.begin(), key.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

// A scalar written in quotes ('5', "5") is a string to YAML; numbers and booleans are accepted
// either way, since operators quote values out of caution.
bool IsNullish(const YAML::Node& node) { return !node.IsDefined() || node.IsNull(); }

std::string Trimmed(std::string_view text) {
  size_t b = 0, e = text.size();
  while (b < e && std::isspace(static_cast<unsigned char>(text[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(text[e - 1]))) --e;
  return std::string(text.substr(b, e - b));
}

std::string FormatSize(int64_t bytes) {
  for (auto [shift, unit] : {std::pair{30, "GiB"}, std::pair{20, "MiB"}, std::pair{10, "KiB"}}) {
    if (bytes != 0 && bytes % (int64_t{1} << shift) == 0) {
      return fmt::format("{}{}", bytes >> shift, unit);
    }
  }
  return fmt::format("{} bytes", bytes);
}

std::string FormatNumber(double v) { return fmt::format("{:g}", v); }

bool IsEnvName(std::string_view name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

bool LooksSecretName(std::string_view name) {
  std::string normalized = Lower(name);
  std::replace(normalized.begin(), normalized.end(), '-', '_');
  return log::IsSecretName(normalized);
}

}  // namespace

std::optional<std::string> WhereKeyBelongs(std::string_view key) {
  // Keys that exist in one place only, so that a key written at the wrong level gets a pointer
  // to the right one.
  static const std::vector<std::pair<std::vector<std::string_view>, std::string_view>> kPlaces = {
      {{"clouds", "load_balancers", "metrics", "clusters", "api", "loop", "journal", "logging"},
       "at the top level"},
      {{"primary", "donor", "replica", "postgres", "load_balancer", "min_replicas", "max_replicas",
        "policies", "behavior", "missing_data", "snapshots", "dns", "placement", "slo"},
       "in a cluster (an entry of clusters)"},
      {{"prefer", "max_latency"}, "under a cluster's placement:"},
      {{"time_to_serve_budget", "replay_lag_alert"}, "under a cluster's slo:"},
      {{"flavor", "image", "networks", "security_groups", "zones", "volume_type", "volume_size",
        "key_name", "name_template", "tags", "metadata"},
       "under a cluster's replica:"},
      {{"max_lag_bytes", "max_lag_time", "sslmode", "dbname"}, "under a cluster's postgres:"},
      {{"backend", "server_port", "weight", "check"}, "under a cluster's load_balancer:"},
      {{"target_tracking", "step_scaling", "schedule"}, "in an entry of a cluster's policies:"},
      {{"query", "target", "tolerance", "steps"},
       "under a policy's target_tracking: or step_scaling:"},
      {{"time_zone", "windows"}, "under a policy's schedule:"},
      {{"stabilization_window", "limits", "select"},
       "under a cluster's behavior: scale_up: or scale_down:"},
      {{"scale_up", "scale_down"}, "under a cluster's behavior:"},
      {{"fallback_replicas", "action"}, "under a cluster's missing_data:"},
      {{"wal_retention", "keep"}, "under a cluster's snapshots:"},
      {{"availability_zones", "endpoint_overrides", "region", "interface", "clouds_yaml", "auth",
        "profile", "rate_limit"},
       "in a cloud (an entry of clouds)"},
      {{"auth_url", "project_name", "project_id", "user_domain_name", "project_domain_name",
        "application_credential_id", "application_credential_secret"},
       "under a cloud's auth:"},
      {{"api_version"}, "in a load balancer (an entry of load_balancers)"},
      {{"listen", "tokens", "max_connections", "idle_timeout"}, "under api:"},
      {{"certificate_file", "key_file"}, "under api: tls:"},
      {{"jitter"}, "under loop:"},
      {{"members"}, "under a cluster's primary: patroni:"},
      {{"server"}, "under a cluster's donor:"},
  };
  for (const auto& [keys, where] : kPlaces) {
    for (std::string_view k : keys) {
      if (k == key) return std::string(where);
    }
  }
  return std::nullopt;
}

Context::Context(const LoadOptions& options, std::string_view text) : options_(options) {
  size_t begin = 0;
  while (begin <= text.size()) {
    const size_t end = std::min(text.find('\n', begin), text.size());
    lines_.emplace_back(text.substr(begin, end - begin));
    begin = end + 1;
  }
}

YAML::Mark Context::EmptyItemMark(const YAML::Mark& reported) const {
  YAML::Mark mark = reported;
  if (reported.line < 0) return mark;
  const int last = std::min<int>(reported.line, static_cast<int>(lines_.size()) - 1);
  for (int line = last; line >= 0 && line > reported.line - 100; --line) {
    const size_t dash = lines_[line].find_first_not_of(" ");
    if (dash != std::string::npos && lines_[line][dash] == '-') {
      mark.line = line;
      mark.column = static_cast<int>(dash);
      return mark;
    }
  }
  return mark;
}

void Context::Add(const std::string& path, const YAML::Mark& mark, std::string message) {
  ConfigProblem p;
  p.path = path;
  if (mark.line >= 0) {
    p.line = mark.line + 1;
    p.column = mark.column + 1;
  }
  p.message = std::move(message);
  problems_.push_back(std::move(p));
}

std::string Context::ResolvePath(const std::string& path) const {
  std::filesystem::path p(path);
  if (p.is_absolute()) return p.lexically_normal().string();
  std::filesystem::path base = options_.base_dir.empty() ? std::filesystem::path(".")
                                                         : std::filesystem::path(options_.base_dir);
  std::error_code ec;
  std::filesystem::path absolute = std::filesystem::absolute(base / p, ec);
  if (ec) return (base / p).lexically_normal().string();
  return absolute.lexically_normal().string();
}

void Context::NoteSecret(const SecretRef& ref, const Located& at) {
  secrets_.push_back(SecretUse{ref, at.path, at.mark});
}

void Context::NoteFile(const std::string& file, const Located& at) {
  files_.push_back(FileUse{file, at.path, at.mark});
}

std::string Describe(const YAML::Node& node) {
  if (IsNullish(node)) return "nothing";
  if (node.IsMap()) return "a mapping";
  if (node.IsSequence()) return "a list";
  std::string text;
  for (char c : node.Scalar()) {
    if (text.size() >= 60) {
      text += "...";
      break;
    }
    if (c == '\n') {
      text += "\\n";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      text += '?';
    } else {
      text += c;
    }
  }
  return "'" + text + "'";
}

std::string DescribeValue(const Located& at) {
  if (!at.node.IsScalar()) return Describe(at.node);
  const std::string last = at.path.substr(at.path.find_last_of('.') + 1);
  const bool credentials = last == "auth" || last == "headers" || last == "tokens" ||
                           last.starts_with("tokens[") || LooksSecretName(last);
  return credentials ? "a plain value (not shown: it may be a secret)" : Describe(at.node);
}

std::optional<std::string> Suggest(std::string_view word,
                                   const std::vector<std::string>& candidates) {
  const size_t limit = word.size() <= 3 ? 1 : word.size() <= 6 ? 2 : 3;
  std::optional<std::string> best;
  size_t best_distance = limit + 1;
  for (const std::string& c : candidates) {
    const size_t d = EditDistance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best;
}

std::string DidYouMean(std::string_view word, const std::vector<std::string>& candidates) {
  auto s = Suggest(word, candidates);
  return s ? fmt::format(" (did you mean '{}'?)", *s) : "";
}

std::string ChildPath(const std::string& parent, std::string_view key) {
  if (!IsPlainKey(key)) return fmt::format("{}[\"{}\"]", parent, key);
  if (parent.empty()) return std::string(key);
  return parent + "." + std::string(key);
}

std::string IndexPath(const std::string& parent, size_t index) {
  return fmt::format("{}[{}]", parent, index);
}

std::optional<std::string> ReadString(Context& ctx, const Located& at, bool allow_empty) {
  if (IsNullish(at.node)) {
    ctx.Add(at, "expected a value, got nothing");
    return std::nullopt;
  }
  if (!at.node.IsScalar()) {
    ctx.Add(at, "expected a string, got " + Describe(at.node));
    return std::nullopt;
  }
  const std::string& text = at.node.Scalar();
  if (!allow_empty && Trimmed(text).empty()) {
    ctx.Add(at, "must not be empty");
    return std::nullopt;
  }
  return text;
}

std::optional<int64_t> ReadInt(Context& ctx, const Located& at, int64_t min, int64_t max) {
  if (!at.node.IsScalar()) {
    ctx.Add(at, "expected a whole number, got " + Describe(at.node));
    return std::nullopt;
  }
  const std::string text = Trimmed(at.node.Scalar());
  int64_t value = 0;
  const char* begin = text.data();
  if (!text.empty() && text[0] == '+') ++begin;
  auto [ptr, ec] = std::from_chars(begin, text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) {
    if (ec == std::errc::result_out_of_range) {
      ctx.Add(at, "number " + Describe(at.node) + " is too large");
    } else {
      ctx.Add(at, "expected a whole number, got " + Describe(at.node));
    }
    return std::nullopt;
  }
  if (value < min || value > max) {
    if (max == std::numeric_limits<int64_t>::max()) {
      ctx.Add(at, fmt::format("must be at least {}, got {}", min, value));
    } else {
      ctx.Add(at, fmt::format("must be between {} and {}, got {}", min, max, value));
    }
    return std::nullopt;
  }
  return value;
}

std::optional<double> ReadNumber(Context& ctx, const Located& at, double min, double max,
                                 bool min_exclusive) {
  if (!at.node.IsScalar()) {
    ctx.Add(at, "expected a number, got " + Describe(at.node));
    return std::nullopt;
  }
  const std::string text = Trimmed(at.node.Scalar());
  double value = 0;
  const char* begin = text.data();
  if (!text.empty() && text[0] == '+') ++begin;
  auto [ptr, ec] = std::from_chars(begin, text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() ||
      !std::isfinite(value)) {
    ctx.Add(at, "expected a number, got " + Describe(at.node));
    return std::nullopt;
  }
  const bool below = min_exclusive ? value <= min : value < min;
  if (below || value > max) {
    std::string range;
    if (max == std::numeric_limits<double>::max()) {
      range = min_exclusive ? "greater than " + FormatNumber(min) : "at least " + FormatNumber(min);
    } else {
      range = fmt::format("{} {} and at most {}", min_exclusive ? "greater than" : "at least",
                          FormatNumber(min), FormatNumber(max));
    }
    ctx.Add(at, fmt::format("must be {}, got {}", range, FormatNumber(value)));
    return std::nullopt;
  }
  return value;
}

std::optional<bool> ReadBool(Context& ctx, const Located& at) {
  if (at.node.IsScalar()) {
    const std::string text = Lower(Trimmed(at.node.Scalar()));
    if (text == "true" || text == "yes" || text == "on") return true;
    if (text == "false" || text == "no" || text == "off") return false;
  }
  ctx.Add(at, "expected true or false, got " + Describe(at.node));
  return std::nullopt;
}

std::optional<Duration> ReadDuration(Context& ctx, const Located& at, Duration min) {
  if (!at.node.IsScalar()) {
    ctx.Add(at, "expected a duration such as 30s, 5m or 1h30m, got " + Describe(at.node));
    return std::nullopt;
  }
  const std::string text = Trimmed(at.node.Scalar());
  auto parsed = ParseDuration(text);
  if (!parsed) {
    std::string hint;
    if (text.find('.') != std::string::npos) {
      hint = "; fractions are not accepted: write 1500ms rather than 1.5s";
    }
    ctx.Add(at, parsed.error().message + hint);
    return std::nullopt;
  }
  if (*parsed < min) {
    ctx.Add(at, fmt::format("must be at least {}, got {}", FormatDuration(min),
                            FormatDuration(*parsed)));
    return std::nullopt;
  }
  return *parsed;
}

std::optional<int64_t> ReadSize(Context& ctx, const Located& at, int64_t min) {
  static constexpr std::pair<std::string_view, int> kUnits[] = {
      {"B", 0},   {"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40},
      {"kB", 10}, {"KB", 10},  {"MB", 20},  {"GB", 30},  {"TB", 40},
  };
  const std::string bad = "expected a size such as 16MiB, 1GiB or a number of bytes, got ";
  if (!at.node.IsScalar()) {
    ctx.Add(at, bad + Describe(at.node));
    return std::nullopt;
  }
  const std::string text = Trimmed(at.node.Scalar());
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  std::string unit = Trimmed(std::string_view(text).substr(digits));
  int shift = -1;
  if (unit.empty()) {
    shift = 0;
  } else {
    for (const auto& [name, s] : kUnits) {
      if (unit == name) shift = s;
    }
  }
  int64_t number = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + digits, number);
  if (digits == 0 || shift < 0 || ec != std::errc() || ptr != text.data() + digits) {
    ctx.Add(at, bad + Describe(at.node));
    return std::nullopt;
  }
  if (number > (std::numeric_limits<int64_t>::max() >> shift)) {
    ctx.Add(at, "size " + Describe(at.node) + " is too large");
    return std::nullopt;
  }
  const int64_t bytes = number << shift;
  if (bytes < min) {
    ctx.Add(at, fmt::format("must be at least {}, got {}", FormatSize(min), FormatSize(bytes)));
    return std::nullopt;
  }
  return bytes;
}

std::optional<std::string> ReadUrl(Context& ctx, const Located& at) {
  auto text = ReadString(ctx, at);
  if (!text) return std::nullopt;
  const std::string& url = *text;
  const size_t scheme_end = url.find("://");
  const std::string scheme =
      scheme_end == std::string::npos ? "" : Lower(url.substr(0, scheme_end));
  const size_t authority_begin = scheme_end == std::string::npos ? 0 : scheme_end + 3;
  const size_t authority_end = url.find_first_of("/?#", authority_begin);
  const std::string authority = url.substr(authority_begin, authority_end == std::string::npos
                                                                ? std::string::npos
                                                                : authority_end - authority_begin);
  // Check credentials first so that no later message echoes them.
  if (authority.find('@') != std::string::npos) {
    ctx.Add(at,
            "the URL carries credentials (user:password@); a literal secret is not allowed: "
            "use the username and password fields, with password: {file: PATH} or "
            "{env: NAME} (the URL is not shown)");
    return std::nullopt;
  }
  const size_t query = url.find('?');
  if (query != std::string::npos) {
    const std::string q = url.substr(query + 1);
    size_t pos = 0;
    while (pos <= q.size()) {
      const size_t amp = std::min(q.find('&', pos), q.size());
      const std::string param = q.substr(pos, amp - pos);
      if (LooksSecretName(param.substr(0, param.find('=')))) {
        ctx.Add(at,
                "the URL's query string carries a secret; a literal secret is not allowed "
                "(the URL is not shown)");
        return std::nullopt;
      }
      pos = amp + 1;
    }
  }
  // A password holding '/', '?' or '#' ends the authority before its '@', so the check above
  // misses it: no message below may quote a URL that has an '@' anywhere.
  const std::string shown = url.find('@') == std::string::npos
                                ? Describe(at.node)
                                : std::string("(the URL is not shown: it contains '@')");
  if (scheme != "http" && scheme != "https") {
    ctx.Add(at, "expected an http:// or https:// URL, got " + shown);
    return std::nullopt;
  }
  if (url.find_first_of(" \t\r\n") != std::string::npos) {
    ctx.Add(at, "the URL contains white space: " + shown);
    return std::nullopt;
  }
  std::string host = authority;
  std::string port;
  if (!host.empty() && host[0] == '[') {
    const size_t close = host.find(']');
    if (close == std::string::npos) {
      ctx.Add(at, "unterminated IPv6 address in URL " + shown);
      return std::nullopt;
    }
    port = host.substr(close + 1);
    host = host.substr(1, close - 1);
    if (!port.empty() && port[0] != ':') {
      ctx.Add(at, "unexpected text after the IPv6 address in URL " + shown);
      return std::nullopt;
    }
    if (!port.empty()) port = port.substr(1);
  } else if (const size_t colon = host.rfind(':'); colon != std::string::npos) {
    port = host.substr(colon + 1);
    host = host.substr(0, colon);
  }
  if (host.empty()) {
    ctx.Add(at, "the URL has no host: " + shown);
    return std::nullopt;
  }
  if (authority.find(':') != std::string::npos && authority[0] != '[') {
    int value = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || value < 1 ||
        value > 65535) {
      ctx.Add(at, "the URL's port is not a number between 1 and 65535: " + shown);
      return std::nullopt;
    }
  }
  if (url.find('#') != std::string::npos) {
    ctx.Add(at, "the URL must not have a #fragment: " + shown);
    return std::nullopt;
  }
  return url;
}

std::optional<std::string> ReadPath(Context& ctx, const Located& at) {
  auto text = ReadString(ctx, at);
  if (!text) return std::nullopt;
  if ((*text)[0] == '~') {
    ctx.Add(at, "'~' is not expanded; write the full path, e.g. /home/USER/...");
    return std::nullopt;
  }
  if (text->find('\0') != std::string::npos) {
    ctx.Add(at, "the path contains a NUL byte");
    return std::nullopt;
  }
  return ctx.ResolvePath(*text);
}

std::optional<std::vector<Located>> ReadList(Context& ctx, const Located& at) {
  std::vector<Located> items;
  if (IsNullish(at.node)) return items;
  if (!at.node.IsSequence()) {
    ctx.Add(at,
            "expected a list, got " + DescribeValue(at) + " (write [a, b] or one '- a' per line)");
    return std::nullopt;
  }
  size_t i = 0;
  for (const YAML::Node& item : at.node) {
    Located loc;
    loc.node = item;
    loc.path = IndexPath(at.path, i++);
    loc.mark = item.Mark().line >= 0 ? item.Mark() : at.mark;
    if (IsNullish(item)) loc.mark = ctx.EmptyItemMark(loc.mark);
    loc.key_mark = loc.mark;
    items.push_back(std::move(loc));
  }
  return items;
}

std::optional<std::vector<std::string>> ReadStringList(Context& ctx, const Located& at,
                                                       bool allow_empty_list) {
  auto items = ReadList(ctx, at);
  if (!items) return std::nullopt;
  if (items->empty() && !allow_empty_list) {
    ctx.Add(at, "must list at least one entry");
    return std::nullopt;
  }
  std::vector<std::string> out;
  bool ok = true;
  for (size_t i = 0; i < items->size(); ++i) {
    auto s = ReadString(ctx, (*items)[i]);
    if (!s) {
      ok = false;
      continue;
    }
    // A repeated entry is reported but does not void the list, so checks of the entries
    // (zones against the cloud, ...) still run.
    if (std::find(out.begin(), out.end(), *s) != out.end()) {
      ctx.Add((*items)[i], fmt::format("'{}' is listed twice", *s));
      continue;
    }
    out.push_back(*s);
  }
  if (!ok) return std::nullopt;
  return out;
}

std::optional<SecretRef> ReadSecretRef(Context& ctx, const Located& at) {
  // The last path component names the field in the hint ("password: {file: PATH}").
  std::string field = at.path.substr(at.path.find_last_of(".]") + 1);
  if (field.empty()) field = "secret";
  const std::string how =
      fmt::format("write {0}: {{file: /path/to/file}} or {0}: {{env: VARIABLE}}", field);
  if (IsNullish(at.node)) {
    ctx.Add(at, "expected a secret reference, got nothing; " + how);
    return std::nullopt;
  }
  if (at.node.IsScalar()) {
    const std::string text = Trimmed(at.node.Scalar());
    std::string looks;
    if (!text.empty() && text[0] == '/') {
      looks = " (it looks like a path: use the {file: ...} form)";
    } else if (!text.empty() && text[0] == '$') {
      looks = " (it looks like an environment variable: use the {env: ...} form)";
    }
    ctx.Add(at, fmt::format("a literal secret is not allowed in '{}': secrets are given by "
                            "reference only; {}{}. The value is not shown.",
                            field, how, looks));
    return std::nullopt;
  }
  if (!at.node.IsMap()) {
    ctx.Add(at, "expected a secret reference, got " + Describe(at.node) + "; " + how);
    return std::nullopt;
  }
  MapReader m(ctx, at, {"file", "env"});
  if (!m.ok()) return std::nullopt;
  const bool has_file = m.Has("file"), has_env = m.Has("env");
  if (has_file == has_env) {
    ctx.Add(at.path, at.key_mark,
            has_file ? "give either file or env, not both" : "expected file or env; " + how);
    return std::nullopt;
  }
  SecretRef ref;
  if (has_file) {
    if (!m.Path("file", &ref.file)) return std::nullopt;
  } else {
    auto env = m.Get("env");
    auto name = ReadString(ctx, *env);
    if (!name) return std::nullopt;
    if (!IsEnvName(*name)) {
      ctx.Add(*env,
              "not an environment variable name (letters, digits and '_', not starting "
              "with a digit): " +
                  Describe(env->node));
      return std::nullopt;
    }
    ref.env = *name;
  }
  ctx.NoteSecret(ref, has_file ? *m.Get("file") : *m.Get("env"));
  return ref;
}

// ---------------------------------------------------------------------------------------------

MapReader::MapReader(Context& ctx, const Located& at, std::vector<std::string> keys,
                     std::vector<std::string> secret_keys)
    : ctx_(ctx), at_(at), keys_(std::move(keys)), secret_keys_(std::move(secret_keys)) {
  if (IsNullish(at.node)) return;
  if (!at.node.IsMap()) {
    ok_ = false;
    ctx_.Add(at_, "expected a mapping (key: value lines), got " + DescribeValue(at));
    return;
  }
  Collect(at.node, /*merged=*/false, 0);
}

void MapReader::Collect(const YAML::Node& node, bool merged, int depth) {
  // Merges are applied after the mapping's own keys, which win; an earlier merge source wins
  // over a later one (YAML's merge key rules).
  std::vector<std::pair<YAML::Node, YAML::Mark>> merges;
  for (auto it = node.begin(); it != node.end(); ++it) {
    const YAML::Node key = it->first;
    const YAML::Node value = it->second;
    const YAML::Mark key_mark = key.Mark();
    if (!key.IsScalar()) {
      ctx_.Add(at_.path, key_mark, "keys must be plain words, got " + Describe(key));
      continue;
    }
    const std::string& name = key.Scalar();
    if (name == "<<" && key.Tag() == "?") {
      merges.emplace_back(value, key_mark);
      continue;
    }
    Located loc;
    loc.node = value;
    loc.path = ChildPath(at_.path, name);
    loc.key_mark = key_mark;
    loc.mark = (IsNullish(value) || value.Mark().line < 0) ? key_mark : value.Mark();
    if (const Entry* first = Find(name)) {
      if (!merged) {
        ctx_.Add(loc.path, key_mark,
                 fmt::format("duplicate key '{}' (first at line {})", name,
                             first->value.key_mark.line + 1));
      }
      continue;
    }
    const bool extension =
        name.starts_with("x-") && std::find(keys_.begin(), keys_.end(), "x-*") != keys_.end();
    if (extension) continue;
    if (std::find(keys_.begin(), keys_.end(), name) == keys_.end()) {
      std::string message = fmt::format("unknown key '{}'", name);
      std::string hint;
      for (const std::string& secret : secret_keys_) {
        for (std::string_view suffix : {"_file", "_env", "_path", "_ref"}) {
          if (name == secret + std::string(suffix)) {
            hint = fmt::format(": secrets are written {0}: {{file: PATH}} or {0}: {{env: NAME}}",
                               secret);
          }
        }
      }
      if (hint.empty()) {
        std::vector<std::string> candidates;
        for (const std::string& k : keys_) {
          if (k != "x-*") candidates.push_back(k);
        }
        hint = DidYouMean(name, candidates);
        if (hint.empty()) {
          if (auto where = WhereKeyBelongs(name))
            hint = fmt::format(" here; it belongs {}", *where);
        }
        if (hint.empty()) {
          std::string allowed;
          for (const std::string& k : candidates) allowed += (allowed.empty() ? "" : ", ") + k;
          hint = "; allowed here: " + allowed;
        }
      }
      ctx_.Add(loc.path, key_mark, message + hint);
      continue;
    }
    entries_.push_back(Entry{name, std::move(loc)});
  }
  for (const auto& [source, mark] : merges) {
    if (depth >= 8) {
      ctx_.Add(at_.path, mark, "merge keys ('<<') nested too deeply");
      break;
    }
    if (source.IsMap()) {
      Collect(source, /*merged=*/true, depth + 1);
    } else if (source.IsSequence()) {
      for (const YAML::Node& item : source) {
        if (item.IsMap()) {
          Collect(item, /*merged=*/true, depth + 1);
        } else {
          ctx_.Add(at_.path, mark, "a merge key ('<<') takes mappings, got " + Describe(item));
        }
      }
    } else {
      ctx_.Add(at_.path, mark,
               "a merge key ('<<') takes a mapping or a list of them (an alias such as *defaults), "
               "got " +
                   Describe(source));
    }
  }
}

const MapReader::Entry* MapReader::Find(std::string_view key) const {
  for (const Entry& e : entries_) {
    if (e.key == key) return &e;
  }
  return nullptr;
}

bool MapReader::Has(std::string_view key) const { return Find(key) != nullptr; }

std::optional<Located> MapReader::Get(std::string_view key) const {
  const Entry* e = Find(key);
  if (!e) return std::nullopt;
  return e->value;
}

std::optional<Located> MapReader::Require(std::string_view key, std::string_view hint) const {
  if (auto v = Get(key)) return v;
  if (ok_) {
    ctx_.Add(ChildPath(at_.path, key), at_.key_mark,
             fmt::format("missing required field '{}'{}", key, hint));
  }
  return std::nullopt;
}

std::vector<std::string> MapReader::Keys() const {
  std::vector<std::string> out;
  for (const Entry& e : entries_) out.push_back(e.key);
  return out;
}

bool MapReader::String(std::string_view key, std::string* out, bool required) const {
  auto at = required ? Require(key) : Get(key);
  if (!at) return false;
  auto v = ReadString(ctx_, *at);
  if (v) *out = *v;
  return v.has_value();
}

bool MapReader::Int(std::string_view key, int* out, int64_t min, int64_t max, bool required) const {
  auto at = required ? Require(key) : Get(key);
  if (!at) return false;
  auto v = ReadInt(ctx_, *at, min, max);
  if (v) *out = static_cast<int>(*v);
  return v.has_value();
}

bool MapReader::Int64(std::string_view key, int64_t* out, int64_t min, int64_t max) const {
  auto at = Get(key);
  if (!at) return false;
  auto v = ReadInt(ctx_, *at, min, max);
  if (v) *out = *v;
  return v.has_value();
}

bool MapReader::Number(std::string_view key, double* out, double min, double max,
                       bool min_exclusive, bool required) const {
  auto at = required ? Require(key) : Get(key);
  if (!at) return false;
  auto v = ReadNumber(ctx_, *at, min, max, min_exclusive);
  if (v) *out = *v;
  return v.has_value();
}

bool MapReader::Bool(std::string_view key, bool* out) const {
  auto at = Get(key);
  if (!at) return false;
  auto v = ReadBool(ctx_, *at);
  if (v) *out = *v;
  return v.has_value();
}

bool MapReader::Dur(std::string_view key, Duration* out, Duration min) const {
  auto at = Get(key);
  if (!at) return false;
  auto v = ReadDuration(ctx_, *at, min);
  if (v) *out = *v;
  return v.has_value();
}

bool MapReader::Size(std::string_view key, int64_t* out, int64_t min) const {
  auto at = Get(key);
  if (!at) return false;
  auto v = ReadSize(ctx_, *at, min);
  if (v) *out = *v;
  return v.has_value();
}

bool MapReader::Url(std::string_view key, std::string* out, bool required) const {
  auto at = required ? Require(key) : Get(key);
  if (!at) return false;
  auto v = ReadUrl(ctx_, *at);
  if (v) *out = *v;
  return v.has_value();
}

bool MapReader::Path(std::string_view key, std::string* out) const {
  auto at = Get(key);
  if (!at) return false;
  auto v = ReadPath(ctx_, *at);
  if (v) *out = *v;
  return v.has_value();
}

bool MapReader::StringList(std::string_view key, std::vector<std::string>* out,
                           bool allow_empty_list) const {
  auto at = Get(key);
  if (!at) return false;
  auto v = ReadStringList(ctx_, *at, allow_empty_list);
  if (v) *out = *v;
  return v.has_value();
}

bool MapReader::Secret(std::string_view key, SecretRef* out, bool required) const {
  auto at = required ? Require(key, fmt::format(" (a reference: {}: {{file: PATH}} or "
                                                "{}: {{env: NAME}})",
                                                key, key))
                     : Get(key);
  if (!at) return false;
  auto v = ReadSecretRef(ctx_, *at);
  if (v) *out = *v;
  return v.has_value();
}

}  // namespace ra::config::internal
