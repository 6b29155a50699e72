#include "autoscaler/intent_store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/duration.h"
#include "core/log.h"

namespace ra::autoscaler {

namespace {

constexpr int kStateVersion = 1;

int64_t UnixMillis(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// Writes `text` to `path` so that a reader (or a restart after a crash) sees either the old
// file or the new one, never a part: a temporary file beside it, flushed, then renamed over.
Result<void> WriteAtomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  // O_NOFOLLOW: a link planted at the temporary name must not redirect the write.
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
  if (fd < 0) {
    return Fail(ErrorKind::kInternal,
                fmt::format("cannot create {}: {}", tmp, std::strerror(errno)));
  }
  size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return Fail(ErrorKind::kInternal, fmt::format("cannot write {}: {}", tmp, why));
    }
    written += static_cast<size_t>(n);
  }
  const bool synced = ::fsync(fd) == 0;
  const std::string sync_error = synced ? std::string() : std::strerror(errno);
  ::close(fd);
  if (!synced) {
    ::unlink(tmp.c_str());
    return Fail(ErrorKind::kInternal, fmt::format("cannot sync {}: {}", tmp, sync_error));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    ::unlink(tmp.c_str());
    return Fail(ErrorKind::kInternal,
                fmt::format("cannot rename {} to {}: {}", tmp, path, ec.message()));
  }
  // The rename itself lives in the directory: sync it too, or a crash could bring the old file
  // back. A failure here loses at most this change on a crash, so it is not an error.
  const std::string dir = std::filesystem::path(path).parent_path().string();
  if (const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

/// One saved override; nullopt (logged) when it cannot be read.
std::optional<policies::ManualOverride> ReadOverride(const std::string& cluster,
                                                     const nlohmann::json& o) {
  const auto replicas = o.find("replicas");
  if (replicas == o.end() || !replicas->is_number_integer() || replicas->get<int64_t>() < 0 ||
      replicas->get<int64_t>() > 1'000'000) {
    log::Warn("saved override without a replica count dropped", {{"cluster", cluster}});
    return std::nullopt;
  }
  policies::ManualOverride manual;
  manual.replicas = replicas->get<int>();
  if (const auto r = o.find("reason"); r != o.end() && r->is_string()) manual.reason = *r;
  const auto e = o.find("expires_at_unix_ms");
  if (e == o.end()) return manual;
  // Milliseconds within ±10^14 (about 3000 years) convert to the clock's nanoseconds safely.
  // An expiry that cannot be read must not make the override permanent: dropped.
  constexpr int64_t kLimit = 100'000'000'000'000;
  int64_t ms = 0;
  bool readable = false;
  if (e->is_number_unsigned()) {  // how the parser reads any non-negative integer
    readable = e->get<uint64_t>() < static_cast<uint64_t>(kLimit);
    ms = readable ? static_cast<int64_t>(e->get<uint64_t>()) : 0;
  } else if (e->is_number_integer()) {
    ms = e->get<int64_t>();
    readable = ms > -kLimit && ms < kLimit;
  }
  if (!readable) {
    log::Warn("saved override with an unreadable expiry dropped",
              {{"cluster", cluster}, {"expires_at_unix_ms", e->dump()}});
    return std::nullopt;
  }
  manual.expires_at =
      TimePoint(std::chrono::duration_cast<Duration>(std::chrono::milliseconds(ms)));
  return manual;
}

/// The saved decisions of one cluster (replica -> {at_unix_ms}); an entry that cannot be read
/// is dropped (logged): its replica is then not observed in the time-to-serve histogram, which
/// is better than a value from a garbled time.
std::map<std::string, TimePoint> ReadDecided(const std::string& cluster, const nlohmann::json& d) {
  std::map<std::string, TimePoint> out;
  for (const auto& [replica, entry] : d.items()) {
    const auto at = entry.is_object() ? entry.find("at_unix_ms") : entry.end();
    // Within ±10^14 ms, as an override's expiry (ReadOverride); negative is no decision time.
    if (replica.empty() || at == entry.end() || !at->is_number_unsigned() ||
        at->get<uint64_t>() >= uint64_t{100'000'000'000'000}) {
      log::Warn("saved decision time that cannot be read dropped",
                {{"cluster", cluster}, {"replica", replica}});
      continue;
    }
    out[replica] = TimePoint(std::chrono::duration_cast<Duration>(
        std::chrono::milliseconds(static_cast<int64_t>(at->get<uint64_t>()))));
  }
  return out;
}

}  // namespace

std::string StatePathFor(const config::JournalConfig& journal) {
  if (journal.path.empty()) return "";
  return (std::filesystem::path(journal.path).parent_path() / "state.json").string();
}

Result<void> RequireReadableIntent(IntentStore& store, const std::string& where) {
  Result<Intents> loaded = store.Load();
  if (loaded) return {};
  return Fail(ErrorKind::kConfig,
              fmt::format("the saved operator state in {} cannot be read ({}); it holds the "
                          "clusters' pauses and manual counts, so the service does not start "
                          "without it: repair the file, or move it aside to start with no pause "
                          "and no override in force",
                          where, loaded.error().message));
}

Result<Intents> IntentsFromJson(const std::string& text) {
  Intents intents;
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Fail(ErrorKind::kParse, "it is not valid JSON");
  if (!doc.is_object() || !doc.contains("clusters") || !doc["clusters"].is_object()) {
    return Fail(ErrorKind::kParse, "it has no 'clusters' object");
  }
  const auto version = doc.find("version");
  if (version == doc.end() || !version->is_number_integer() ||
      version->get<int64_t>() != kStateVersion) {
    return Fail(
        ErrorKind::kParse,
        fmt::format("version {} is not {}",
                    version == doc.end() ? std::string("(none)") : version->dump(), kStateVersion));
  }
  for (const auto& [name, entry] : doc["clusters"].items()) {
    if (!entry.is_object()) {
      log::Warn("operator state of a cluster that is not an object dropped", {{"cluster", name}});
      continue;
    }
    ClusterIntent& intent = intents[name];
    if (const auto it = entry.find("paused"); it != entry.end() && it->is_boolean() && *it) {
      intent.paused = true;
      const auto reason = entry.find("paused_reason");
      intent.paused_reason =
          reason != entry.end() && reason->is_string() ? reason->get<std::string>() : std::string();
    }
    if (const auto o = entry.find("override"); o != entry.end() && o->is_object()) {
      intent.manual = ReadOverride(name, *o);
    }
    if (const auto d = entry.find("decided"); d != entry.end() && d->is_object()) {
      intent.decided = ReadDecided(name, *d);
    }
  }
  return intents;
}

Result<Intents> FileIntentStore::Load() {
  Intents intents;
  std::error_code ec;
  if (path_.empty() || !std::filesystem::exists(path_, ec)) return intents;  // nothing saved yet
  std::ifstream in(path_, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in.good() && !in.eof()) return Fail(ErrorKind::kInternal, "it could not be read");
  return IntentsFromJson(text.str());
}

std::string IntentsToJson(const Intents& intents) {
  nlohmann::json clusters = nlohmann::json::object();
  for (const auto& [name, intent] : intents) {
    nlohmann::json entry = nlohmann::json::object();
    if (intent.paused) {
      entry["paused"] = true;
      entry["paused_reason"] = intent.paused_reason;
    }
    if (intent.manual) {
      nlohmann::json o{{"replicas", intent.manual->replicas}, {"reason", intent.manual->reason}};
      if (intent.manual->expires_at) {
        o["expires_at_unix_ms"] = UnixMillis(*intent.manual->expires_at);
        o["expires_at"] = FormatTime(*intent.manual->expires_at);  // for people reading it
      }
      entry["override"] = std::move(o);
    }
    if (!intent.decided.empty()) {
      nlohmann::json decided = nlohmann::json::object();
      for (const auto& [replica, at] : intent.decided) {
        decided[replica] = {{"at_unix_ms", UnixMillis(at)}, {"at", FormatTime(at)}};
      }
      entry["decided"] = std::move(decided);
    }
    if (!entry.empty()) clusters[name] = std::move(entry);
  }
  const nlohmann::json doc{{"version", kStateVersion}, {"clusters", std::move(clusters)}};
  return doc.dump(2) + "\n";
}

Result<void> FileIntentStore::Save(const Intents& intents) {
  return WriteAtomically(path_, IntentsToJson(intents));
}

}  // namespace ra::autoscaler
