#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/result.h"
#include "openstack/options.h"

namespace ra::openstack {

/// Where LoadCloudConfig looks and what it sees; injected so tests need no real home or env.
struct CloudConfigSources {
  /// The environment (OS_CLOUD, OS_AUTH_URL, OS_CLIENT_CONFIG_FILE, ...).
  std::map<std::string, std::string> env;
  /// Files tried in order when OS_CLIENT_CONFIG_FILE is unset; the first that exists is used.
  /// DefaultSearchPath() gives the openstack CLI's: ./clouds.yaml,
  /// $HOME/.config/openstack/clouds.yaml, /etc/openstack/clouds.yaml.
  std::vector<std::string> search_path;
};

/// The openstack CLI's search path, for `home` ($HOME).
std::vector<std::string> DefaultSearchPath(const std::string& home);

/// The process's environment and the default search path.
CloudConfigSources SystemCloudConfigSources();

/// Builds the client's options the way the openstack CLI does: the clouds.yaml entry `cloud`
/// (or $OS_CLOUD when `cloud` is empty; secure.yaml beside it is merged in), then OS_*
/// variables on top (OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME, OS_PROJECT_ID,
/// OS_USER_DOMAIN_NAME, OS_PROJECT_DOMAIN_NAME, OS_REGION_NAME, OS_INTERFACE, OS_AUTH_TYPE,
/// OS_APPLICATION_CREDENTIAL_ID/_NAME/_SECRET, OS_CACERT, OS_INSECURE, ...). With no cloud
/// named and no clouds.yaml, the OS_* variables alone must be enough.
///
/// Reads files; never contacts the cloud. kConfig with the file, the cloud name and the
/// offending key on any problem (unknown cloud, unknown auth_type, wrong value types, missing
/// auth_url or credentials). Secrets come out as ra::Secret (registered for redaction).
Result<OpenStackOptions> LoadCloudConfig(const std::string& cloud,
                                         const CloudConfigSources& sources);

/// The same from a clouds.yaml document held in memory (`origin` names it in errors).
Result<OpenStackOptions> ParseCloudsYaml(const std::string& yaml_text, const std::string& cloud,
                                         const std::string& origin,
                                         const std::string& secure_yaml_text = "");

/// Applies OS_* variables on top of `options`.
Result<void> ApplyEnvironment(const std::map<std::string, std::string>& env,
                              OpenStackOptions& options);

/// Checks that options are complete enough to authenticate; kConfig naming the missing field.
Result<void> ValidateOptions(const OpenStackOptions& options);

}  // namespace ra::openstack
