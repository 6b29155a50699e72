#!/usr/bin/env bash
# A real OpenStack control plane (Keystone, Placement, Glance, Nova, Cinder on MariaDB and
# RabbitMQ) on a loopback address, from Debian packages. See README.md beside this file.
#
#   tests/realcloud/openstack.sh start  --dir DIR [--ip 127.0.60.1] [--token-expiration 600]
#   tests/realcloud/openstack.sh status --dir DIR
#   tests/realcloud/openstack.sh stop   --dir DIR
#
# start writes DIR/openstack.env (KEY=value lines for `set -a; . DIR/openstack.env`).
set -euo pipefail
exec /usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/realcloud.py" "$@"
