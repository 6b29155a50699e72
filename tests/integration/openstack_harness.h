#pragma once

// Specs and options are written with designated initializers that leave defaults out on
// purpose; GCC 12 warns about every omitted member even then (clang does not).
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <memory>
#include <string>

#include "core/result.h"
#include "openstack/options.h"
#include "tests/support/process.h"

/// The cloud simulator (tests/sandbox/cloudsim) and a PostgreSQL primary with a donor standby,
/// for integration tests. Each object stops what it started in its destructor; waits are bounded.
namespace ra::testing {

/// A PostgreSQL primary and one streaming standby (the donor replica) made with
/// tests/sandbox/pgctl.py, on 127.0.<octet>.1:5432 and 127.0.<octet>.2:5432.
class PostgresPair {
 public:
  /// `octet` picks the addresses; the servers' data live under `dir`.
  static Result<std::unique_ptr<PostgresPair>> Start(const std::string& dir, int octet);
  ~PostgresPair();

  const std::string& primary_host() const { return primary_host_; }
  const std::string& donor_host() const { return donor_host_; }
  const std::string& donor_dir() const { return donor_dir_; }
  const std::string& primary_dir() const { return primary_dir_; }
  /// libpq connection string of the primary (superuser, trust).
  std::string PrimaryConninfo() const;

 private:
  std::string primary_dir_;
  std::string donor_dir_;
  std::string primary_host_;
  std::string donor_host_;
};

/// The cloud simulator on 127.0.0.1:<free port>, run by Debian's /usr/bin/python3.
class CloudSim {
 public:
  struct Options {
    std::string root;             ///< its volumes, snapshots and servers
    std::string donor_dir;        ///< empty: no donor
    std::string donor_address;    ///< e.g. 127.0.50.2
    std::string donor_volume_id;  ///< a UUID
    std::string address_base;     ///< "127.0.X": simulated servers get 127.0.X.Y
    std::string capture_path;     ///< empty: no capture
    bool sbercloud = false;
  };
  static Result<std::unique_ptr<CloudSim>> Start(Options options);
  ~CloudSim();

  const std::string& base_url() const { return base_url_; }
  std::string auth_url() const { return base_url_ + "/identity/v3"; }
  /// Options that authenticate as the simulator's default user (password auth).
  openstack::OpenStackOptions ClientOptions() const;
  /// Calls the simulator's control API (POST /control/faults, ...); kInternal unless 2xx.
  Result<std::string> Control(const std::string& method, const std::string& path,
                              const std::string& json_body = "") const;
  /// The simulator's /control/state as JSON text ("" if it cannot be read).
  std::string State() const;
  std::string LogTail() const;

 private:
  ChildProcess process_;
  std::string base_url_;
  std::string log_path_;
  std::string root_;
  bool sbercloud_ = false;
};

/// Runs `sql` through libpq on `conninfo` and returns the first column of the first row.
Result<std::string> QueryOne(const std::string& conninfo, const std::string& sql);

}  // namespace ra::testing
