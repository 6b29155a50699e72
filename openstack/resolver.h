#pragma once

#include <string>
#include <vector>

#include "core/result.h"
#include "openstack/cloud_provider.h"
#include "openstack/session.h"

/// Turns what the configuration names "by name or id" (flavor, image, networks, the donor server
/// and its data volume) into the ids the Nova and Cinder calls need. Meant to run at start-up
/// (and when the configuration is reloaded), not every cycle.
namespace ra::openstack {

struct ResolvedTemplate {
  std::string flavor_id;
  std::string image_id;                  ///< "" when no image was configured (boot from the volume)
  std::vector<std::string> network_ids;  ///< in the configured order
};

/// Resolves a replica template:
///  - flavor: GET /flavors/{value} (Nova); when that is 404, the flavor whose name is exactly
///    `value` among GET /flavors/detail (every page).
///  - image (may be empty): a UUID-looking value is tried as an id first (Glance
///    GET /v2/images/{id}); otherwise, or when that is 404, GET /v2/images?name=value, and the
///    one active image of that exact name.
///  - networks: a UUID-looking value is tried as an id first (Neutron GET /v2.0/networks/{id});
///    otherwise, or when that is 404, GET /v2.0/networks?name=value.
/// A name that matches nothing, or more than one resource, is kConfig with a message naming
/// what was looked for and the candidates ("2 images named 'x' (id1, id2): use an id").
/// Cloud errors (kAuth, kTransient, ...) are returned as they come. Blocks for a few requests;
/// read-only, so safe to call again.
Result<ResolvedTemplate> ResolveTemplate(Session& session, const std::string& flavor,
                                         const std::string& image,
                                         const std::vector<std::string>& networks);

/// The id of the donor's data volume. `server` is a Nova server id (GET /servers/{id}) or exact
/// name (GET /servers/detail?name=^name$, then filtered for an exact match: Nova's filter is a
/// regular expression). Its attached volumes (os-extended-volumes:volumes_attached) are read
/// from Cinder (GET /volumes/{id}).
///  - `volume` given (id or exact name): it must be one of the attached volumes.
///  - `volume` empty: the only attached volume that is not the boot volume (a volume counts as
///    the boot volume when Cinder says bootable "true" or it is attached as /dev/vda).
/// Anything else is kConfig with a specific message, e.g. "donor server 'x' has 2 data volumes
/// (a, b): set clusters[].donor.volume". Blocks for a few requests; read-only.
Result<std::string> ResolveDonorVolume(Session& session, const std::string& server,
                                       const std::string& volume = "");

/// The donor as ResolveDonorVolume finds it, with its server's id and address: the service
/// excludes that server from its own by id, never by the configured name.
Result<DonorFacts> ResolveDonor(Session& session, const std::string& server,
                                const std::string& volume = "");

/// True for an id as OpenStack writes UUIDs: 8-4-4-4-12 hex digits, or 32 hex digits.
bool LooksLikeUuid(std::string_view text);

}  // namespace ra::openstack
