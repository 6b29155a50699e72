#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/clock.h"
#include "core/http_transport.h"
#include "core/log.h"
#include "core/result.h"
#include "core/secret.h"
#include "policies/spec.h"

/// The service's one YAML configuration as plain data, and its loader. Every field, its default
/// and its rules are documented in docs/configuration.md; the defaults below are those.
namespace ra::config {

using namespace std::chrono_literals;

/// Where a secret lives. The file never holds the value itself: `password: {file: PATH}` or
/// `password: {env: NAME}`. Exactly one of `file` and `env` is set after a successful load.
struct SecretRef {
  std::string file{};  ///< absolute path (relative paths are resolved against the config's folder)
  std::string env{};   ///< environment variable name

  bool IsSet() const { return !file.empty() || !env.empty(); }
  /// "file /etc/x" or "environment variable X" (never the value).
  std::string Describe() const;
};

/// Looks up an environment variable; injectable so tests need not touch the process environment.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

/// The process environment.
std::optional<std::string> ProcessEnv(const std::string& name);

/// Reads the secret `ref` points at: the file's content or the variable's value, without one
/// trailing newline (CRLF or LF). The value is registered for log redaction (ra::Secret).
/// Errors (kConfig) name the file or variable, never the value: missing, not a regular file,
/// larger than 64 KiB, unreadable, unset or empty. Blocks on the file read; idempotent.
Result<Secret> ResolveSecret(const SecretRef& ref, const EnvLookup& env = ProcessEnv);

// ---------------------------------------------------------------------------------------------
// clouds

/// A reference to an entry of an OpenStack clouds.yaml.
struct CloudsYamlRef {
  std::string cloud{};  ///< the entry's name under `clouds:`
  /// Absolute path; empty means the openstack CLI's search: $OS_CLIENT_CONFIG_FILE,
  /// ./clouds.yaml, ~/.config/openstack/clouds.yaml, /etc/openstack/clouds.yaml.
  std::string file{};
};

enum class CloudAuthType { kPassword, kApplicationCredential };

/// Keystone v3 credentials written in the service's own file (mirrors openstack::AuthOptions).
struct CloudAuth {
  CloudAuthType type = CloudAuthType::kPassword;
  std::string auth_url{};
  std::string user_id{};
  std::string username{};
  std::string user_domain_id{};
  std::string user_domain_name{};  ///< "Default" when neither user_domain_* is given
  SecretRef password{};
  std::string project_id{};
  std::string project_name{};
  std::string project_domain_id{};
  std::string project_domain_name{};  ///< empty: the user's domain
  std::string domain_id{};
  std::string domain_name{};
  std::string application_credential_id{};
  std::string application_credential_name{};
  SecretRef application_credential_secret{};
};

enum class CloudProfile {
  kOpenStack,  ///< a stock OpenStack: everything from the Keystone catalog
  kSberCloud,  ///< SberCloud / Cloud.ru (Huawei-based): endpoint overrides usually needed
};

struct Cloud {
  std::string name{};
  /// Exactly one of `clouds_yaml` and `auth` is set.
  std::optional<CloudsYamlRef> clouds_yaml{};
  std::optional<CloudAuth> auth{};
  /// With clouds_yaml, a value set here overrides the entry's; unset means the entry's (or, with
  /// inline auth, the default: region from the catalog, interface "public", TLS verified against
  /// the system store).
  std::optional<std::string> region{};
  std::optional<std::string> interface {};  ///< "public", "internal" or "admin"
  std::optional<bool> verify_tls{};
  std::optional<std::string> ca_bundle{};  ///< absolute path
  /// Service type ("compute", "volumev3", "block-storage", "dns", "image", "network") -> URL.
  std::map<std::string, std::string> endpoint_overrides{};
  /// The zones replicas may use; empty means "not declared" (zones are then not cross-checked).
  std::vector<std::string> availability_zones{};
  CloudProfile profile = CloudProfile::kOpenStack;
  double requests_per_second = 10;  ///< client-side rate limit; 0 disables it
  int burst = 20;
  int max_attempts = 5;  ///< per call, including the first
  Duration connect_timeout = 5s;
  Duration request_timeout = 30s;
};

// ---------------------------------------------------------------------------------------------
// load balancers, metrics

/// The kind of balancer a load_balancers entry is (`type:`); lb/factory.h builds each.
enum class LoadBalancerType {
  kHaproxyDataplane,  ///< HAProxy through its Data Plane API (the default)
};

enum class DataPlaneApiVersion { kAuto, kV2, kV3 };

/// One load balancer endpoint. Every field below `type` is a field of type haproxy_dataplane,
/// the only type today.
struct LoadBalancer {
  std::string name{};
  LoadBalancerType type = LoadBalancerType::kHaproxyDataplane;
  std::string url{};  ///< scheme://host:port, without /v2 or /v3
  DataPlaneApiVersion api_version = DataPlaneApiVersion::kAuto;
  std::string username{};
  SecretRef password{};
  /// connect/request timeouts, verify_tls, ca_bundle (request: 10s, as the Data Plane client's)
  HttpOptions http{.connect_timeout = 5s, .total_timeout = 10s};
  int version_conflict_retries = 5;  ///< a write re-read and retried after 409
  int transient_retries = 2;         ///< idempotent requests retried after 5xx, 429, resets
  Duration reload_timeout = 60s;     ///< how long an HAProxy reload may take
};

enum class MetricsAuthType { kNone, kBasic, kBearer };

/// The Prometheus-compatible source every metric policy queries (mirrors
/// policies::PrometheusSourceOptions).
struct MetricsSourceConfig {
  std::string url{};
  MetricsAuthType auth = MetricsAuthType::kNone;
  std::string username{};  ///< kBasic
  SecretRef password{};    ///< kBasic
  SecretRef token{};       ///< kBearer
  HttpHeaders headers{};   ///< extra non-secret headers (e.g. a tenant); never Authorization
  Duration timeout = 10s;  ///< one query's budget
  HttpOptions http{};      ///< connect timeout, verify_tls, ca_bundle
};

// ---------------------------------------------------------------------------------------------
// clusters

struct StaticPrimary {
  std::string host{};
  int port = 5432;
};

/// The primary is whichever member the Patroni REST API names leader.
struct PatroniPrimary {
  std::vector<std::string> members{};  ///< REST API base URLs, e.g. http://10.0.0.5:8008
  HttpOptions http{.connect_timeout = 2s, .total_timeout = 5s};
};

struct Donor {
  std::string server{};  ///< Nova server name or id: the replica whose data volume is snapshotted
  std::string volume{};  ///< Cinder volume name or id; empty: the server's only non-boot volume
};

/// What each new replica is built from.
struct ReplicaTemplate {
  std::string flavor{};
  std::string image{};
  std::vector<std::string> networks{};
  std::vector<std::string> security_groups{};
  std::vector<std::string> zones{};      ///< empty: Nova chooses
  std::string volume_type{};             ///< empty: the cloud's default
  std::optional<int> volume_size_gib{};  ///< empty: the snapshot's size
  std::string key_name{};
  /// Placeholders {cluster}, {id} (required; a short unique suffix chosen by the service) and
  /// {zone}.
  std::string name_template = "{cluster}-replica-{id}";
  std::vector<std::string> tags{};  ///< in addition to the service's ownership tags
  std::map<std::string, std::string> metadata{};
};

struct PostgresProbe {
  int port = 5432;
  std::string user{};
  SecretRef password{};  ///< optional (trust, .pgpass or certificates otherwise)
  std::string dbname = "postgres";
  std::string sslmode = "prefer";  ///< libpq sslmode
  Duration connect_timeout = 5s;
  /// A replica is admitted (and stays admitted) while its replay lag is at most both of these.
  int64_t max_lag_bytes = int64_t{16} << 20;
  Duration max_lag_time = 30s;
  /// A replica's WAL receiver must have heard from the primary within this long (its
  /// pg_stat_wal_receiver.last_msg_receipt_time): it pings an idle primary after half of
  /// wal_receiver_timeout (30 s by default), so a longer silence means the stream is dead.
  Duration max_receiver_silence = 1min;
};

struct HealthCheck {
  bool enabled = true;
  std::optional<int> port{};  ///< empty: the server port
  Duration interval = 2s;
  int fall = 3;
  int rise = 2;
};

/// How a cluster's replicas appear in HAProxy.
struct ClusterLoadBalancer {
  std::string name{};      ///< a key of Config::load_balancers
  std::string backend{};   ///< HAProxy backend holding the replicas
  int server_port = 5432;  ///< defaults to postgres.port
  int weight = 100;
  HealthCheck check{};
};

struct Snapshots {
  Duration interval = 6h;  ///< a new golden snapshot of the donor this often
  int keep = 3;            ///< newest snapshots kept; older ones are deleted
  Duration max_age = 24h;  ///< older snapshots are never used for new replicas
  /// How long the primary (or the WAL archive) keeps WAL; max_age must not exceed it.
  std::optional<Duration> wal_retention{};
};

struct Dns {
  std::string zone{};  ///< Designate zone name, with the trailing dot
  int ttl = 60;
  std::string record_template = "{name}";  ///< {name}: the server's name; {cluster}
};

/// Which zone a new replica goes to (docs/configuration.md, placement). Zones in backoff are
/// never chosen, whatever the preference.
struct Placement {
  enum class Prefer {
    kSpread,   ///< fewest active replicas per zone first
    kLatency,  ///< lowest median latency to the primary first, within max_latency
  };
  Prefer prefer = Prefer::kSpread;
  /// With kLatency: zones whose median latency to the primary is above this are used only when
  /// no other zone can take the replica.
  Duration max_latency = std::chrono::milliseconds(20);
  /// Latency samples per zone whose median is the zone's latency (1..1000).
  int samples = 10;
};

/// Budgets of each provisioning phase; a replica stuck longer is cleaned up.
struct PhaseTimeouts {
  Duration snapshot_create = 30min;
  Duration volume_create = 15min;
  Duration server_build = 10min;
  Duration postgres_start = 5min;
  Duration catch_up = 30min;
  /// A replica ejected for lag (or not following the primary) fails once it has gone this long
  /// without its lag reaching a new low: it is then replaced.
  Duration lagging = 5min;
  Duration drain = 5min;
  Duration delete_ = 10min;
};

/// The cluster's service-level objectives (`slo:`): the service exports them as gauges
/// (replica_autoscaler_time_to_serve_budget_seconds, replica_autoscaler_replay_lag_alert_seconds)
/// so that the alert rules compare against the configuration; nothing the service does depends
/// on them.
struct Slo {
  /// From the cycle that decides to create a replica to the cycle that first sees it serving.
  Duration time_to_serve_budget = 10min;
  /// A serving replica whose replay lag (replica_autoscaler_replica_lag_seconds) stays above
  /// this is alerted on. Tighter than postgres.max_lag_time by default: the alert comes before
  /// the ejection.
  Duration replay_lag_alert = 1s;
};

struct Cluster {
  std::string name{};
  std::string cloud{};  ///< a key of Config::clouds
  std::variant<StaticPrimary, PatroniPrimary> primary{};
  Donor donor{};
  ReplicaTemplate replica{};
  PostgresProbe postgres{};
  /// The first of `balancers`: what a cluster with one balancer (the usual case) reads.
  ClusterLoadBalancer load_balancer{};
  /// Every balancer that sends read traffic to the replicas (`load_balancer:` as one mapping or
  /// a list of them), in the configured order; each name appears once.
  std::vector<ClusterLoadBalancer> balancers{};
  /// In how many of `balancers` a replica must serve to count as serving
  /// (`load_balancer_quorum`, 1..balancers.size(); default: all of them).
  int balancer_quorum = 1;
  /// min_replicas, max_replicas, policies, behavior, missing_data.
  policies::ClusterPolicy policy{};
  Snapshots snapshots{};
  std::optional<Dns> dns{};
  PhaseTimeouts timeouts{};
  Placement placement{};
  Slo slo{};
};

// ---------------------------------------------------------------------------------------------
// service

enum class TokenRole { kAdmin, kReadOnly };

struct ApiToken {
  std::string name{};
  TokenRole role = TokenRole::kReadOnly;
  SecretRef token{};
};

/// api.tls: the API is served over HTTPS with this certificate and key (PEM files, read when the
/// service starts).
struct ApiTls {
  std::string certificate_file{};  ///< absolute (relative paths resolved against the config)
  std::string key_file{};
};

struct ApiConfig {
  std::string listen = "127.0.0.1:8080";  ///< as written
  std::string host = "127.0.0.1";         ///< without brackets for IPv6
  int port = 8080;
  std::vector<ApiToken> tokens{};
  int max_connections = 1000;   ///< open connections at once; more are closed on accept
  Duration idle_timeout = 30s;  ///< a connection with nothing sent for this long is closed
  std::optional<ApiTls> tls{};  ///< unset: plain HTTP
};

struct LoopConfig {
  Duration interval = 30s;
  Duration jitter = 0s;  ///< each cycle starts up to this much later, at random
  /// Between cycles, poll each volume, server or snapshot in transition (and each replica
  /// starting, catching up or admitted) on its own schedule, and cycle the moment one moved on
  /// (autoscaler/transitions.h). Off: the next step waits for the next cycle.
  bool follow_transitions = true;
  /// The first polls of a transition come this often; later ones wait follow_fraction of the
  /// time it has already taken (never longer than `interval`).
  Duration follow_min_delay = 250ms;
  double follow_fraction = 0.1;
  /// The polls of a cloud start at most this share of its rate_limit.requests_per_second a
  /// second, so the cycle's own calls always have the rest.
  double follow_rate_share = 0.5;
};

struct JournalConfig {
  std::string path = "/var/lib/replica-autoscaler/events.jsonl";
  int64_t max_size_bytes = int64_t{100} << 20;  ///< rotated when larger
  int keep = 5;                                 ///< rotated files kept
};

/// etcd for several instances (ha): where, and how to authenticate.
struct EtcdConfig {
  std::vector<std::string> endpoints{};  ///< base URLs of etcd's v3 JSON gateway
  std::string ca_file{};                 ///< tls.ca_file: PEM bundle; empty: the system store
  std::string cert_file{};               ///< tls.cert_file: client certificate (with key_file)
  std::string key_file{};                ///< tls.key_file
  std::string username{};                ///< auth.username; empty: no authentication
  SecretRef password{};                  ///< auth.password
};

/// `ha`: several instances, one leading at a time through an etcd lease. Absent: one instance,
/// operator intent in state.json.
struct HaConfig {
  EtcdConfig etcd{};
  Duration lease_ttl = 10s;  ///< whole seconds, at least 2 s
  std::string key_prefix = "/replica-autoscaler";
  std::string instance{};  ///< default: the host name
};

struct LoggingConfig {
  log::Level level = log::Level::kInfo;
  std::string path{};  ///< empty: stderr
};

/// Settings for tests and benchmarks only (`test_only:`); never set them in production.
struct TestOnlyConfig {
  /// test_only.probe_double: answer every PostgreSQL probe with SimulatedReplicaProbe (a test
  /// double: every probed address is a caught-up streaming standby, the primary a fixed
  /// position) instead of libpq. For the scale benchmark against the cloud simulator's
  /// no-PostgreSQL mode; the service logs a WARNING at start-up when it is on.
  bool probe_double = false;
};

struct Config {
  std::string source{};  ///< the file it came from, for messages
  std::vector<Cloud> clouds{};
  std::vector<LoadBalancer> load_balancers{};
  std::optional<MetricsSourceConfig> metrics{};  ///< required when a metric policy exists
  std::vector<Cluster> clusters{};
  ApiConfig api{};
  LoopConfig loop{};
  JournalConfig journal{};
  LoggingConfig logging{};
  std::optional<HaConfig> ha{};
  TestOnlyConfig test_only{};

  const Cloud* FindCloud(std::string_view name) const;
  const LoadBalancer* FindLoadBalancer(std::string_view name) const;
  const Cluster* FindCluster(std::string_view name) const;
};

// ---------------------------------------------------------------------------------------------
// loading

/// One thing wrong with a configuration, where it is.
struct ConfigProblem {
  std::string path{};  ///< e.g. "clusters[1].policies[0].target_tracking.target"; "" for the file
  int line = 0;        ///< 1-based; 0 when the problem has no place (an unreadable file)
  int column = 0;      ///< 1-based; 0 when unknown
  std::string message{};
};

/// Every problem, ordered by line.
using ConfigProblems = std::vector<ConfigProblem>;
using ConfigResult = tl::expected<Config, ConfigProblems>;

/// Larger files are refused unread: a configuration is a few KiB, and /dev/zero or an endless
/// pipe must not exhaust memory.
inline constexpr size_t kMaxConfigBytes = size_t{16} << 20;

struct LoadOptions {
  /// Also check what exists only on the service's machine: secret files are readable and not
  /// empty, environment variables are set, CA bundles and clouds.yaml files exist (and the
  /// clouds.yaml holds the named cloud), API tokens are long enough and distinct. Off for
  /// validating a file elsewhere (`validate --no-secret-check`).
  bool check_environment = true;
  /// Relative paths in the file are resolved against this folder; empty: the current directory.
  std::string base_dir{};
  EnvLookup env = ProcessEnv;
};

/// Reads and checks the configuration at `path`. Collects every problem in one pass (a bad field
/// does not hide problems elsewhere); never throws. Secrets are never read into the Config and
/// never appear in problems. Blocks on file reads (and, with check_environment, on the secret
/// files); idempotent. Relative paths are resolved against `path`'s folder unless
/// options.base_dir says otherwise.
ConfigResult LoadConfig(const std::string& path, LoadOptions options = {});

/// The same for text already in memory; `name` is used in messages only.
ConfigResult LoadConfigFromString(std::string_view text, std::string_view name,
                                  const LoadOptions& options = {});

/// "FILE:LINE:COL: PATH: message" (LINE:COL and PATH left out when unknown).
std::string FormatProblem(const ConfigProblem& problem, std::string_view file);

/// "2 clusters, 1 cloud, 1 load balancer, 3 policies, 2 API tokens".
std::string Summarize(const Config& config);

std::string_view ToString(TokenRole role);
std::string_view ToString(LoadBalancerType type);  ///< "haproxy_dataplane"
std::string_view ToString(DataPlaneApiVersion version);

}  // namespace ra::config
