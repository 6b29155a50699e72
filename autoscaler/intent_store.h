#pragma once

#include <map>
#include <optional>
#include <string>

#include "config/config.h"
#include "core/clock.h"
#include "core/result.h"
#include "policies/engine.h"

/// What the cloud and the load balancer cannot show: each cluster's operator intent (manual
/// override and pause) and the service's own pending decisions (when it decided to create each
/// replica not yet serving, for the time-to-serve histogram). Kept by an IntentStore so that a
/// restarted service (or another instance) has it.
namespace ra::autoscaler {

struct ClusterIntent {
  std::optional<policies::ManualOverride> manual{};
  bool paused = false;
  std::string paused_reason{};
  /// Replicas this service decided to create and has not seen serving yet, by name: the time of
  /// the cycle that decided (see autoscaler/time_to_serve.h). Not operator intent: the API
  /// neither shows nor changes it.
  std::map<std::string, TimePoint> decided{};

  bool Empty() const { return !manual && !paused && decided.empty(); }
};

/// By cluster name.
using Intents = std::map<std::string, ClusterIntent>;

/// Where intent is kept. Implementations are called from one thread at a time.
class IntentStore {
 public:
  virtual ~IntentStore() = default;

  /// Everything saved (an empty map when nothing ever was). An entry that cannot be read is
  /// dropped with a log line; an error means nothing saved could be read at all (the caller
  /// reports it: no saved intent is then in force). Blocks on the store.
  virtual Result<Intents> Load() = 0;

  /// Replaces what is saved with `intents` (clusters without intent may be left out), so that a
  /// reader sees the old or the new whole, never a part. Blocks on the store.
  virtual Result<void> Save(const Intents& intents) = 0;
};

/// A JSON file (`state.json`): written to a temporary file beside it, synced, renamed over.
class FileIntentStore final : public IntentStore {
 public:
  explicit FileIntentStore(std::string path) : path_(std::move(path)) {}
  Result<Intents> Load() override;
  Result<void> Save(const Intents& intents) override;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

/// The saved form of `intents` (what state.json holds, and the etcd intent key's value).
std::string IntentsToJson(const Intents& intents);
/// The inverse of IntentsToJson; an entry that cannot be read is dropped with a log line; an
/// error when the whole cannot be read (kParse).
Result<Intents> IntentsFromJson(const std::string& text);

/// What `serve` checks before it starts: kConfig when what `store` (at `where`, for the message)
/// holds cannot be read at all, such as a corrupt state.json. The service then refuses to start
/// rather than run without the operators' pauses and overrides (the Controller alone would
/// report and ignore them). Entries it can read partly are not an error (see Load).
Result<void> RequireReadableIntent(IntentStore& store, const std::string& where);

/// `<directory of journal.path>/state.json`; "" when journal.path is empty (no persistence).
std::string StatePathFor(const config::JournalConfig& journal);

}  // namespace ra::autoscaler
