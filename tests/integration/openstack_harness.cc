#include "tests/integration/openstack_harness.h"

#include <fmt/format.h>
#include <libpq-fe.h>

#include <filesystem>
#include <memory>

#include "core/http_transport.h"

namespace ra::testing {

namespace {

using namespace std::chrono_literals;

std::string Source(const std::string& rel) { return std::string(RA_SOURCE_DIR) + "/" + rel; }

Result<void> Pgctl(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"/usr/bin/python3", Source("tests/sandbox/pgctl.py")};
  argv.insert(argv.end(), args.begin(), args.end());
  CommandResult r = RunCommand(argv, 180s);
  if (r.status != 0) {
    return Fail(ErrorKind::kInternal,
                fmt::format("pgctl {} failed ({}): {}", args.front(), r.status, r.output));
  }
  return {};
}

}  // namespace

Result<std::unique_ptr<PostgresPair>> PostgresPair::Start(const std::string& dir, int octet) {
  auto pair = std::unique_ptr<PostgresPair>(new PostgresPair());
  pair->primary_dir_ = dir + "/primary";
  pair->donor_dir_ = dir + "/donor";
  pair->primary_host_ = fmt::format("127.0.{}.1", octet);
  pair->donor_host_ = fmt::format("127.0.{}.2", octet);
  if (auto ok = Pgctl({"init-primary", "--dir", pair->primary_dir_, "--host", pair->primary_host_,
                       "--port", "5432"});
      !ok) {
    return Fail(ok.error());
  }
  // The donor's data directory is what the simulator snapshots: a streaming standby, as in
  // production.
  if (auto ok = Pgctl({"init-standby", "--dir", pair->donor_dir_, "--host", pair->donor_host_,
                       "--port", "5432", "--primary-host", pair->primary_host_, "--primary-port",
                       "5432", "--application-name", "donor"});
      !ok) {
    return Fail(ok.error());
  }
  return pair;
}

PostgresPair::~PostgresPair() {
  for (const std::string& d : {donor_dir_, primary_dir_}) {
    if (d.empty()) continue;
    RunCommand({"/usr/bin/python3", Source("tests/sandbox/pgctl.py"), "stop", "--dir", d, "--mode",
                "immediate"},
               60s);
  }
}

std::string PostgresPair::PrimaryConninfo() const {
  return fmt::format("host={} port=5432 user=postgres dbname=postgres connect_timeout=5",
                     primary_host_);
}

Result<std::unique_ptr<CloudSim>> CloudSim::Start(Options options) {
  auto sim = std::unique_ptr<CloudSim>(new CloudSim());
  const int port = FreePort();
  sim->base_url_ = fmt::format("http://127.0.0.1:{}", port);
  sim->log_path_ = options.root + ".log";
  sim->sbercloud_ = options.sbercloud;
  sim->root_ = options.root;
  ProcessOptions p;
  p.argv = {"/usr/bin/python3", Source("tests/sandbox/cloudsim/cloudsim.py"),
            "--port",           std::to_string(port),
            "--root",           options.root};
  if (!options.donor_dir.empty()) {
    p.argv.insert(p.argv.end(),
                  {"--donor-dir", options.donor_dir, "--donor-address", options.donor_address,
                   "--donor-volume-id", options.donor_volume_id});
  }
  if (!options.address_base.empty()) {
    p.argv.insert(p.argv.end(), {"--address-base", options.address_base});
  }
  if (!options.capture_path.empty()) {
    p.argv.insert(p.argv.end(), {"--capture", options.capture_path});
  }
  if (options.sbercloud) p.argv.push_back("--sbercloud");
  p.log_path = sim->log_path_;
  auto child = ChildProcess::Start(p);
  if (!child) return Fail(child.error());
  sim->process_ = std::move(*child);
  if (auto ok = WaitForTcp("127.0.0.1", port, 20s, &sim->process_); !ok) {
    return Fail(ErrorKind::kInternal,
                "cloudsim did not start: " + ok.error().message + "\n" + sim->LogTail());
  }
  return sim;
}

CloudSim::~CloudSim() {
  process_.Stop(std::chrono::seconds(30));
  // The simulator stops its servers' PostgreSQL when it exits; if it could not (killed, or a
  // test failed half-way), stop what is left: pg_ctl starts them in their own sessions.
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(root_ + "/volumes", ec)) {
    if (std::filesystem::exists(entry.path() / "postmaster.pid", ec)) {
      RunCommand({"/usr/bin/python3", Source("tests/sandbox/pgctl.py"), "stop", "--dir",
                  entry.path().string(), "--mode", "immediate"},
                 60s);
    }
  }
}

openstack::OpenStackOptions CloudSim::ClientOptions() const {
  openstack::OpenStackOptions o;
  o.auth.auth_url = auth_url();
  o.auth.username = "demo";
  o.auth.password = Secret("demo-password");
  o.auth.user_domain_name = "Default";
  o.auth.project_name = sbercloud_ ? "ru-moscow-1" : "demo";
  o.region_name = sbercloud_ ? "ru-moscow-1" : "RegionOne";
  o.retry.initial_backoff = std::chrono::milliseconds(100);
  o.retry.max_backoff = std::chrono::seconds(2);
  return o;
}

std::string CloudSim::State() const {
  CurlHttpTransport http;
  auto r = http.Send(HttpRequest{"GET", base_url_ + "/control/state", {}, "", std::nullopt});
  return r && r->status == 200 ? r->body : std::string();
}

Result<std::string> CloudSim::Control(const std::string& method, const std::string& path,
                                      const std::string& json_body) const {
  CurlHttpTransport http;
  HttpRequest request{method, base_url_ + path, {}, json_body, std::nullopt};
  if (!json_body.empty()) request.headers["Content-Type"] = "application/json";
  auto r = http.Send(request);
  if (!r) return Fail(r.error());
  if (r->status < 200 || r->status >= 300) {
    return Fail(ErrorKind::kInternal,
                fmt::format("{} {}: HTTP {}: {}", method, path, r->status, r->body));
  }
  return r->body;
}

std::string CloudSim::LogTail() const {
  std::string log = ReadFile(log_path_);
  return log.size() > 6000 ? log.substr(log.size() - 6000) : log;
}

Result<std::string> QueryOne(const std::string& conninfo, const std::string& sql) {
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn(PQconnectdb(conninfo.c_str()), &PQfinish);
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    return Fail(ErrorKind::kTransient, std::string("connect: ") + PQerrorMessage(conn.get()));
  }
  std::unique_ptr<PGresult, decltype(&PQclear)> res(PQexec(conn.get(), sql.c_str()), &PQclear);
  const ExecStatusType st = PQresultStatus(res.get());
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
    return Fail(ErrorKind::kInternal, sql + ": " + PQerrorMessage(conn.get()));
  }
  if (st == PGRES_COMMAND_OK || PQntuples(res.get()) == 0) return std::string();
  return std::string(PQgetvalue(res.get(), 0, 0));
}

}  // namespace ra::testing
