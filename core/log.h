#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace ra::log {

enum class Level { kDebug, kInfo, kWarn, kError };

/// Structured fields of one log line; must be a JSON object (or null for none).
using Fields = nlohmann::json;

/// Where lines go and which are kept. Without Init: stderr, info and above.
/// `path` empty means stderr. Not thread-safe against concurrent Write; call once at start-up.
void Init(Level min_level, const std::string& path = "");

/// Parses "debug", "info", "warn", "error".
bool ParseLevel(std::string_view text, Level* out);

/// Writes one JSON line: {"ts":"<RFC 3339>","level":"info","msg":"<msg>", ...fields}.
/// Secrets never reach the output: values of fields whose name says secret (password, token,
/// secret, authorization, credential, api_key) print as "***", and every value registered with
/// RegisterSecret is replaced by "***" wherever it appears. Thread-safe; never throws.
void Write(Level level, std::string_view msg, const Fields& fields = nullptr);

inline void Debug(std::string_view msg, const Fields& f = nullptr) { Write(Level::kDebug, msg, f); }
inline void Info(std::string_view msg, const Fields& f = nullptr) { Write(Level::kInfo, msg, f); }
inline void Warn(std::string_view msg, const Fields& f = nullptr) { Write(Level::kWarn, msg, f); }
inline void Error(std::string_view msg, const Fields& f = nullptr) { Write(Level::kError, msg, f); }

/// Remembers a secret value (a password read from a file, a token from the environment) so that
/// no later log line, error message passed through Redact, or API answer shows it. Values shorter
/// than 4 characters are not registered: redacting them would mangle ordinary text.
/// Thread-safe.
void RegisterSecret(std::string value);

/// How many ephemeral secrets are remembered; older ones are forgotten.
inline constexpr size_t kMaxEphemeralSecrets = 64;

/// Like RegisterSecret, for values that are replaced over time (Keystone tokens, renewed every
/// few hours): only the newest kMaxEphemeralSecrets are kept, so a service running for months
/// does not accumulate every token it ever received. A forgotten token has long expired.
/// Thread-safe.
void RegisterEphemeralSecret(std::string value);

/// `text` with every registered secret replaced by "***". Thread-safe.
std::string Redact(std::string_view text);

/// True when a field or key named `name` holds a secret by its name alone.
bool IsSecretName(std::string_view name);

/// Forgets registered secrets and sends output back to stderr; for tests.
void ResetForTesting();

/// Sends lines to `sink` instead of a file; for tests.
void CaptureForTesting(std::string* sink);

}  // namespace ra::log
