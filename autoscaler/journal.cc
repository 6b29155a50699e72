#include "autoscaler/journal.h"

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <system_error>

#include "core/duration.h"
#include "core/log.h"

namespace ra::autoscaler {

namespace {

namespace fs = std::filesystem;

// Details are free-form figures from many callers; a token that slipped into one must not
// reach the file or the API any more than one in the message.
void RedactDetails(nlohmann::json& value) {
  if (value.is_object()) {
    for (auto& [key, item] : value.items()) {
      if (log::IsSecretName(key) && !item.is_null()) {
        item = "***";
      } else {
        RedactDetails(item);
      }
    }
  } else if (value.is_array()) {
    for (auto& item : value) RedactDetails(item);
  } else if (value.is_string()) {
    value = log::Redact(value.get_ref<const std::string&>());
  }
}

std::string ErrnoText(int err) { return std::error_code(err, std::system_category()).message(); }

std::string RotatedName(const std::string& path, int index) {
  return path + "." + std::to_string(index);
}

}  // namespace

nlohmann::json ToJson(const Event& event) {
  nlohmann::json out = nlohmann::json::object();
  out["at"] = FormatTime(event.at);
  const auto put = [&out](const char* key, const std::string& value) {
    if (!value.empty()) out[key] = value;
  };
  put("cluster", event.cluster);
  put("replica", event.replica);
  put("type", event.type);
  put("action", event.action);
  put("result", event.result);
  put("message", event.message);
  if (!event.details.is_null() && !(event.details.is_object() && event.details.empty())) {
    out["details"] = event.details;
  }
  return out;
}

EventJournal::EventJournal(config::JournalConfig config, size_t memory_limit)
    : config_(std::move(config)), memory_limit_(memory_limit) {
  if (config_.path.empty()) return;
  std::lock_guard lock(mu_);
  OpenLocked();
}

EventJournal::~EventJournal() {
  std::lock_guard lock(mu_);
  if (file_ != nullptr) std::fclose(file_);
  file_ = nullptr;
}

void EventJournal::ReportWriteErrorLocked(const std::string& what) {
  if (write_error_reported_) return;
  write_error_reported_ = true;
  // Once per outage: a full disk would otherwise turn every event into a log line.
  log::Warn("event journal cannot write its file; events are kept in memory only",
            {{"path", config_.path}, {"error", what}});
}

bool EventJournal::OpenLocked() {
  if (file_ != nullptr) return true;
  std::error_code ec;
  const fs::path path(config_.path);
  if (path.has_parent_path()) {
    fs::create_directories(path.parent_path(), ec);
    if (ec) {
      ReportWriteErrorLocked("cannot create folder " + path.parent_path().string() + ": " +
                             ec.message());
      return false;
    }
  }
  file_ = std::fopen(config_.path.c_str(), "a");
  if (file_ == nullptr) {
    ReportWriteErrorLocked("cannot open " + config_.path + ": " + ErrnoText(errno));
    return false;
  }
  // Appending to what a previous run wrote: its size counts towards the next rotation.
  const auto size = fs::file_size(path, ec);
  file_bytes_ = ec ? 0 : static_cast<int64_t>(size);
  return true;
}

void EventJournal::RotateIfNeededLocked(size_t next_line_bytes) {
  if (file_bytes_ == 0) return;  // a single line larger than the limit still gets written
  if (file_bytes_ + static_cast<int64_t>(next_line_bytes) <= config_.max_size_bytes) return;
  if (file_ != nullptr) std::fclose(file_);
  file_ = nullptr;
  std::error_code ec;
  const int keep = config_.keep;
  if (keep <= 0) {
    fs::remove(config_.path, ec);
  } else {
    fs::remove(RotatedName(config_.path, keep), ec);
    for (int i = keep - 1; i >= 1; --i) {
      const std::string from = RotatedName(config_.path, i);
      if (fs::exists(from, ec)) fs::rename(from, RotatedName(config_.path, i + 1), ec);
    }
    fs::rename(config_.path, RotatedName(config_.path, 1), ec);
  }
  if (ec) ReportWriteErrorLocked("cannot rotate " + config_.path + ": " + ec.message());
  file_bytes_ = 0;
}

void EventJournal::Append(Event event) {
  event.message = log::Redact(event.message);
  RedactDetails(event.details);

  std::string line;
  try {
    // Replacement characters instead of an exception for a message with invalid UTF-8.
    line = ToJson(event).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } catch (...) {
    line = nlohmann::json{{"at", FormatTime(event.at)}, {"type", "journal_error"}}.dump();
  }
  line += '\n';

  std::lock_guard lock(mu_);
  if (!config_.path.empty()) {
    RotateIfNeededLocked(line.size());
    if (OpenLocked()) {
      const size_t written = std::fwrite(line.data(), 1, line.size(), file_);
      const bool flushed = std::fflush(file_) == 0;
      if (written == line.size() && flushed) {
        file_bytes_ += static_cast<int64_t>(written);
        if (write_error_reported_) {
          write_error_reported_ = false;
          log::Info("event journal writes its file again", {{"path", config_.path}});
        }
      } else {
        const int err = errno;
        file_bytes_ += static_cast<int64_t>(written);
        // Reopened on the next event: the disk may have room again by then.
        std::fclose(file_);
        file_ = nullptr;
        ReportWriteErrorLocked("cannot write " + config_.path + ": " + ErrnoText(err));
      }
    }
  }
  if (memory_limit_ == 0) return;
  recent_.push_back(std::move(event));
  while (recent_.size() > memory_limit_) recent_.pop_front();
}

std::vector<Event> EventJournal::Recent(const std::string& cluster, size_t limit,
                                        std::optional<TimePoint> since) const {
  std::lock_guard lock(mu_);
  std::vector<Event> out;
  for (auto it = recent_.rbegin(); it != recent_.rend() && out.size() < limit; ++it) {
    if (!cluster.empty() && it->cluster != cluster) continue;
    if (since && it->at < *since) continue;
    out.push_back(*it);
  }
  std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace ra::autoscaler
