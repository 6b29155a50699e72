#include "haproxy_dataplane/server_status.h"

#include <charconv>

namespace ra::haproxy {

std::string_view ToString(AdminState state) {
  switch (state) {
    case AdminState::kReady:
      return "ready";
    case AdminState::kDrain:
      return "drain";
    case AdminState::kMaint:
      return "maint";
  }
  return "unknown";
}

Result<AdminState> ParseAdminState(std::string_view text) {
  if (text == "ready") return AdminState::kReady;
  if (text == "drain") return AdminState::kDrain;
  if (text == "maint") return AdminState::kMaint;
  return Fail(ErrorKind::kParse, "unknown admin state '" + std::string(text) + "'");
}

namespace {

bool ParseInt(std::string_view text, int* out) {
  if (text.empty()) return false;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && ptr == text.data() + text.size();
}

// "1/3" -> 1, 3.
bool ParseFraction(std::string_view text, int* step, int* of) {
  const size_t slash = text.find('/');
  return slash != std::string_view::npos && ParseInt(text.substr(0, slash), step) &&
         ParseInt(text.substr(slash + 1), of);
}

}  // namespace

Result<ServerStatus> ParseServerStatus(std::string_view text) {
  ServerStatus status;
  status.raw = std::string(text);
  auto bad = [&] {
    return Fail(ErrorKind::kParse, "unrecognised HAProxy server status '" + status.raw + "'");
  };
  if (text == "no check") {
    status.health = Health::kUp;
    status.health_checked = false;
    return status;
  }
  // WORD [n/m] [(detail)]
  std::string_view rest = text;
  const size_t space = rest.find(' ');
  const std::string_view word = rest.substr(0, space);
  rest = space == std::string_view::npos ? std::string_view() : rest.substr(space + 1);
  std::string_view detail;
  if (const size_t open = rest.find('('); open != std::string_view::npos) {
    if (rest.back() != ')') return bad();
    detail = rest.substr(open + 1, rest.size() - open - 2);
    rest = rest.substr(0, open);
    while (!rest.empty() && rest.back() == ' ') rest.remove_suffix(1);
  }
  if (!rest.empty() && !ParseFraction(rest, &status.transition_step, &status.transition_of)) {
    return bad();
  }
  if (word == "UP") {
    status.health = Health::kUp;
  } else if (word == "DOWN") {
    status.health = Health::kDown;
  } else if (word == "NOLB") {
    status.health = Health::kUp;
    status.nolb = true;
  } else if (word == "DRAIN") {
    status.health = Health::kUp;
    status.drain = true;
    status.via_agent = std::string(detail);
    detail = {};
  } else if (word == "MAINT") {
    status.maint = true;
    if (detail.starts_with("via ")) detail.remove_prefix(4);
    status.maint_via = std::string(detail);
    detail = {};
  } else {
    return bad();
  }
  // Only MAINT and DRAIN carry a parenthesised detail ("(agent)" is also HAProxy's for UP/DOWN
  // changed by an agent check).
  if (!detail.empty() && detail != "agent") return bad();
  return status;
}

CheckStatus ParseCheckStatus(std::string_view text) {
  CheckStatus check;
  check.raw = std::string(text);
  if (text.starts_with("* ")) {
    check.in_progress = true;
    text.remove_prefix(2);
  }
  check.code = std::string(text);
  check.completed = !check.code.empty() && check.code != "INI";
  check.passed =
      check.code == "L4OK" || check.code == "L6OK" || check.code == "L7OK" || check.code == "L7OKC";
  return check;
}

}  // namespace ra::haproxy
