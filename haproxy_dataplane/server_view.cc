#include "haproxy_dataplane/server_view.h"

namespace ra::haproxy {

namespace {

lb::AdminState ToNeutral(AdminState state) {
  switch (state) {
    case AdminState::kReady:
      return lb::AdminState::kReady;
    case AdminState::kDrain:
      return lb::AdminState::kDraining;
    case AdminState::kMaint:
      return lb::AdminState::kMaint;
  }
  return lb::AdminState::kMaint;
}

lb::Health ToNeutral(Health health) {
  switch (health) {
    case Health::kUp:
      return lb::Health::kUp;
    case Health::kDown:
      return lb::Health::kDown;
    case Health::kUnknown:
      return lb::Health::kUnknown;
  }
  return lb::Health::kUnknown;
}

}  // namespace

lb::Member ToMember(const ServerView& server) {
  lb::Member member;
  member.name = server.name;
  member.address = server.address;
  member.port = server.port;
  member.admin = ToNeutral(server.admin_state);
  member.health = ToNeutral(server.status.health);
  member.serving = server.Serving();
  member.sessions = server.sessions;
  member.total_sessions = server.total_sessions;
  member.detail = server.status.raw.empty() ? std::string("no status") : server.status.raw;
  if (!server.check.code.empty()) member.detail += ", check " + server.check.code;
  return member;
}

}  // namespace ra::haproxy
