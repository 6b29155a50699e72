#include "core/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <deque>
#include <mutex>
#include <sstream>
#include <vector>

#include "core/duration.h"

namespace ra::log {

namespace {

constexpr std::string_view kRedacted = "***";

struct State {
  std::mutex mu;
  std::vector<std::string> permanent;  // RegisterSecret
  std::deque<std::string> ephemeral;   // RegisterEphemeralSecret, oldest first, bounded
  std::vector<std::string> secrets;  // both, longest first, so a secret containing another is whole
  Level min_level = Level::kInfo;
  std::shared_ptr<spdlog::logger> logger;
  std::string* capture = nullptr;
};

State& GetState() {
  static State state;
  return state;
}

std::shared_ptr<spdlog::logger> MakeStderrLogger() {
  auto logger =
      std::make_shared<spdlog::logger>("ra", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_pattern("%v");
  logger->set_level(spdlog::level::trace);
  return logger;
}

std::string_view LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "info";
}

std::string RedactLocked(const State& state, std::string_view text) {
  std::string out(text);
  for (const std::string& secret : state.secrets) {
    for (size_t pos = out.find(secret); pos != std::string::npos;
         pos = out.find(secret, pos + kRedacted.size())) {
      out.replace(pos, secret.size(), kRedacted);
    }
  }
  return out;
}

// Redacts in place: secret-named keys lose their values, every string loses registered secrets.
void RedactJson(const State& state, nlohmann::json& value) {
  if (value.is_object()) {
    for (auto& [key, item] : value.items()) {
      if (IsSecretName(key) && !item.is_null()) {
        item = kRedacted;
      } else {
        RedactJson(state, item);
      }
    }
  } else if (value.is_array()) {
    for (auto& item : value) RedactJson(state, item);
  } else if (value.is_string()) {
    value = RedactLocked(state, value.get_ref<const std::string&>());
  }
}

}  // namespace

void Init(Level min_level, const std::string& path) {
  State& state = GetState();
  std::lock_guard lock(state.mu);
  state.min_level = min_level;
  if (path.empty()) {
    state.logger = MakeStderrLogger();
  } else {
    auto logger = std::make_shared<spdlog::logger>(
        "ra", std::make_shared<spdlog::sinks::basic_file_sink_mt>(path));
    logger->set_pattern("%v");
    logger->set_level(spdlog::level::trace);
    logger->flush_on(spdlog::level::trace);
    state.logger = std::move(logger);
  }
}

bool ParseLevel(std::string_view text, Level* out) {
  static constexpr std::pair<std::string_view, Level> kLevels[] = {{"debug", Level::kDebug},
                                                                   {"info", Level::kInfo},
                                                                   {"warn", Level::kWarn},
                                                                   {"warning", Level::kWarn},
                                                                   {"error", Level::kError}};
  for (const auto& [name, level] : kLevels) {
    if (text == name) {
      *out = level;
      return true;
    }
  }
  return false;
}

void Write(Level level, std::string_view msg, const Fields& fields) {
  State& state = GetState();
  std::lock_guard lock(state.mu);
  if (level < state.min_level) return;
  try {
    nlohmann::json line = nlohmann::json::object();
    line["ts"] = FormatTime(std::chrono::system_clock::now());
    line["level"] = LevelName(level);
    line["msg"] = std::string(msg);
    if (fields.is_object()) {
      for (const auto& [key, value] : fields.items()) {
        if (key == "ts" || key == "level" || key == "msg") continue;  // reserved
        line[key] = value;
      }
    } else if (!fields.is_null()) {
      line["fields"] = fields;
    }
    RedactJson(state, line);
    // Invalid UTF-8 from a remote answer must not throw: replace it.
    std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (state.capture != nullptr) {
      *state.capture += text;
      *state.capture += '\n';
      return;
    }
    if (!state.logger) state.logger = MakeStderrLogger();
    state.logger->info(text);
  } catch (...) {
    // Logging never takes the service down.
  }
}

namespace {

void RebuildSecretsLocked(State& state) {
  state.secrets.assign(state.permanent.begin(), state.permanent.end());
  state.secrets.insert(state.secrets.end(), state.ephemeral.begin(), state.ephemeral.end());
  std::sort(state.secrets.begin(), state.secrets.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
}

}  // namespace

void RegisterSecret(std::string value) {
  if (value.size() < 4) return;
  State& state = GetState();
  std::lock_guard lock(state.mu);
  if (std::find(state.secrets.begin(), state.secrets.end(), value) != state.secrets.end()) return;
  state.permanent.push_back(std::move(value));
  RebuildSecretsLocked(state);
}

void RegisterEphemeralSecret(std::string value) {
  if (value.size() < 4) return;
  State& state = GetState();
  std::lock_guard lock(state.mu);
  if (std::find(state.secrets.begin(), state.secrets.end(), value) != state.secrets.end()) return;
  state.ephemeral.push_back(std::move(value));
  while (state.ephemeral.size() > kMaxEphemeralSecrets) state.ephemeral.pop_front();
  RebuildSecretsLocked(state);
}

std::string Redact(std::string_view text) {
  State& state = GetState();
  std::lock_guard lock(state.mu);
  return RedactLocked(state, text);
}

bool IsSecretName(std::string_view name) {
  std::string lower(name);
  // Header names spell words with '-' (X-Api-Key, X-Auth-Token): read them as '_'.
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) {
    return c == '-' ? '_' : static_cast<char>(std::tolower(c));
  });
  // A reference to a secret (password_file, token_env) is not itself secret.
  for (std::string_view suffix : {"_file", "_env", "_ref"}) {
    if (lower.size() > suffix.size() && lower.ends_with(suffix)) return false;
  }
  for (std::string_view word : {"password", "passwd", "token", "secret", "authorization",
                                "credential", "api_key", "apikey", "private_key"}) {
    if (lower.find(word) != std::string::npos) return true;
  }
  return false;
}

void ResetForTesting() {
  State& state = GetState();
  std::lock_guard lock(state.mu);
  state.secrets.clear();
  state.permanent.clear();
  state.ephemeral.clear();
  state.capture = nullptr;
  state.min_level = Level::kInfo;
  state.logger = MakeStderrLogger();
}

void CaptureForTesting(std::string* sink) {
  State& state = GetState();
  std::lock_guard lock(state.mu);
  state.capture = sink;
  state.min_level = Level::kDebug;
}

}  // namespace ra::log
