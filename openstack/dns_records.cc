#include "openstack/dns_records.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>

namespace ra::openstack {

namespace {

std::string Lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

std::string WithDot(std::string name) {
  if (!name.empty() && name.back() != '.') name += '.';
  return name;
}

bool IsIpv4(const std::string& address) {
  in_addr parsed{};
  return inet_pton(AF_INET, address.c_str(), &parsed) == 1;
}

}  // namespace

DnsRecords::DnsRecords(DesignateClient& client, std::string zone_name, int ttl)
    : client_(client), zone_name_(WithDot(Lower(std::move(zone_name)))), ttl_(ttl) {}

Result<std::string> DnsRecords::ZoneId() {
  std::lock_guard lock(mu_);
  if (!zone_id_.empty()) return zone_id_;
  auto id = client_.FindZone(zone_name_);
  if (!id) return Fail(id.error());
  zone_id_ = *id;
  return zone_id_;
}

void DnsRecords::ForgetZoneIfGone(const Error& error) {
  // A zone deleted and made again has a new id: look it up afresh next time.
  if (error.kind != ErrorKind::kNotFound) return;
  std::lock_guard lock(mu_);
  zone_id_.clear();
}

Result<std::vector<Recordset>> DnsRecords::LiveRecordsets(const std::string& zone_id,
                                                          const std::string& fqdn) {
  auto listed = client_.ListRecordsets(zone_id, fqdn, "A");
  if (!listed) {
    ForgetZoneIfGone(listed.error());
    return Fail(listed.error());
  }
  // Exact names only (compared without case, with the trailing dot), and not one being deleted.
  std::erase_if(*listed, [&fqdn](const Recordset& r) {
    return Lower(WithDot(r.name)) != fqdn || r.action == "DELETE";
  });
  return listed;
}

Result<std::string> DnsRecords::RecordFqdn(const std::string& record_name) const {
  const std::string name = WithDot(Lower(record_name));
  if (zone_name_ == ".") return Fail(ErrorKind::kConfig, "dns: the zone name is empty");
  if (name.size() <= zone_name_.size() + 1 ||
      name.compare(name.size() - zone_name_.size() - 1, std::string::npos, "." + zone_name_) != 0) {
    return Fail(ErrorKind::kConfig, fmt::format("dns: record '{}' is not a name inside zone '{}'",
                                                record_name, zone_name_));
  }
  return name;
}

Result<void> DnsRecords::Ensure(const std::string& record_name, const std::string& address) {
  auto name = RecordFqdn(record_name);
  if (!name) return Fail(name.error());
  if (!IsIpv4(address)) {
    return Fail(
        ErrorKind::kBadRequest,
        fmt::format("dns: address '{}' of record '{}' is not an IPv4 address", address, *name));
  }
  auto zone = ZoneId();
  if (!zone) return Fail(zone.error());
  // Twice at most: a create that loses a race with another writer (409) is followed by one
  // more look at what is there now.
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto existing = LiveRecordsets(*zone, *name);
    if (!existing) return Fail(existing.error());
    for (const Recordset& r : *existing) {
      if (r.records == std::vector<std::string>{address}) return {};
      auto updated = client_.UpdateRecordset(*zone, r.id, {address}, ttl_);
      if (!updated) return Fail(updated.error());
      return {};
    }
    auto created = client_.CreateARecordset(*zone, *name, {address}, ttl_);
    if (created) return {};
    if (created.error().kind != ErrorKind::kConflict) return Fail(created.error());
  }
  return Fail(ErrorKind::kConflict,
              fmt::format("dns: record '{}' could not be created or found (Designate answered "
                          "'duplicate' but does not list it)",
                          *name));
}

Result<void> DnsRecords::Remove(const std::string& record_name) {
  auto name = RecordFqdn(record_name);
  if (!name) return Fail(name.error());
  auto zone = ZoneId();
  if (!zone) return Fail(zone.error());
  auto existing = LiveRecordsets(*zone, *name);
  if (!existing) return Fail(existing.error());
  for (const Recordset& r : *existing) {
    if (auto deleted = client_.DeleteRecordset(*zone, r.id); !deleted) {
      return Fail(deleted.error());
    }
  }
  return {};
}

}  // namespace ra::openstack
