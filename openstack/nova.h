#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "openstack/session.h"

namespace ra::openstack {

/// POST /servers for a replica: the system disk from the image, the data disk an existing volume.
///
/// Nova boots from the block device mapping with boot_index 0 and adds no image disk of its own
/// when block_device_mapping_v2 is given (only its CLI inserts one), so the request carries both
/// mappings: {image -> local, boot_index 0} and {volume -> volume, boot_index -1}. A volume at
/// boot_index 0 would make the PGDATA clone the root disk, and the server would never come up.
struct ServerCreate {
  std::string name;
  std::string flavor_ref;  ///< flavor id
  std::string image_ref;   ///< the system disk (required): imageRef and the boot_index 0 mapping
  /// The data disk, attached as a non-boot volume (boot_index -1); empty: none.
  std::string data_volume_id;
  bool delete_volume_on_termination = false;
  std::vector<std::string> network_ids;  ///< networks: [{"uuid": ...}]; empty -> "auto"
  /// networks: "none": a server without a port, for test clouds without Neutron (the contract
  /// suite's); the service never sets it.
  bool without_network = false;
  std::vector<std::string> security_groups;
  std::string availability_zone;
  std::string key_name;
  std::vector<std::string> tags;  ///< at most 50; no ',' or '/'; up to 60 characters each
  std::map<std::string, std::string> metadata;
  std::string user_data;  ///< plain text; base64-encoded on the wire
};

struct ServerAddress {
  std::string network;
  std::string address;
  int version = 4;
  std::string type;  ///< fixed, floating
};

struct Server {
  std::string id;
  std::string name;
  std::string status;  ///< BUILD, ACTIVE, ERROR, SHUTOFF, DELETED, ...
  std::string task_state;
  std::string availability_zone;
  std::vector<ServerAddress> addresses;
  std::map<std::string, std::string> metadata;
  std::vector<std::string> tags;
  std::vector<std::string> volume_ids;  ///< os-extended-volumes:volumes_attached
  std::optional<TimePoint> created;
  std::string fault_message;  ///< set when status is ERROR and Nova says why
  int fault_code = 0;

  /// The first fixed IPv4 address, "" if none yet.
  std::string FixedIpv4() const;
};

struct AvailabilityZone {
  std::string name;
  bool available = false;
};

/// Nova's absolute limits; -1 means unlimited.
struct ComputeLimits {
  int max_instances = -1;
  int used_instances = 0;
  int max_cores = -1;
  int used_cores = 0;
  int max_ram_mb = -1;
  int used_ram_mb = 0;
};

/// Nova v2.1 with the session's pinned microversion (>= 2.52). Every call blocks for one
/// request and its retries. Thread-safe.
class NovaClient {
 public:
  explicit NovaClient(Session& session) : session_(session) {}

  /// Boots a server. Not idempotent (Nova has no request token): callers look for a server of
  /// the same name and tags before calling again. The answer holds the id; status is BUILD.
  Result<Server> CreateServer(const ServerCreate& create);
  /// kNotFound when it does not exist (or is deleted).
  Result<Server> GetServer(const std::string& id);
  /// Servers carrying all `tags` (GET /servers/detail?tags=...), every page. Tags are used
  /// because Nova ignores ?metadata= for non-admin users and returns everything.
  Result<std::vector<Server>> ListServersByTags(const std::vector<std::string>& tags);
  /// Idempotent: a server that is already gone is success.
  Result<void> DeleteServer(const std::string& id);
  Result<std::vector<AvailabilityZone>> ListAvailabilityZones();
  Result<ComputeLimits> GetLimits();

  /// Parses one server object of Nova's answer (exposed for tests).
  static Result<Server> ParseServer(const nlohmann::json& server);

 private:
  Session& session_;
};

/// Checks a Nova tag: 1..60 characters, no ',' and no '/'. kBadRequest otherwise.
Result<void> ValidateTag(std::string_view tag);

}  // namespace ra::openstack
