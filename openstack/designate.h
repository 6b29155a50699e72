#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/result.h"
#include "openstack/session.h"

namespace ra::openstack {

struct Recordset {
  std::string id;
  std::string zone_id;
  std::string name;  ///< fully qualified, with the trailing dot
  std::string type;
  std::vector<std::string> records;
  std::string status;  ///< PENDING, ACTIVE, ERROR
  std::string action;  ///< NONE, CREATE, UPDATE, DELETE (what is pending)
  int ttl = 0;         ///< 0 when the zone's default applies
};

/// Designate v2 A records. Every call blocks for one request and its retries. Thread-safe.
class DesignateClient {
 public:
  explicit DesignateClient(Session& session) : session_(session) {}

  /// The id of the zone named `zone_name` ("example.com." — the trailing dot is added when
  /// missing). kNotFound when the project has no such zone.
  Result<std::string> FindZone(const std::string& zone_name);
  /// Creates an A recordset `name` (fully qualified; trailing dot added) with `addresses`.
  /// Not idempotent: a second call for the same name fails with kConflict (Designate's 409),
  /// which callers treat as "already there".
  Result<Recordset> CreateARecordset(const std::string& zone_id, const std::string& name,
                                     const std::vector<std::string>& addresses, int ttl);
  /// Recordsets of the zone named exactly `name` (fully qualified; trailing dot added) and, when
  /// `type` is not empty, of that type (GET /v2/zones/{zone}/recordsets?name=&type=, every
  /// page). Read-only.
  Result<std::vector<Recordset>> ListRecordsets(const std::string& zone_id, const std::string& name,
                                                const std::string& type = "A");
  /// Replaces the records (and the TTL when > 0) of an existing recordset (PUT). Idempotent.
  /// kNotFound when the recordset is gone.
  Result<Recordset> UpdateRecordset(const std::string& zone_id, const std::string& recordset_id,
                                    const std::vector<std::string>& records, int ttl);
  /// Idempotent: a recordset already gone is success.
  Result<void> DeleteRecordset(const std::string& zone_id, const std::string& recordset_id);

  /// Parses one recordset of Designate's answers (exposed for tests).
  static Result<Recordset> ParseRecordset(const nlohmann::json& recordset);

 private:
  Session& session_;
};

}  // namespace ra::openstack
