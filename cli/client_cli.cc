#include "cli/client_cli.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <ostream>
#include <set>
#include <sstream>

#include "core/duration.h"
#include "core/log.h"
#include "core/secret.h"
#include "core/time_format.h"
#include "core/url.h"

namespace ra::autoscaler {

namespace {

using nlohmann::json;

constexpr std::string_view kDefaultApi = "http://127.0.0.1:8080";

void AddCommon(CLI::App* cmd, ClientOptions* options) {
  cmd->add_option("--api", options->api_url,
                  "The service's API (default: $RA_API_URL, else http://127.0.0.1:8080)")
      ->type_name("URL");
  cmd->add_option("--token-file", options->token_file,
                  "File holding the bearer token (default: $RA_TOKEN_FILE, else $RA_TOKEN)")
      ->type_name("PATH");
}

CLI::App* AddCommand(CLI::App& app, ClientOptions* options, const std::string& name,
                     const std::string& help) {
  CLI::App* cmd = app.add_subcommand(name, help);
  cmd->callback([options, name] { options->command = name; });
  AddCommon(cmd, options);
  return cmd;
}

}  // namespace

void AddClientCommands(CLI::App& app, ClientOptions* options) {
  CLI::App* status = AddCommand(app, options, "status",
                                "Show each cluster's replicas, phases and last decision (from a "
                                "running `serve`)");
  status->add_option("cluster", options->cluster, "Only this cluster");
  status->add_flag("--json", options->json, "Print the API's JSON");

  CLI::App* scale =
      AddCommand(app, options, "scale",
                 "Set a manual replica count that overrides the policies (or --clear it)");
  scale->add_option("cluster", options->cluster, "Cluster")->required();
  CLI::Option* n = scale->add_option("replicas", options->replicas, "Replica count")
                       ->check(CLI::NonNegativeNumber);
  CLI::Option* clear =
      scale->add_flag("--clear", options->clear, "Remove the manual count: the policies decide");
  n->excludes(clear);
  scale->add_option("--ttl", options->ttl, "Expire the manual count after this long (e.g. 30m)")
      ->type_name("DURATION")
      ->excludes(clear);
  scale->add_option("--reason", options->reason, "Why (shown in status and events)")
      ->excludes(clear);
  CLI::Option* wait = scale->add_flag(
      "--wait", options->wait, "Follow the replicas through their phases until the count is met");
  scale->add_option("--timeout", options->timeout, "With --wait: give up after this long (10m)")
      ->type_name("DURATION")
      ->needs(wait);

  CLI::App* pause =
      AddCommand(app, options, "pause", "Pause automatic scaling of a cluster (idempotent)");
  pause->add_option("cluster", options->cluster, "Cluster")->required();
  pause->add_option("--reason", options->reason, "Why (shown in status and events)");

  CLI::App* resume = AddCommand(app, options, "resume", "Resume automatic scaling of a cluster");
  resume->add_option("cluster", options->cluster, "Cluster")->required();

  CLI::App* events = AddCommand(app, options, "events", "Show recent events of the service");
  events->add_option("--cluster", options->cluster, "Only this cluster");
  events->add_option("--limit", options->limit, "At most this many (1-1000; default 50)")
      ->check(CLI::Range(1, 1000));
  events->add_flag("--follow,-f", options->follow, "Keep printing new events until interrupted");
  events->add_flag("--json", options->json, "One JSON object per line");

  CLI::App* snapshot =
      AddCommand(app, options, "snapshot", "Take a golden snapshot of a cluster's donor now");
  snapshot->add_option("cluster", options->cluster, "Cluster")->required();
}

namespace {

class ApiClient {
 public:
  ApiClient(std::string base, std::optional<Secret> token, HttpTransport& transport)
      : base_(std::move(base)), token_(std::move(token)), transport_(transport) {}

  /// A 2xx answer's JSON body; otherwise an error whose message is ready to print.
  Result<json> Call(const std::string& method, const std::string& path,
                    const std::optional<json>& body = std::nullopt) {
    HttpRequest request;
    request.method = method;
    request.url = base_ + path;
    request.headers["Accept"] = "application/json";
    if (token_) request.headers["Authorization"] = "Bearer " + token_->Reveal();
    if (body) {
      request.headers["Content-Type"] = "application/json";
      request.body = body->dump();
    }
    auto response = transport_.Send(request);
    if (!response) {
      return Fail(response.error().kind,
                  "cannot reach the API at " + base_ + ": " +
                      log::Redact(response.error().message) +
                      "\n  is `replica-autoscaler serve` running there? (set --api or RA_API_URL)");
    }
    json parsed = json::parse(response->body, nullptr, false);
    if (response->status >= 200 && response->status < 300) {
      // Every route answers an object; anything else (a proxy, another service) is not ours.
      if (parsed.is_discarded() || !parsed.is_object()) {
        return Fail(ErrorKind::kParse, "the API answered " + std::to_string(response->status) +
                                           " with a body that is not a JSON object");
      }
      return parsed;
    }
    std::string message;
    if (!parsed.is_discarded() && parsed.is_object() && parsed.contains("error") &&
        parsed["error"].is_object() && parsed["error"].value("message", json()).is_string()) {
      message = parsed["error"]["message"].get<std::string>();
    } else {
      message = "unexpected answer from " + base_ + path;
    }
    std::string line = std::to_string(response->status) + ": " + log::Redact(message);
    if (response->status == 401 && !token_) {
      line += "\n  no token given: pass --token-file PATH, or set RA_TOKEN_FILE or RA_TOKEN";
    }
    return Fail(response->status == 404 ? ErrorKind::kNotFound : ErrorKind::kBadRequest, line);
  }

 private:
  std::string base_;
  std::optional<Secret> token_;
  HttpTransport& transport_;
};

std::string Str(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  return it->dump();
}

// A field of an answer that may come from another version: the wrong type reads as absent.
bool Flag(const json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_boolean() && it->get<bool>();
}

int IntOr(const json& object, const char* key, int fallback) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_number_integer()) return fallback;
  constexpr int64_t kMin = std::numeric_limits<int>::min();
  constexpr int64_t kMax = std::numeric_limits<int>::max();
  if (it->is_number_unsigned()) {
    return static_cast<int>(std::min<uint64_t>(it->get<uint64_t>(), kMax));
  }
  return static_cast<int>(std::clamp<int64_t>(it->get<int64_t>(), kMin, kMax));
}

std::optional<double> Num(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

std::string Seconds(std::optional<double> s) {
  if (!s) return "-";
  return FormatDuration(std::chrono::seconds(static_cast<int64_t>(*s)));
}

std::string Bytes(double b) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (b >= 1024 && unit < 4) b /= 1024, ++unit;
  std::ostringstream out;
  out << std::fixed << std::setprecision(unit == 0 || b >= 10 ? 0 : 1) << b << kUnits[unit];
  return out.str();
}

std::string Lag(const json& replica) {
  const auto bytes = Num(replica, "lag_bytes");
  const auto secs = Num(replica, "lag_seconds");
  if (!bytes && !secs) return "-";
  std::ostringstream out;
  out << (bytes ? Bytes(*bytes) : "?") << "/";
  if (secs) {
    out << std::fixed << std::setprecision(*secs < 10 ? 1 : 0) << *secs << "s";
  } else {
    out << "?";
  }
  return out.str();
}

/// Left-aligned columns, two spaces apart; the last column is not padded.
std::string Table(const std::vector<std::vector<std::string>>& rows, const std::string& indent) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) {
      if (widths.size() <= i) widths.push_back(0);
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line = indent;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

void PrintStatus(const json& s, std::ostream& out) {
  out << Str(s, "name") << ": desired " << Str(s, "desired") << ", active " << Str(s, "active")
      << ", serving " << Str(s, "serving") << " (min " << Str(s, "min_replicas") << ", max "
      << Str(s, "max_replicas") << ")\n";
  out << "  paused:   "
      << (Flag(s, "paused")
              ? "yes" + (Str(s, "paused_reason").empty() ? std::string()
                                                         : " (" + Str(s, "paused_reason") + ")")
              : std::string("no"))
      << "\n";
  const json& manual = s.contains("manual_override") ? s["manual_override"] : json();
  out << "  override: ";
  if (manual.is_object()) {
    out << Str(manual, "replicas") << " replicas, "
        << (Str(manual, "expires_at").empty() ? "until cleared"
                                              : "until " + Str(manual, "expires_at"));
    if (!Str(manual, "reason").empty()) out << " (" << Str(manual, "reason") << ")";
    out << "\n";
  } else {
    out << "none\n";
  }
  const json& decision = s.contains("last_decision") ? s["last_decision"] : json();
  if (decision.is_object()) {
    out << "  decision: " << Str(decision, "reason");
    if (!Str(decision, "decided_at").empty()) out << " (at " << Str(decision, "decided_at") << ")";
    out << "\n";
    std::vector<std::vector<std::string>> rows;
    if (decision.contains("policies") && decision["policies"].is_array()) {
      for (const json& p : decision["policies"]) {
        std::string desired = Str(p, "desired");
        rows.push_back(
            {Str(p, "name"), Str(p, "verdict"), desired.empty() ? "-" : desired, Str(p, "reason")});
      }
    }
    out << Table(rows, "    ");
  } else {
    out << "  decision: none yet\n";
  }
  if (!Str(s, "plan_reason").empty()) out << "  plan:     " << Str(s, "plan_reason") << "\n";
  if (!Str(s, "last_error").empty()) out << "  error:    " << Str(s, "last_error") << "\n";
  if (s.contains("blocked") && s["blocked"].is_array()) {
    for (const json& b : s["blocked"]) {
      out << "  blocked:  " << Str(b, "action")
          << (Str(b, "replica").empty() ? "" : " " + Str(b, "replica")) << ": " << Str(b, "reason")
          << "\n";
    }
  }
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "PHASE", "ZONE", "LAG", "SESSIONS", "AGE", "DETAIL"}};
  if (s.contains("replicas") && s["replicas"].is_array()) {
    for (const json& r : s["replicas"]) {
      rows.push_back({Str(r, "name"), Str(r, "phase"),
                      Str(r, "zone").empty() ? "-" : Str(r, "zone"), Lag(r), Str(r, "sessions"),
                      Seconds(Num(r, "age_seconds")), Str(r, "detail")});
    }
  }
  if (rows.size() == 1) {
    out << "  no replicas\n";
  } else {
    out << "\n" << Table(rows, "  ");
  }
  // With several load balancers: what each one says of each replica, a column per balancer.
  std::vector<std::vector<std::string>> per_lb;
  const auto replicas = s.find("replicas");
  for (const json& r : replicas != s.end() && replicas->is_array() ? *replicas : json::array()) {
    const auto found = r.is_object() ? r.find("balancers") : r.end();
    if (!r.is_object() || found == r.end() || !found->is_array() || found->empty()) continue;
    const json& balancers = *found;
    if (per_lb.empty()) {
      per_lb.push_back({"REPLICA"});
      for (const json& b : balancers) per_lb.front().push_back(Str(b, "name"));
    }
    std::vector<std::string> row = {Str(r, "name") + (Flag(r, "partial") ? " (partial)" : "")};
    for (const json& b : balancers) {
      const std::string sessions = Str(b, "sessions");
      row.push_back(Str(b, "state") + (sessions.empty() ? "" : ", " + sessions + " sessions"));
    }
    row.resize(per_lb.front().size());
    per_lb.push_back(std::move(row));
  }
  if (!per_lb.empty()) out << "\n" << Table(per_lb, "  ");
}

std::string ClockTime(TimePoint t) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm local{};
  localtime_r(&secs, &local);
  char buf[16];
  std::strftime(buf, sizeof buf, "%H:%M:%S", &local);
  return buf;
}

std::string PathSegment(const std::string& text) { return UrlEncode(text); }

struct Context {
  const ClientOptions& options;
  ApiClient& api;
  const Clock& clock;
  Sleeper& sleeper;
  std::ostream& out;
  std::ostream& err;

  int Failed(const Error& error) {
    err << "replica-autoscaler: " << error.message << "\n";
    return 1;
  }
};

int RunStatus(Context& c) {
  const bool one = !c.options.cluster.empty();
  auto answer =
      c.api.Call("GET", one ? "/v1/clusters/" + PathSegment(c.options.cluster) : "/v1/clusters");
  if (!answer) return c.Failed(answer.error());
  if (c.options.json) {
    c.out << answer->dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    return 0;
  }
  if (one) {
    PrintStatus(*answer, c.out);
    return 0;
  }
  const json& clusters = (*answer)["clusters"];
  if (!clusters.is_array() || clusters.empty()) {
    c.out << "no clusters\n";
    return 0;
  }
  bool first = true;
  for (const json& s : clusters) {
    if (!first) c.out << "\n";
    first = false;
    PrintStatus(s, c.out);
  }
  return 0;
}

/// Polls the cluster's status once a second, printing each replica's phase changes, until the
/// desired count is `target`, active == desired and every active replica serves.
int WaitForScale(Context& c, int target, Duration timeout) {
  static const std::set<std::string> kLeaving = {"draining", "drained", "deleting", "failed"};
  const std::string path = "/v1/clusters/" + PathSegment(c.options.cluster);
  const TimePoint deadline = c.clock.Now() + timeout;
  struct Seen {
    std::string phase;
    TimePoint since;
  };
  std::map<std::string, Seen> seen;
  bool first = true;
  std::string last_summary;
  while (true) {
    auto answer = c.api.Call("GET", path);
    if (!answer) return c.Failed(answer.error());
    const TimePoint now = c.clock.Now();
    const json& s = *answer;
    std::map<std::string, Seen> current;
    bool all_serving = true;
    if (s.contains("replicas") && s["replicas"].is_array()) {
      for (const json& r : s["replicas"]) {
        const std::string name = Str(r, "name");
        const std::string phase = Str(r, "phase");
        if (!kLeaving.count(phase) && phase != "serving") all_serving = false;
        TimePoint since = now;
        if (auto t = ParseTimestamp(Str(r, "phase_since")); t) since = *t;
        current[name] = Seen{phase, since};
        auto before = seen.find(name);
        if (first) {
          c.out << ClockTime(now) << "  " << name << "  " << phase << "\n";
          continue;
        }
        if (before == seen.end()) {
          c.out << ClockTime(now) << "  " << name << "  new: " << phase << "\n";
        } else if (before->second.phase != phase) {
          const auto spent = std::chrono::duration_cast<Duration>(since - before->second.since);
          c.out << ClockTime(now) << "  " << name << "  " << before->second.phase << " -> " << phase
                << " ("
                << FormatDuration(std::chrono::duration_cast<std::chrono::seconds>(
                       std::max(spent, Duration(0))))
                << ")\n";
        }
      }
    }
    if (!first) {
      for (const auto& [name, was] : seen) {
        if (!current.count(name))
          c.out << ClockTime(now) << "  " << name << "  " << was.phase << " -> gone\n";
      }
    }
    const int desired = IntOr(s, "desired", -1);
    const int active = IntOr(s, "active", -1);
    const std::string summary = "desired " + std::to_string(desired) + ", active " +
                                std::to_string(active) + ", serving " +
                                std::to_string(IntOr(s, "serving", -1));
    if (first || summary != last_summary) {
      c.out << ClockTime(now) << "  " << Str(s, "name") << ": " << summary << "\n";
    }
    last_summary = summary;
    seen = std::move(current);
    first = false;
    if (desired == target && active == desired && all_serving) {
      c.out << ClockTime(now) << "  done: " << active << " active, all serving\n";
      return 0;
    }
    if (now >= deadline) {
      c.err << "replica-autoscaler: timed out after " << FormatDuration(timeout) << " waiting for "
            << c.options.cluster << " to reach " << target << " serving replicas (" << summary
            << ")\n";
      return 1;
    }
    c.sleeper.SleepFor(std::chrono::seconds(1));
  }
}

int RunScale(Context& c) {
  const std::string path = "/v1/clusters/" + PathSegment(c.options.cluster) + "/override";
  if (c.options.clear) {
    auto answer = c.api.Call("DELETE", path);
    if (!answer) return c.Failed(answer.error());
    c.out << c.options.cluster << ": manual count cleared; the policies decide again\n";
    return 0;
  }
  if (!c.options.replicas) {
    c.err << "scale: give a replica count (scale CLUSTER N) or --clear\n";
    return 2;
  }
  json body = {{"replicas", *c.options.replicas}};
  if (!c.options.ttl.empty()) {
    if (auto ttl = ParseDuration(c.options.ttl); !ttl) {
      c.err << "scale: --ttl: " << ttl.error().message << "\n";
      return 2;
    }
    body["ttl"] = c.options.ttl;
  }
  Duration timeout{};
  if (c.options.wait) {
    auto parsed = ParseDuration(c.options.timeout);
    if (!parsed) {
      c.err << "scale: --timeout: " << parsed.error().message << "\n";
      return 2;
    }
    timeout = *parsed;
  }
  if (!c.options.reason.empty()) body["reason"] = c.options.reason;
  auto answer = c.api.Call("PUT", path, body);
  if (!answer) return c.Failed(answer.error());
  const json manual = answer->value("manual_override", json());
  c.out << c.options.cluster << ": manual count " << *c.options.replicas;
  if (manual.is_object() && !Str(manual, "expires_at").empty()) {
    c.out << " until " << Str(manual, "expires_at");
  } else {
    c.out << " until cleared";
  }
  c.out << "\n";
  if (!c.options.wait) return 0;
  return WaitForScale(c, *c.options.replicas, timeout);
}

void PrintEvent(const json& e, bool as_json, std::ostream& out) {
  if (as_json) {
    out << e.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
    return;
  }
  std::string what = Str(e, "type");
  if (!Str(e, "action").empty()) what += " " + Str(e, "action");
  if (!Str(e, "result").empty()) what += " (" + Str(e, "result") + ")";
  out << Str(e, "at") << "  " << (Str(e, "cluster").empty() ? "-" : Str(e, "cluster")) << "  "
      << (Str(e, "replica").empty() ? "-" : Str(e, "replica")) << "  " << what << ": "
      << Str(e, "message") << "\n";
}

int RunEvents(Context& c) {
  std::string since;
  // Events at exactly `since` come again (it is inclusive): remember those already printed.
  std::set<std::string> printed_at_since;
  bool first = true;
  while (true) {
    std::string path = "/v1/events?limit=" + std::to_string(c.options.limit);
    if (!c.options.cluster.empty()) path += "&cluster=" + UrlEncode(c.options.cluster);
    if (!since.empty()) path += "&since=" + UrlEncode(since);
    auto answer = c.api.Call("GET", path);
    if (!answer) return c.Failed(answer.error());
    const json& events = (*answer)["events"];
    if (events.is_array()) {
      for (const json& e : events) {
        const std::string key = e.dump();
        const std::string at = Str(e, "at");
        if (at == since && printed_at_since.count(key)) continue;
        if (at != since) {
          since = at;
          printed_at_since.clear();
        }
        printed_at_since.insert(key);
        PrintEvent(e, c.options.json, c.out);
      }
    }
    if (first && !c.options.json && (!events.is_array() || events.empty()) && !c.options.follow) {
      c.out << "no events\n";
    }
    first = false;
    if (!c.options.follow) return 0;
    c.out.flush();
    c.sleeper.SleepFor(std::chrono::seconds(2));
  }
}

int RunSimple(Context& c, const std::string& what) {
  const std::string base = "/v1/clusters/" + PathSegment(c.options.cluster);
  if (what == "pause") {
    json body = json::object();
    if (!c.options.reason.empty()) body["reason"] = c.options.reason;
    auto answer = c.api.Call("POST", base + "/pause", body);
    if (!answer) return c.Failed(answer.error());
    c.out << c.options.cluster
          << ": automatic scaling paused; replicas being built or drained still finish\n";
  } else if (what == "resume") {
    auto answer = c.api.Call("POST", base + "/resume");
    if (!answer) return c.Failed(answer.error());
    c.out << c.options.cluster << ": automatic scaling resumed\n";
  } else {
    auto answer = c.api.Call("POST", base + "/snapshot");
    if (!answer) return c.Failed(answer.error());
    c.out << c.options.cluster << ": snapshot requested; it is taken in the next cycle\n";
  }
  return 0;
}

Result<std::optional<Secret>> ResolveToken(
    const ClientOptions& options, const std::function<std::string(const std::string&)>& env) {
  std::string path = options.token_file.empty() ? env("RA_TOKEN_FILE") : options.token_file;
  std::string value;
  if (!path.empty()) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Fail(ErrorKind::kConfig, "cannot read the token file " + path);
    std::ostringstream text;
    text << in.rdbuf();
    value = text.str();
    while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back()))) {
      value.pop_back();
    }
    if (value.empty()) return Fail(ErrorKind::kConfig, "the token file " + path + " is empty");
  } else {
    value = env("RA_TOKEN");
  }
  if (value.empty()) return std::optional<Secret>();
  return std::optional<Secret>(Secret(std::move(value)));
}

}  // namespace

int RunClient(const ClientOptions& options, std::ostream& out, std::ostream& err,
              const ClientEnvironment& environment) {
  const std::function<std::string(const std::string&)> env =
      environment.getenv ? environment.getenv : [](const std::string& name) {
        const char* v = std::getenv(name.c_str());
        return std::string(v == nullptr ? "" : v);
      };
  std::string base = options.api_url.empty() ? env("RA_API_URL") : options.api_url;
  if (base.empty()) base = kDefaultApi;
  while (!base.empty() && base.back() == '/') base.pop_back();
  if (base.rfind("http://", 0) != 0 && base.rfind("https://", 0) != 0) {
    err << options.command << ": --api: expected an http:// or https:// URL, got '" << base
        << "'\n";
    return 2;
  }
  auto token = ResolveToken(options, env);
  if (!token) {
    err << "replica-autoscaler: " << token.error().message << "\n";
    return 1;
  }
  std::optional<CurlHttpTransport> curl;
  HttpTransport* transport = environment.transport;
  if (transport == nullptr) {
    HttpOptions http;
    http.connect_timeout = std::chrono::seconds(5);
    http.total_timeout = std::chrono::seconds(30);
    curl.emplace(http);
    transport = &*curl;
  }
  SystemClock system_clock;
  const Clock& clock = environment.clock ? *environment.clock : system_clock;
  Sleeper& sleeper = environment.sleeper ? *environment.sleeper : RealSleeper::Instance();
  ApiClient api(base, std::move(*token), *transport);
  Context context{options, api, clock, sleeper, out, err};

  if (options.command == "status") return RunStatus(context);
  if (options.command == "scale") return RunScale(context);
  if (options.command == "events") return RunEvents(context);
  if (options.command == "pause" || options.command == "resume" || options.command == "snapshot") {
    return RunSimple(context, options.command);
  }
  err << "replica-autoscaler: unknown client command '" << options.command << "'\n";
  return 2;
}

}  // namespace ra::autoscaler
