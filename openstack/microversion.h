#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "core/result.h"

/// Microversions, negotiated from the services' version documents instead of pinned.
///
/// Nova answers GET /v2.1/ with {"version": {"version": "2.93", "min_version": "2.1"}}, Cinder
/// answers GET /v3/ with {"versions": [{"id": "v3.0", "version": "3.70", "min_version": "3.0"}]}.
/// The client asks for the least microversion that has every feature it uses (so the answers'
/// shapes do not change under it when a cloud is upgraded) and refuses, naming both versions,
/// a service that cannot give it.
namespace ra::openstack {

/// The least microversion each service must offer, and why.
struct MicroversionNeed {
  std::string_view version;  ///< "2.52"
  std::string_view reason;   ///< "tags at server creation"
};
inline constexpr MicroversionNeed kComputeNeed{"2.52", "tags at server creation"};
inline constexpr MicroversionNeed kVolumeNeed{"3.22", "snapshot lists filtered by metadata"};

/// "2.52" -> {2, 52}; nullopt for anything else.
std::optional<std::pair<int, int>> ParseMicroversion(std::string_view text);

/// Where the version document of a service's endpoint is: the endpoint cut after its version
/// segment ("…/v2.1/<project>" -> "…/v2.1/", "…/v3/<project>" -> "…/v3/"); nullopt when the
/// endpoint has no such segment. kConfig for Nova's legacy "/v2/" endpoint (no microversions).
Result<std::optional<std::string>> VersionDocumentUrl(const std::string& endpoint, bool compute);

/// The microversion to send, from a version document's JSON text: `need` when the service's
/// range holds it, its min_version when that is higher (and still within the range); kConfig
/// naming the service's range otherwise, or when the document announces no microversions;
/// kParse when it is not a version document.
Result<std::string> ChooseMicroversion(const std::string& document, bool compute,
                                       const MicroversionNeed& need, const std::string& url);

}  // namespace ra::openstack
