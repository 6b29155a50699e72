#pragma once

#include <fmt/format.h>

#include <ostream>
#include <string>

#include "core/log.h"

namespace ra {

/// A secret value (password, token, application-credential secret). Constructing one registers
/// it with the logger, so it is redacted from every log line; formatting or streaming it prints
/// "***". Only Reveal() gives the value, at the one place that sends it to its owner.
class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string value) : value_(std::move(value)) { log::RegisterSecret(value_); }
  /// A value replaced over time (a Keystone token): registered with RegisterEphemeralSecret.
  struct Ephemeral {};
  Secret(std::string value, Ephemeral) : value_(std::move(value)) {
    log::RegisterEphemeralSecret(value_);
  }

  const std::string& Reveal() const { return value_; }
  bool empty() const { return value_.empty(); }

  friend std::ostream& operator<<(std::ostream& os, const Secret&) { return os << "***"; }
  friend bool operator==(const Secret&, const Secret&) = default;

 private:
  std::string value_;
};

}  // namespace ra

template <>
struct fmt::formatter<ra::Secret> : fmt::formatter<std::string_view> {
  template <typename Ctx>
  auto format(const ra::Secret&, Ctx& ctx) const {
    return fmt::formatter<std::string_view>::format("***", ctx);
  }
};
