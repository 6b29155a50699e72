#!/usr/bin/env bash
# Installs every Debian package the project needs (build, tests, sandbox) and builds it.
# Idempotent: packages already present are not reinstalled, and the build is incremental.
#
#   scripts/setup.sh            install packages, configure and build (build/)
#   scripts/setup.sh --no-build only install packages
#   BUILD_DIR=... BUILD_TYPE=... SANITIZE=ON scripts/setup.sh   other build flavours
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=1
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config clang-format git ca-certificates curl
  # libraries (find_package targets in CMakeLists.txt)
  libcurl4-openssl-dev libssl-dev nlohmann-json3-dev libpq-dev libmicrohttpd-dev
  libyaml-cpp-dev prometheus-cpp-dev libfmt-dev libspdlog-dev libcli11-dev libexpected-dev
  libgtest-dev libgmock-dev zlib1g-dev libcctz-dev tzdata
  # real components used by integration tests and the sandbox
  victoria-metrics prometheus postgresql-15 postgresql-client-15 haproxy etcd-server etcd-client
  # the sandbox's primary and donor as a real Patroni cluster on that etcd (sandbox.py up
  # --patroni). Its system service never runs: policy-rc.d (below) keeps the install from starting
  # it, and both its systemd unit and its init script need /etc/patroni/*.yml, which nothing here
  # writes (the sandbox's members run from their own config files as the tests' user);
  # python3-etcd is the first of its DCS alternatives, named so that apt picks no other
  patroni python3-etcd
  # the sandbox's WAL archive (sandbox.py up --archive, test sandbox_archive, bench/run.sh
  # datasize); xfsprogs for the data-size benchmark's copy-on-write image
  pgbackrest xfsprogs
  python3 python3-yaml python3-jsonschema
  # conformance of the cloud simulator and the OpenStack client (~450 MB with dependencies)
  python3-tempest python3-openstacksdk python3-nova python3-cinder python3-openstackclient
  # tests/realcloud: a real OpenStack control plane on loopback (Keystone, Placement, Glance, Nova,
  # Cinder, neutron-server on MariaDB and RabbitMQ), library packages only, not the service
  # packages whose maintainer scripts set up system databases and services; ~303 MB in all:
  # MariaDB with Perl ~183 MB, RabbitMQ with Erlang ~52 MB, the Python services and uWSGI ~68 MB
  python3-keystone python3-placement python3-glance python3-neutron python3-pymysql
  mariadb-server rabbitmq-server uwsgi-core uwsgi-plugin-python3
  # tests/realcloud/smoke.sh reads the answers with jq (~1 MB)
  jq
  # deployment proofs (tests/deploy): package, roles in a fresh root, Packer, Terraform HCL
  ansible ansible-lint debootstrap packer zstd
  # metrics tests: htpasswd -B for Prometheus' basic_auth_users, openssl for a self-signed TLS server
  apache2-utils openssl
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${#missing[@]} Debian packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  # Debian's postgresql, prometheus, etcd-server and patroni packages start system services on
  # install; the tests start their own instances on loopback, so keep the packaged services from
  # starting (patroni's install would even fail without this: its init script exits 1 for want
  # of a configuration file).
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    remove_policy=1
  fi
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
  [ "${remove_policy:-0}" = 1 ] && $sudo rm -f /usr/sbin/policy-rc.d
else
  echo "setup: all ${#packages[@]} Debian packages present"
fi

[ "$build" = 1 ] || exit 0

build_dir=${BUILD_DIR:-"$here/build"}
cmake -S "$here" -B "$build_dir" -G Ninja \
  -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" \
  -DRA_SANITIZE="${SANITIZE:-OFF}" >/dev/null
cmake --build "$build_dir" -j"$(nproc)"
echo "setup: built in $build_dir"
