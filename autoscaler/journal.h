#pragma once

#include <cstdint>
#include <cstdio>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/clock.h"
#include "core/result.h"

/// The event journal: every action, its result and its reason, one JSON object per line,
/// rotated by size. The newest events are also kept in memory for the API.
namespace ra::autoscaler {

struct Event {
  TimePoint at{};
  std::string cluster{};  ///< "" for service-wide events
  std::string replica{};  ///< "" when not about one replica
  /// What happened, snake_case: "decision", "action_started", "action_succeeded",
  /// "action_failed", "phase_changed", "replica_failed", "forced_drain", "blocked",
  /// "snapshot_skipped", "manual_override", "paused", "resumed", "service_started", ...
  std::string type{};
  std::string action{};   ///< ActionKind name for action_* events
  std::string result{};   ///< "ok", or the error kind ("quota", "timeout", ...)
  std::string message{};  ///< one sentence with the reason and the figures (redacted)
  nlohmann::json details = nlohmann::json::object();  ///< extra figures (phase, zone, sessions)
};

/// {"at": RFC 3339 UTC with milliseconds, "cluster", "replica", "type", "action", "result",
///  "message", "details"}; empty strings and empty (or null) details are left out.
nlohmann::json ToJson(const Event& event);

/// Appends events to a file and keeps the newest `memory_limit` in memory. Thread-safe. Every
/// message is passed through log::Redact before it is written or kept. A file that cannot be
/// written is reported once through the log and the events are still kept in memory: the
/// journal never stops the service. String values in `details` are redacted too, and values of
/// secret-named keys (log::IsSecretName) are replaced by "***".
class EventJournal {
 public:
  /// `config.path` empty: memory only. The file's folder is created if missing. Rotation: when
  /// the file would exceed max_size_bytes it is renamed PATH.1 (PATH.1 -> PATH.2, ... up to
  /// `keep`, the oldest deleted) and a new file is started.
  /// An existing file is appended to and its size counts towards the next rotation.
  /// Never fails: a folder or file that cannot be made is reported (once) and the journal
  /// keeps events in memory only until writing works again.
  explicit EventJournal(config::JournalConfig config, size_t memory_limit = 1000);
  ~EventJournal();
  EventJournal(const EventJournal&) = delete;
  EventJournal& operator=(const EventJournal&) = delete;

  /// Blocks for one buffered write (flushed per line). Never throws, never fails the caller.
  void Append(Event event);

  /// The newest events, newest last, filtered by cluster ("" for all), at most `limit`, and
  /// only those at or after `since` when given.
  std::vector<Event> Recent(const std::string& cluster, size_t limit,
                            std::optional<TimePoint> since = std::nullopt) const;

 private:
  void RotateIfNeededLocked(size_t next_line_bytes);
  /// Opens the file for appending when it is not open; false (and reported) when it cannot.
  bool OpenLocked();
  void ReportWriteErrorLocked(const std::string& what);

  config::JournalConfig config_;
  size_t memory_limit_;
  mutable std::mutex mu_;
  std::deque<Event> recent_;
  std::FILE* file_ = nullptr;
  int64_t file_bytes_ = 0;
  bool write_error_reported_ = false;
};

}  // namespace ra::autoscaler
