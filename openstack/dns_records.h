#pragma once

#include <mutex>
#include <string>

#include "core/result.h"
#include "openstack/designate.h"

namespace ra::openstack {

/// One A record per admitted replica in a Designate zone. Thread-safe; every call blocks for a
/// few Designate requests and their retries.
class DnsRecords {
 public:
  /// `zone_name` with or without the trailing dot; `ttl` in seconds (0: the zone's default).
  /// Nothing is requested until the first call.
  DnsRecords(DesignateClient& client, std::string zone_name, int ttl);

  /// Makes `record_name` (a fully qualified name inside the zone, trailing dot optional) an A
  /// record holding exactly `address` (IPv4). Idempotent: an existing recordset with that
  /// address is kept as it is; one with other addresses is updated in place (no moment without
  /// a record). kConfig for a name outside the zone, kBadRequest for an address that is not
  /// IPv4; cloud errors as they come. The zone's id is looked up on first use and cached.
  Result<void> Ensure(const std::string& record_name, const std::string& address);

  /// Deletes the A recordset `record_name`. Idempotent: absent (or already being deleted) is
  /// success.
  Result<void> Remove(const std::string& record_name);

  /// The zone name as used in requests, with its trailing dot.
  const std::string& zone_name() const { return zone_name_; }

 private:
  Result<std::string> ZoneId();
  Result<std::string> RecordFqdn(const std::string& record_name) const;
  void ForgetZoneIfGone(const Error& error);
  /// The zone's A recordsets named exactly `fqdn` and not being deleted.
  Result<std::vector<Recordset>> LiveRecordsets(const std::string& zone_id,
                                                const std::string& fqdn);

  DesignateClient& client_;
  std::string zone_name_;
  int ttl_;
  std::mutex mu_;
  std::string zone_id_;  // guarded by mu_; "" until looked up
};

}  // namespace ra::openstack
