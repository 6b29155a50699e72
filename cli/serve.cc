#include "cli/serve.h"

#include <fmt/format.h>
#include <pthread.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <map>
#include <memory>
#include <ostream>
#include <thread>

#include "api/api_server.h"
#include "autoscaler/controller.h"
#include "autoscaler/etcd_intent_store.h"
#include "autoscaler/journal.h"
#include "autoscaler/leader.h"
#include "autoscaler/probe.h"
#include "autoscaler/probe_double.h"
#include "autoscaler/service_metrics.h"
#include "core/duration.h"
#include "core/http_transport.h"
#include "core/log.h"
#include "core/random.h"
#include "core/sleeper.h"
#include "lb/factory.h"
#include "lb/multi_load_balancer.h"
#include "openstack/cloud_config.h"
#include "openstack/designate.h"
#include "openstack/dns_records.h"
#include "openstack/openstack_cloud_provider.h"
#include "openstack/resolver.h"
#include "openstack/session.h"
#include "policies/prometheus_source.h"

namespace ra::autoscaler {

CLI::App* AddServeCommand(CLI::App& app, ServeOptions* options) {
  CLI::App* cmd = app.add_subcommand(
      "serve", "Run the service: control loop, HTTP API and metrics, until SIGTERM or SIGINT");
  cmd->add_option("--config,-c", options->config_file, "Configuration file")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_flag("--once", options->once,
                "Run one cycle (its actions to completion), print the plan and exit");
  return cmd;
}

Result<openstack::OpenStackOptions> CloudOptions(const config::Cloud& cloud,
                                                 const config::EnvLookup& env) {
  auto in_cloud = [&cloud](const Error& e) {
    return Fail(e.kind, fmt::format("cloud {}: {}", cloud.name, e.message));
  };
  openstack::OpenStackOptions o;
  if (cloud.clouds_yaml) {
    openstack::CloudConfigSources sources = openstack::SystemCloudConfigSources();
    if (!cloud.clouds_yaml->file.empty()) {
      sources.env["OS_CLIENT_CONFIG_FILE"] = cloud.clouds_yaml->file;
    }
    auto loaded = openstack::LoadCloudConfig(cloud.clouds_yaml->cloud, sources);
    if (!loaded) return in_cloud(loaded.error());
    o = std::move(*loaded);
  } else if (cloud.auth) {
    const config::CloudAuth& a = *cloud.auth;
    o.auth.type = a.type == config::CloudAuthType::kPassword
                      ? openstack::AuthType::kPassword
                      : openstack::AuthType::kApplicationCredential;
    o.auth.auth_url = a.auth_url;
    o.auth.user_id = a.user_id;
    o.auth.username = a.username;
    o.auth.user_domain_id = a.user_domain_id;
    o.auth.user_domain_name = a.user_domain_name;
    o.auth.project_id = a.project_id;
    o.auth.project_name = a.project_name;
    o.auth.project_domain_id = a.project_domain_id;
    o.auth.project_domain_name = a.project_domain_name;
    o.auth.domain_id = a.domain_id;
    o.auth.domain_name = a.domain_name;
    o.auth.application_credential_id = a.application_credential_id;
    o.auth.application_credential_name = a.application_credential_name;
    if (a.password.IsSet()) {
      auto secret = config::ResolveSecret(a.password, env);
      if (!secret) return in_cloud(secret.error());
      o.auth.password = std::move(*secret);
    }
    if (a.application_credential_secret.IsSet()) {
      auto secret = config::ResolveSecret(a.application_credential_secret, env);
      if (!secret) return in_cloud(secret.error());
      o.auth.application_credential_secret = std::move(*secret);
    }
  } else {
    return Fail(ErrorKind::kConfig,
                fmt::format("cloud {}: neither clouds_yaml nor auth is set", cloud.name));
  }
  if (cloud.region) o.region_name = *cloud.region;
  if (cloud.interface) o.interface = *cloud.interface;
  if (cloud.verify_tls) o.http.verify_tls = *cloud.verify_tls;
  if (cloud.ca_bundle) o.http.ca_bundle = *cloud.ca_bundle;
  for (const auto& [service, url] : cloud.endpoint_overrides) o.endpoint_overrides[service] = url;
  o.requests_per_second = cloud.requests_per_second;
  o.burst = cloud.burst;
  o.retry.max_attempts = cloud.max_attempts;
  o.http.connect_timeout = cloud.connect_timeout;
  o.http.total_timeout = cloud.request_timeout;
  if (auto ok = openstack::ValidateOptions(o); !ok) return in_cloud(ok.error());
  return o;
}

namespace {

/// Counts every Data Plane API exchange for replica_autoscaler_dataplane_requests_total.
class CountingTransport final : public HttpTransport {
 public:
  CountingTransport(HttpOptions options, ServiceMetrics& metrics)
      : inner_(std::move(options)), metrics_(metrics) {}
  Result<HttpResponse> Send(const HttpRequest& request) override {
    Result<HttpResponse> response = inner_.Send(request);
    metrics_.CountDataPlaneRequest(request.method,
                                   response ? std::to_string(response->status) : "error");
    return response;
  }

 private:
  CurlHttpTransport inner_;
  ServiceMetrics& metrics_;
};

std::string_view MetricService(const std::string& service_type) {
  if (service_type == "block-storage" || service_type == "volumev3" || service_type == "volume") {
    return "volumev3";
  }
  return service_type;
}

Result<policies::PrometheusSourceOptions> MetricsOptions(const config::MetricsSourceConfig& m) {
  policies::PrometheusSourceOptions options;
  options.base_url = m.url;
  options.timeout = m.timeout;
  options.extra_headers = m.headers;
  if (m.auth == config::MetricsAuthType::kBasic) {
    options.username = m.username;
    if (m.password.IsSet()) {
      auto password = config::ResolveSecret(m.password);
      if (!password) return Fail(password.error());
      options.password = std::move(*password);
    }
  } else if (m.auth == config::MetricsAuthType::kBearer) {
    auto token = config::ResolveSecret(m.token);
    if (!token) return Fail(token.error());
    options.bearer_token = std::move(*token);
  }
  return options;
}

// Everything the service holds for its lifetime; declaration order is destruction order reversed,
// so users (controller, API) go before what they use.
struct Service {
  SystemClock clock;
  MonotonicClock lease_clock;  // ha: the lease's deadlines never move with the wall clock
  RealSleeper sleeper;
  std::unique_ptr<ServiceMetrics> metrics;
  std::unique_ptr<EventJournal> journal;
  std::map<std::string, std::unique_ptr<CurlHttpTransport>> cloud_transports;
  std::map<std::string, std::unique_ptr<openstack::Session>> sessions;
  std::map<std::string, std::unique_ptr<openstack::OpenStackCloudProvider>> clouds;
  std::map<std::string, std::unique_ptr<CountingTransport>> lb_transports;
  std::vector<std::unique_ptr<lb::LoadBalancer>> load_balancers;
  std::unique_ptr<CurlHttpTransport> metrics_transport;
  std::unique_ptr<policies::PrometheusSource> metrics_source;
  std::vector<std::unique_ptr<CurlHttpTransport>> patroni_transports;
  std::vector<std::unique_ptr<PrimaryLocator>> locators;
  std::vector<std::unique_ptr<ReplicaProbe>> probes;
  // test_only.probe_double: one double answers for every cluster (never built otherwise).
  std::unique_ptr<SimulatedReplicaProbe> probe_double;
  std::vector<std::unique_ptr<openstack::DesignateClient>> designate_clients;
  std::vector<std::unique_ptr<openstack::DnsRecords>> dns_records;
  // ha: the election and the intent kept in etcd; they outlive the controller that asks them.
  std::unique_ptr<CurlHttpTransport> etcd_transport;
  std::unique_ptr<LeaderElector> elector;
  std::unique_ptr<EtcdGateway> intent_gateway;
  std::unique_ptr<EtcdIntentStore> intent_store;
  std::unique_ptr<Controller> controller;
  std::unique_ptr<ApiServer> api;
};

// Builds every client from the configuration. Contacts nothing: a cloud that is down at start
// is retried by every cycle.
Result<void> Build(const config::Config& cfg, Service& s, bool once) {
  for (const config::Cloud& cloud : cfg.clouds) {
    auto options = CloudOptions(cloud);
    if (!options) return Fail(options.error());
    auto transport = std::make_unique<CurlHttpTransport>(options->http);
    auto session = std::make_unique<openstack::Session>(
        std::move(*options),
        openstack::SessionDeps{*transport, s.clock, s.sleeper, DefaultRandomSource()});
    ServiceMetrics* metrics = s.metrics.get();
    session->SetObserver([metrics](const openstack::RequestRecord& r) {
      metrics->CountCloudRequest(MetricService(r.service_type), r.method,
                                 r.status > 0 ? std::to_string(r.status) : "error");
    });
    s.clouds[cloud.name] = std::make_unique<openstack::OpenStackCloudProvider>(*session);
    s.sessions[cloud.name] = std::move(session);
    s.cloud_transports[cloud.name] = std::move(transport);
  }
  for (const config::LoadBalancer& lb : cfg.load_balancers) {
    s.lb_transports[lb.name] = std::make_unique<CountingTransport>(lb.http, *s.metrics);
  }

  bool needs_metrics = false;
  for (const config::Cluster& c : cfg.clusters) {
    needs_metrics |= !policies::Queries(c.policy).empty();
  }
  if (needs_metrics && cfg.metrics) {
    auto options = MetricsOptions(*cfg.metrics);
    if (!options) return Fail(ErrorKind::kConfig, "metrics: " + options.error().message);
    s.metrics_transport = std::make_unique<CurlHttpTransport>(cfg.metrics->http);
    auto source = policies::PrometheusSource::Create(std::move(*options), *s.metrics_transport);
    if (!source) return Fail(ErrorKind::kConfig, "metrics: " + source.error().message);
    s.metrics_source = std::make_unique<policies::PrometheusSource>(std::move(*source));
  }

  std::vector<ClusterDeps> deps;
  for (const config::Cluster& c : cfg.clusters) {
    ClusterDeps d;
    d.cluster = &c;
    auto cloud = s.clouds.find(c.cloud);
    if (cloud == s.clouds.end()) {
      return Fail(ErrorKind::kConfig, fmt::format("cluster {}: unknown cloud", c.name));
    }
    d.cloud = cloud->second.get();

    // One balancer per entry of the cluster's load_balancer list; with several, the loop talks
    // to them through one MultiLoadBalancer (with one, exactly as before).
    std::vector<lb::MultiLoadBalancer::Named> named;
    for (const config::ClusterLoadBalancer& entry : c.balancers) {
      const config::LoadBalancer* lb = cfg.FindLoadBalancer(entry.name);
      if (!lb) {
        return Fail(ErrorKind::kConfig,
                    fmt::format("cluster {}: unknown load balancer {}", c.name, entry.name));
      }
      Secret lb_password;
      if (lb->password.IsSet()) {
        auto password = config::ResolveSecret(lb->password);
        if (!password) {
          return Fail(ErrorKind::kConfig,
                      fmt::format("load balancer {}: {}", lb->name, password.error().message));
        }
        lb_password = std::move(*password);
      }
      auto balancer =
          lb::MakeLoadBalancer(*lb, entry,
                               lb::BackendDeps{.password = std::move(lb_password),
                                               .transport = *s.lb_transports.at(lb->name),
                                               .clock = s.clock});
      if (!balancer) {
        return Fail(ErrorKind::kConfig,
                    fmt::format("cluster {}: {}", c.name, balancer.error().message));
      }
      s.load_balancers.push_back(std::move(*balancer));
      named.push_back({.name = entry.name, .balancer = s.load_balancers.back().get()});
    }
    if (named.empty()) {
      return Fail(ErrorKind::kConfig, fmt::format("cluster {}: no load balancer", c.name));
    }
    if (named.size() == 1) {
      d.lb = named.front().balancer;
    } else {
      auto multi = std::make_unique<lb::MultiLoadBalancer>(std::move(named), c.balancer_quorum);
      d.multi = multi.get();
      s.load_balancers.push_back(std::move(multi));
      d.lb = s.load_balancers.back().get();
    }

    Secret pg_password;
    if (c.postgres.password.IsSet()) {
      auto password = config::ResolveSecret(c.postgres.password);
      if (!password) {
        return Fail(ErrorKind::kConfig,
                    fmt::format("cluster {}: postgres: {}", c.name, password.error().message));
      }
      pg_password = std::move(*password);
    }
    if (cfg.test_only.probe_double) {
      if (!s.probe_double) s.probe_double = std::make_unique<SimulatedReplicaProbe>();
      d.probe = s.probe_double.get();
    } else {
      s.probes.push_back(std::make_unique<LibpqReplicaProbe>(c.postgres, std::move(pg_password)));
      d.probe = s.probes.back().get();
    }

    HttpOptions patroni_http;
    if (const auto* patroni = std::get_if<config::PatroniPrimary>(&c.primary)) {
      patroni_http = patroni->http;
    }
    s.patroni_transports.push_back(std::make_unique<CurlHttpTransport>(patroni_http));
    s.locators.push_back(MakePrimaryLocator(c, *s.patroni_transports.back()));
    d.primary = s.locators.back().get();
    d.metrics = s.metrics_source.get();

    // Names become ids at the first cycle that needs them (and again until that works), so
    // a cloud that is down at start-up delays creation instead of failing the start.
    openstack::Session* session = s.sessions.at(c.cloud).get();
    d.resolve_template = [session, &c]() -> Result<TemplateIds> {
      auto ids = openstack::ResolveTemplate(*session, c.replica.flavor, c.replica.image,
                                            c.replica.networks);
      if (!ids) return Fail(ids.error());
      return TemplateIds{ids->flavor_id, ids->image_id, ids->network_ids};
    };
    d.resolve_donor = [session, &c]() -> Result<openstack::DonorFacts> {
      return openstack::ResolveDonor(*session, c.donor.server, c.donor.volume);
    };
    if (c.dns) {
      s.designate_clients.push_back(std::make_unique<openstack::DesignateClient>(*session));
      s.dns_records.push_back(std::make_unique<openstack::DnsRecords>(*s.designate_clients.back(),
                                                                      c.dns->zone, c.dns->ttl));
      openstack::DnsRecords* records = s.dns_records.back().get();
      d.dns.ensure = [records](const std::string& record, const std::string& address) {
        return records->Ensure(record, address);
      };
      d.dns.remove = [records](const std::string& record) { return records->Remove(record); };
    }
    deps.push_back(std::move(d));
  }

  ControllerOptions controller_options;
  controller_options.actuator.inline_execution = once;
  // Overrides and pauses survive a restart beside the journal (`--once` honours them too).
  controller_options.state_path = StatePathFor(cfg.journal);
  if (cfg.ha) {
    // Several instances: one leads through an etcd lease, and operator intent lives in etcd so
    // that the next leader has it.
    const config::HaConfig& ha = *cfg.ha;
    HttpOptions http;
    http.ca_bundle = ha.etcd.ca_file;
    http.client_cert = ha.etcd.cert_file;
    http.client_key = ha.etcd.key_file;
    http.connect_timeout = std::max<Duration>(ha.lease_ttl / 6, std::chrono::milliseconds(200));
    http.proxy_from_env = false;  // etcd sits beside the service
    s.etcd_transport = std::make_unique<CurlHttpTransport>(http);
    EtcdOptions etcd;
    etcd.endpoints = ha.etcd.endpoints;
    etcd.username = ha.etcd.username;
    if (ha.etcd.password.IsSet()) {
      auto password = config::ResolveSecret(ha.etcd.password);
      if (!password) return Fail(ErrorKind::kConfig, "ha.etcd.auth: " + password.error().message);
      etcd.password = std::move(*password);
    }
    LeaderElectorOptions election;
    election.etcd = etcd;
    election.key = ha.key_prefix + "/leader";
    election.instance = ha.instance;
    election.ttl = ha.lease_ttl;
    s.elector = std::make_unique<LeaderElector>(election, *s.etcd_transport, s.lease_clock);
    s.intent_gateway = std::make_unique<EtcdGateway>(etcd, *s.etcd_transport);
    s.intent_store = std::make_unique<EtcdIntentStore>(*s.intent_gateway, ha.key_prefix + "/intent",
                                                       election.key, ha.instance);
    controller_options.intent_store = s.intent_store.get();
    controller_options.fence = s.elector.get();
    controller_options.instance = ha.instance;
  }
  s.controller = std::make_unique<Controller>(cfg, s.clock, Controller::Random{}, *s.journal,
                                              *s.metrics, std::move(deps), controller_options);
  return {};
}

void PrintPlan(const Controller& controller, std::ostream& out) {
  for (const std::string& name : controller.ClusterNames()) {
    auto status = controller.Status(name);
    if (!status) continue;
    out << fmt::format("cluster {}: desired {}, active {}, serving {}\n", name, status->desired,
                       status->active, status->serving);
    if (status->decision) out << "  decision: " << status->decision->reason << "\n";
    out << "  plan: " << status->plan_reason << "\n";
    if (!status->last_error.empty()) out << "  errors: " << status->last_error << "\n";
    for (const ReplicaView& v : status->replicas) {
      out << fmt::format("  {:<32} {:<18} {:<10} {}\n", v.name, ToString(v.phase), v.zone,
                         v.detail);
    }
    if (auto plan = controller.LastPlan(name)) {
      for (const Action& a : plan->actions) {
        out << fmt::format("  action {} {}: {}\n", ToString(a.kind), a.replica, a.reason);
      }
    }
    for (const Blocked& b : status->blocked) {
      out << fmt::format("  blocked {} {}: {}\n", ToString(b.kind), b.replica, b.reason);
    }
  }
}

}  // namespace

int RunServe(const ServeOptions& options, std::ostream& out, std::ostream& err) {
  config::ConfigResult loaded = config::LoadConfig(options.config_file);
  if (!loaded) {
    for (const config::ConfigProblem& p : loaded.error()) {
      err << config::FormatProblem(p, options.config_file) << "\n";
    }
    err << loaded.error().size() << " problem(s) in " << options.config_file << "\n";
    return 2;
  }
  const config::Config& cfg = *loaded;
  log::Init(cfg.logging.level, cfg.logging.path);
  if (cfg.test_only.probe_double) {
    log::Warn(
        "test_only.probe_double is on: PostgreSQL is NOT probed; SimulatedReplicaProbe (a test "
        "double) reports every replica caught up. For benchmarks against the cloud simulator "
        "only, never in production");
  }

  // SIGTERM and SIGINT are taken by sigwait below: blocked before any thread starts, so every
  // thread inherits the mask and none of them is interrupted.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // Before anything is built or contacted: a state.json that cannot be read may hold a pause.
  // With ha, operator intent is in etcd and state.json is not used.
  if (const std::string state = StatePathFor(cfg.journal); !state.empty() && !cfg.ha) {
    FileIntentStore store(state);
    if (auto readable = RequireReadableIntent(store, state); !readable) {
      err << "serve: " << readable.error().message << "\n";
      return 2;
    }
  }

  Service s;
  s.metrics = std::make_unique<ServiceMetrics>();
  s.journal = std::make_unique<EventJournal>(cfg.journal);
  if (auto built = Build(cfg, s, options.once); !built) {
    err << "serve: " << log::Redact(built.error().message) << "\n";
    return built.error().kind == ErrorKind::kConfig ? 2 : 1;
  }

  if (s.elector) {
    // The first round before the first cycle: an instance that wins at start acts at once.
    if (auto stepped = s.elector->Step(); !stepped) {
      log::Warn("leader election", {{"error", log::Redact(stepped.error().message)}});
    }
    if (options.once && !s.elector->IsLeader()) {
      const std::string leader = s.elector->LeaderName();
      out << "serve --once: this instance (" << cfg.ha->instance << ") does not lead ("
          << (leader.empty() ? std::string("no leader known") : leader + " leads")
          << "): nothing done\n";
      s.elector->Stop();
      return 3;
    }
    s.elector->Start();
  }

  if (options.once) {
    const bool ok = s.controller->RunOnce(s.clock.Now());
    s.controller->Stop();
    if (s.elector) s.elector->Stop();
    PrintPlan(*s.controller, out);
    return ok ? 0 : 1;
  }

  std::vector<ResolvedToken> tokens;
  for (const config::ApiToken& t : cfg.api.tokens) {
    auto value = config::ResolveSecret(t.token);
    if (!value) {
      err << "serve: api token " << t.name << ": " << value.error().message << "\n";
      return 1;
    }
    tokens.push_back(ResolvedToken{t.name, t.role, std::move(*value)});
  }
  s.api = std::make_unique<ApiServer>(cfg.api, std::move(tokens), *s.controller,
                                      s.metrics->registry(), s.clock);
  if (auto started = s.api->Start(); !started) {
    err << "serve: api: " << started.error().message << "\n";
    return 1;
  }

  Event event;
  event.at = s.clock.Now();
  event.type = "service_started";
  event.message =
      fmt::format("replica-autoscaler {} started: {}", options.version, config::Summarize(cfg));
  event.details = {{"version", options.version}, {"api", cfg.api.listen}};
  s.journal->Append(std::move(event));
  log::Info("service started", {{"version", options.version},
                                {"config", options.config_file},
                                {"api", cfg.api.listen},
                                {"clusters", cfg.clusters.size()}});
  s.controller->Start();

  int signal = 0;
  sigwait(&signals, &signal);
  log::Info("stopping", {{"signal", signal == SIGTERM ? "SIGTERM" : "SIGINT"}});
  s.api->Stop();
  const bool finished = s.controller->Stop();
  // Once nothing runs any more, the lease is revoked, so another instance leads at once. With an
  // action still running it is left to expire instead: the other instance must not act while
  // requests this one sent may still be applied.
  if (s.elector) s.elector->Stop(/*revoke=*/finished);
  Event stopped;
  stopped.at = s.clock.Now();
  stopped.type = "service_stopped";
  stopped.message = finished ? "stopped; no action was left running"
                             : "stopped while an action was still running; the next start "
                               "adopts what it left";
  s.journal->Append(std::move(stopped));
  if (!finished) {
    // Joining would wait for the action's own client timeouts; the cloud and HAProxy keep the
    // truth, so the next start finishes (or cleans up) whatever was cut short.
    log::Warn("an action was still running after 30s; exiting without waiting for it");
    std::fflush(nullptr);
    std::_Exit(0);
  }
  return 0;
}

}  // namespace ra::autoscaler
