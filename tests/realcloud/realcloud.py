#!/usr/bin/python3
"""A real OpenStack control plane on loopback, from Debian bookworm packages only.

    realcloud.py start  --dir DIR [--ip 127.0.60.1] [--token-expiration 600] [--timeout 180]
                        [--spawn-hook CMD] [--destroy-hook CMD] [--debug]
    realcloud.py stop   --dir DIR
    realcloud.py status --dir DIR

start brings up MariaDB, RabbitMQ, Keystone, Placement, Glance, Nova (api, conductor, scheduler,
one compute on a fake virt driver) and Cinder (api, scheduler, volume on the fake driver), all
bound to one loopback address, with all their state, configuration and logs under DIR. It creates
the projects, users, application credential, image, flavor and volume type a test needs and
writes them to DIR/openstack.env (mode 600; no secret is printed). stop ends every process that
start left (found by a marker in their environment, so nothing escapes by forking or daemonising).
See README.md beside this file.
"""
import argparse
import concurrent.futures
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
LAUNCH = os.path.join(HERE, "launch.py")
# Debian's interpreter: the OpenStack modules are in its dist-packages, and PATH may well lead
# to another python3 (pyenv, a virtualenv) first.
PYTHON = "/usr/bin/python3"
MARKER = "RA_REALCLOUD_DIR"
SERVICE_VAR = "RA_REALCLOUD_SERVICE"
REGION = "RegionOne"

PORTS = {
    "mariadb": 3306, "rabbitmq": 5672, "keystone": 5000, "placement": 8778, "glance": 9292,
    "nova-api": 8774, "cinder-api": 8776, "neutron": 9696,
}


def erlang_ports(ip):
    """Erlang's port mapper and RabbitMQ's distribution port (rabbitmqctl takes the next 10).

    Erlang resolves the node name "localhost", so these two listen on 127.0.0.1 whatever --ip
    says; they are derived from --ip so that two clouds on two addresses do not collide, and
    uncommon so that they keep clear of a system RabbitMQ (4369, 25672).
    """
    o = [int(x) for x in ip.split(".")]
    offset = (o[2] * 256 + o[3]) % 1000
    return 24000 + offset, 26000 + offset * 11

VERSION_PACKAGES = {
    "NOVA": "python3-nova", "CINDER": "python3-cinder", "KEYSTONE": "python3-keystone",
    "GLANCE": "python3-glance", "PLACEMENT": "python3-placement", "MARIADB": "mariadb-server",
    "RABBITMQ": "rabbitmq-server", "NEUTRON": "python3-neutron",
}

PROXY_VARS = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
# Our own requests go straight to the loopback services, whatever proxy the caller has set.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

DATABASES = ["keystone", "placement", "glance", "nova_api", "nova", "nova_cell0", "cinder",
             "neutron"]


class StartError(Exception):
    def __init__(self, service, message, log=None, started=True):
        super().__init__(f"{service}: {message}")
        self.service, self.message, self.log = service, message, log
        self.started = started  # False: refused before starting anything, nothing to stop


def log_tail(path, lines=40):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-lines:])
    except OSError as e:
        return f"(no log: {e})"


def say(msg):
    print(f"realcloud: {msg}", flush=True)


# ---------------------------------------------------------------------------------------------
# Processes


def proc_stat(pid):
    """(state, session id, start time in clock ticks) of PID, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return fields[0], int(fields[3]), int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def marked_processes(directory, sessions=()):
    """Pids of the processes that start left for DIR.

    Two ways, so that neither forking, daemonising nor renaming hides one: the marker in the
    environment every process inherits (a program may overwrite its environment's memory, as
    setproctitle does; SPT_NOENV asks it not to), and the sessions of the processes start
    spawned (SESSIONS: (leader pid, leader start time); each service starts in a session of
    its own and a process that starts one of its own keeps the marker).
    """
    want = f"{MARKER}={directory}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        st = proc_stat(entry)
        if st is None or st[0] == "Z":
            continue
        if any(st[1] == leader and st[2] >= started for leader, started, _ in sessions):
            found.append(int(entry))
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if want in env:
            found.append(int(entry))
    return found


def process_service(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            for item in f.read().split(b"\0"):
                if item.startswith(SERVICE_VAR.encode() + b"="):
                    return item.split(b"=", 1)[1].decode()
    except OSError:
        pass
    return None


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def alive(pid):
    st = proc_stat(pid)
    return st is not None and st[0] != "Z"


class Cloud:
    def __init__(self, directory, ip="127.0.60.1", token_expiration=600, timeout=180,
                 debug=False, spawn_hook="", destroy_hook="", compute_driver=None):
        self.dir = os.path.realpath(directory)
        self.ip = ip
        self.epmd_port, self.dist_port = erlang_ports(ip)
        self.token_expiration = token_expiration
        self.timeout = timeout
        self.debug = debug
        self.spawn_hook = os.path.abspath(spawn_hook) if spawn_hook else ""
        self.destroy_hook = os.path.abspath(destroy_hook) if destroy_hook else ""
        # The hooks need our driver (ra_virt_driver.py, FakeDriver plus hooks); without them
        # Nova's own fake driver does.
        self.compute_driver = compute_driver or (
            "ra_virt_driver.RADriver" if spawn_hook or destroy_hook else "fake.FakeDriver")
        self.etc = os.path.join(self.dir, "etc")
        self.logs = os.path.join(self.dir, "log")
        self.procs = {}           # service name -> Popen
        self.timings = {}         # service name -> seconds until ready
        self.lock = threading.Lock()
        self.state_file = os.path.join(self.dir, "state.json")
        self.secrets = {}

    # -- helpers -------------------------------------------------------------------------------

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def logfile(self, name):
        return os.path.join(self.logs, f"{name}.log")

    def env(self, service, extra=None):
        # Not the caller's OS_* credentials, nor a proxy that loopback traffic would be sent to.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("OS_") and k.lower() not in PROXY_VARS}
        env[MARKER] = self.dir
        env[SERVICE_VAR] = service
        env["PYTHONPATH"] = HERE + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["SPT_NOENV"] = "1"  # setproctitle (neutron's workers) would overwrite the marker
        env["RA_NOVA_VIRT_DIR"] = HERE  # launch.py: nova.virt.ra_virt_driver is ours
        env.setdefault("HOME", self.dir)
        if extra:
            env.update(extra)
        return env

    def spawn(self, service, argv, extra_env=None, cwd=None):
        """Starts a long-running service in its own session, output appended to its log."""
        out = open(self.logfile(service), "ab")
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=self.env(service, extra_env), cwd=cwd or self.dir,
                                start_new_session=True)
        out.close()
        with self.lock:
            self.procs[service] = proc
        st = proc_stat(proc.pid)
        with open(self.path("run", f"{service}.pid"), "w") as f:
            f.write(f"{proc.pid} {st[2] if st else 0}\n")
        return proc

    def run(self, service, argv, extra_env=None, timeout=None, input_text=None):
        """Runs a one-shot command (db sync, bootstrap), output appended to SERVICE's log."""
        with open(self.logfile(service), "ab") as out:
            out.write(f"\n$ {' '.join(argv)}\n".encode())
            out.flush()
            try:
                p = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT,
                                   input=input_text.encode() if input_text else None,
                                   stdin=None if input_text else subprocess.DEVNULL,
                                   env=self.env(service, extra_env), cwd=self.dir,
                                   timeout=timeout or self.timeout, start_new_session=True)
            except subprocess.TimeoutExpired:
                raise StartError(service, f"'{' '.join(argv[:4])}' did not finish in "
                                 f"{timeout or self.timeout}s", self.logfile(service))
        if p.returncode != 0:
            raise StartError(service, f"'{' '.join(argv[:4])}' exited {p.returncode}",
                             self.logfile(service))

    def py(self, name, target, *args):
        return [PYTHON, LAUNCH, name, target, *args]

    def wait(self, service, check, what, timeout=None, proc_service=None):
        """Polls CHECK until it returns a true value; fails if the process died or time ran out."""
        deadline = time.monotonic() + (timeout or self.timeout)
        proc = self.procs.get(proc_service or service)
        last = None
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise StartError(service, f"exited with status {proc.returncode} before {what}",
                                 self.logfile(proc_service or service))
            try:
                value = check()
                if value:
                    return value
            except Exception as e:  # noqa: BLE001 - any failure just means "not yet"
                last = e
            time.sleep(0.25)
        raise StartError(service, f"not {what} after {timeout or self.timeout}s"
                         + (f" (last error: {last})" if last else ""),
                         self.logfile(proc_service or service))

    def port_open(self, port, host=None):
        with socket.create_connection((host or self.ip, port), timeout=1):
            return True

    def http(self, method, url, body=None, token=None, headers=None, raw=None, ok=(200, 201, 202, 204)):
        h = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if raw is not None:
            data = raw
            h["Content-Type"] = "application/octet-stream"
        if token:
            h["X-Auth-Token"] = token
        h.update(headers or {})
        req = urllib.request.Request(url, data=data, method=method, headers=h)
        try:
            with OPENER.open(req, timeout=60) as r:
                status, rheaders, text = r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            status, rheaders, text = e.code, e.headers, e.read()
        if ok and status not in ok:
            raise RuntimeError(f"{method} {url} -> {status}: {text[:500].decode('utf-8', 'replace')}")
        parsed = None
        if text:
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
        return status, rheaders, parsed

    def timed(self, service, fn):
        t0 = time.monotonic()
        result = fn()
        with self.lock:
            self.timings[service] = time.monotonic() - t0
        return result

    # -- configuration -------------------------------------------------------------------------

    def url(self, service, path=""):
        return f"http://{self.ip}:{PORTS[service]}{path}"

    def db(self, name):
        return (f"mysql+pymysql://ra:{self.secrets['db']}@{self.ip}:{PORTS['mariadb']}/{name}"
                "?charset=utf8")

    def authtoken(self, user):
        return f"""[keystone_authtoken]
www_authenticate_uri = {self.url('keystone', '/v3')}
auth_url = {self.url('keystone', '/v3')}
auth_type = password
username = {user}
password = {self.secrets['service']}
project_name = service
user_domain_name = Default
project_domain_name = Default
region_name = {REGION}
service_token_roles_required = true
"""

    def ksa(self, group, user, extra=""):
        return f"""[{group}]
auth_type = password
auth_url = {self.url('keystone', '/v3')}
username = {user}
password = {self.secrets['service']}
project_name = service
user_domain_name = Default
project_domain_name = Default
region_name = {REGION}
valid_interfaces = public
{extra}"""

    def write(self, relpath, text, mode=0o600):
        full = self.path(relpath)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)
        os.chmod(full, mode)
        return full

    def write_configs(self):
        ip, d, rabbit = self.ip, self.dir, self.transport_url()
        dbg = "true" if self.debug else "false"
        self.write("etc/keystone/keystone.conf", f"""[DEFAULT]
debug = {dbg}
[database]
connection = {self.db('keystone')}
[token]
provider = fernet
expiration = {self.token_expiration}
[fernet_tokens]
key_repository = {d}/keystone/fernet-keys
[credential]
key_repository = {d}/keystone/credential-keys
[cache]
enabled = false
[identity]
# bcrypt's fewest rounds: every user created and every password checked costs ~2 ms, not ~250 ms.
password_hash_rounds = 4
""")
        self.write("etc/placement/placement.conf", f"""[DEFAULT]
debug = {dbg}
[api]
auth_strategy = keystone
[placement_database]
connection = {self.db('placement')}
{self.authtoken('placement')}""")
        self.write("etc/glance/glance-api.conf", f"""[DEFAULT]
debug = {dbg}
bind_host = {ip}
bind_port = {PORTS['glance']}
workers = 0
enabled_backends = fs:file
transport_url = {rabbit}
graceful_shutdown_timeout = 5
[database]
connection = {self.db('glance')}
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = {d}/glance/images
[os_glance_staging_store]
filesystem_store_datadir = {d}/glance/staging
[os_glance_tasks_store]
filesystem_store_datadir = {d}/glance/tasks
[paste_deploy]
flavor = keystone
config_file = {d}/etc/glance/glance-api-paste.ini
[oslo_concurrency]
lock_path = {d}/glance/locks
{self.authtoken('glance')}""")
        # Our own paste pipelines (the packaged ones live in glance-api/nova-api/cinder-api,
        # whose maintainer scripts we avoid): authentication, context, the API.
        self.write("etc/glance/glance-api-paste.ini", """[pipeline:glance-api-keystone]
pipeline = request_id versionnegotiation authtoken context rootapp

[composite:rootapp]
paste.composite_factory = glance.api:root_app_factory
/: apiversions
/v2: apiv2app

[app:apiversions]
paste.app_factory = glance.api.versions:create_resource

[app:apiv2app]
paste.app_factory = glance.api.v2.router:API.factory

[filter:request_id]
paste.filter_factory = oslo_middleware:RequestId.factory

[filter:versionnegotiation]
paste.filter_factory = glance.api.middleware.version_negotiation:VersionNegotiationFilter.factory

[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory
delay_auth_decision = true

[filter:context]
paste.filter_factory = glance.api.middleware.context:ContextMiddleware.factory
""")
        nova_conf = f"""[DEFAULT]
debug = {dbg}
host = realcloud
my_ip = {ip}
transport_url = {rabbit}
graceful_shutdown_timeout = 5
state_path = {d}/nova
instances_path = {d}/nova/instances
compute_driver = {self.compute_driver}
osapi_compute_listen = {ip}
osapi_compute_listen_port = {PORTS['nova-api']}
osapi_compute_workers = 1
[wsgi]
api_paste_config = {d}/etc/nova/api-paste.ini
[api]
auth_strategy = keystone
[api_database]
connection = {self.db('nova_api')}
[database]
connection = {self.db('nova')}
[conductor]
workers = 1
[scheduler]
workers = 1
discover_hosts_in_cells_interval = -1
[oslo_concurrency]
lock_path = {d}/nova/locks
[oslo_messaging_notifications]
driver = noop
[glance]
region_name = {REGION}
valid_interfaces = public
[cinder]
catalog_info = volumev3:cinderv3:publicURL
os_region_name = {REGION}
auth_type = password
auth_url = {self.url('keystone', '/v3')}
username = nova
password = {self.secrets['service']}
project_name = service
user_domain_name = Default
project_domain_name = Default
{self.ksa('placement', 'nova')}
{self.ksa('neutron', 'nova')}
{self.ksa('service_user', 'nova', 'send_service_user_token = true')}
{self.authtoken('nova')}
[ra_test]
spawn_hook = {self.spawn_hook}
destroy_hook = {self.destroy_hook}
"""
        self.write("etc/nova/nova.conf", nova_conf)
        # nova-compute reaches the databases only through the conductor; given their URLs it
        # tries anyway (and logs "No DB access allowed in nova-compute"), so it gets none.
        compute_conf = []
        skip = False
        for line in nova_conf.splitlines():
            if line.startswith("["):
                skip = line in ("[api_database]", "[database]")
            if not skip:
                compute_conf.append(line)
        self.write("etc/nova/nova-compute.conf", "\n".join(compute_conf) + "\n")
        self.write("etc/nova/api-paste.ini", """[composite:osapi_compute]
use = call:nova.api.openstack.urlmap:urlmap_factory
/: versions
/v2.1: api_v21

[composite:api_v21]
use = call:nova.api.auth:pipeline_factory_v21
keystone = request_id faultwrap requestlog authtoken keystonecontext osapi_compute_app_v21

[pipeline:versions]
pipeline = faultwrap versionsapp

[app:versionsapp]
paste.app_factory = nova.api.openstack.compute.versions:Versions.factory

[app:osapi_compute_app_v21]
paste.app_factory = nova.api.openstack.compute:APIRouterV21.factory

[filter:request_id]
paste.filter_factory = oslo_middleware:RequestId.factory

[filter:faultwrap]
paste.filter_factory = nova.api.openstack:FaultWrapper.factory

[filter:requestlog]
paste.filter_factory = nova.api.openstack.requestlog:RequestLog.factory

[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory

[filter:keystonecontext]
paste.filter_factory = nova.api.auth:NovaKeystoneContext.factory
""")
        # Which list filters Cinder lets a non-admin use. Without this file Cinder drops every
        # filter it cannot find allowed, silently: ?metadata= came back ignored (seen here). The
        # lists are the ones Cinder documents as its defaults.
        self.write("etc/cinder/resource_filters.json", json.dumps({
            "volume": ["name", "status", "metadata", "bootable", "migration_status",
                       "availability_zone", "group_id", "size", "created_at", "updated_at"],
            "backup": ["name", "status", "volume_id"],
            "snapshot": ["name", "status", "volume_id", "metadata", "availability_zone"],
            "group": [],
            "group_snapshot": ["status", "group_id"],
            "attachment": ["volume_id", "status", "instance_id", "attach_status"],
            "message": ["resource_uuid", "resource_type", "event_id", "request_id",
                        "message_level"],
            "pool": ["name", "volume_type"],
            "volume_type": [],
        }, indent=2) + "\n")
        self.write("etc/cinder/cinder.conf", f"""[DEFAULT]
debug = {dbg}
host = realcloud
my_ip = {ip}
transport_url = {rabbit}
graceful_shutdown_timeout = 5
auth_strategy = keystone
state_path = {d}/cinder
osapi_volume_listen = {ip}
osapi_volume_listen_port = {PORTS['cinder-api']}
osapi_volume_workers = 1
osapi_max_limit = 3
api_paste_config = {d}/etc/cinder/api-paste.ini
resource_query_filters_file = {d}/etc/cinder/resource_filters.json
enabled_backends = fake
default_volume_type = ra-fake
storage_availability_zone = nova
glance_api_servers = {self.url('glance')}
[fake]
volume_driver = cinder.tests.fake_driver.FakeLoggingVolumeDriver
volume_backend_name = fake
[database]
connection = {self.db('cinder')}
[oslo_concurrency]
lock_path = {d}/cinder/locks
[oslo_messaging_notifications]
driver = noop
[coordination]
backend_url = file://{d}/cinder/coordination
{self.ksa('nova', 'cinder').replace('valid_interfaces = public', 'interface = public')}
{self.authtoken('cinder')}""")
        self.write("etc/cinder/api-paste.ini", """[composite:osapi_volume]
use = call:cinder.api:root_app_factory
/: apiversions
/v3: openstack_volume_api_v3

[composite:openstack_volume_api_v3]
use = call:cinder.api.middleware.auth:pipeline_factory
keystone = request_id faultwrap sizelimit authtoken keystonecontext apiv3

[pipeline:apiversions]
pipeline = request_id faultwrap versionsapp

[app:versionsapp]
paste.app_factory = cinder.api.versions:Versions.factory

[app:apiv3]
paste.app_factory = cinder.api.v3.router:APIRouter.factory

[filter:request_id]
paste.filter_factory = oslo_middleware.request_id:RequestId.factory

[filter:faultwrap]
paste.filter_factory = cinder.api.middleware.fault:FaultWrapper.factory

[filter:sizelimit]
paste.filter_factory = oslo_middleware.sizelimit:RequestBodySizeLimiter.factory

[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory

[filter:keystonecontext]
paste.filter_factory = cinder.api.middleware.auth:CinderKeystoneContext.factory
""")

    def write_neutron_config(self):
        d = self.dir
        # Only neutron-server, ML2 with no mechanism driver and no agent: Nova asks Neutron for an
        # instance's ports and security groups whenever it shows, lists or deletes a server, even
        # one created with "networks": "none". Networks (vxlan, so a project may create its own)
        # and ports can be created; ports are never bound (no agent), which servers without
        # networks never need.
        self.write("etc/neutron/neutron.conf", f"""[DEFAULT]
debug = {"true" if self.debug else "false"}
bind_host = {self.ip}
bind_port = {PORTS['neutron']}
core_plugin = ml2
service_plugins =
auth_strategy = keystone
transport_url = {self.transport_url()}
graceful_shutdown_timeout = 5
api_workers = 0
rpc_workers = 0
rpc_state_report_workers = 0
state_path = {d}/neutron
api_paste_config = {d}/etc/neutron/api-paste.ini
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
setproctitle = off
[database]
connection = {self.db('neutron')}
[ml2]
type_drivers = flat,vlan,vxlan
tenant_network_types = vxlan
mechanism_drivers =
extension_drivers = port_security
[ml2_type_vxlan]
vni_ranges = 1:1000
[oslo_concurrency]
lock_path = {d}/neutron/locks
[oslo_messaging_notifications]
driver = noop
{self.ksa('nova', 'neutron').replace('valid_interfaces = public', 'endpoint_type = public')}
{self.authtoken('neutron')}""")
        self.write("etc/neutron/api-paste.ini", """[composite:neutron]
use = egg:Paste#urlmap
/: neutronversions
/v2.0: neutronapi_v2_0

[composite:neutronapi_v2_0]
use = call:neutron.auth:pipeline_factory
keystone = request_id catch_errors authtoken keystonecontext extensions neutronapiapp_v2_0

[pipeline:neutronversions]
pipeline = request_id catch_errors neutronversionsapp

[app:neutronversionsapp]
paste.app_factory = neutron.pecan_wsgi.app:versions_factory

[app:neutronapiapp_v2_0]
paste.app_factory = neutron.api.v2.router:APIRouter.factory

[filter:request_id]
paste.filter_factory = oslo_middleware:RequestId.factory

[filter:catch_errors]
paste.filter_factory = oslo_middleware:CatchErrors.factory

[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory

[filter:keystonecontext]
paste.filter_factory = neutron.auth:NeutronKeystoneContext.factory

[filter:extensions]
paste.filter_factory = neutron.api.extensions:plugin_aware_extension_middleware_factory
""")

    def transport_url(self):
        return f"rabbit://ra:{self.secrets['rabbit']}@{self.ip}:{PORTS['rabbitmq']}/"

    # -- MariaDB and RabbitMQ --------------------------------------------------------------------

    def mysql_sock(self):
        return self.path("mariadb", "mysqld.sock")

    def start_mariadb(self):
        data = self.path("mariadb", "data")
        self.run("mariadb", ["mariadb-install-db", "--no-defaults", f"--datadir={data}",
                             "--user=root", "--auth-root-authentication-method=socket",
                             "--skip-test-db"])
        self.spawn("mariadb", [
            "mariadbd", "--no-defaults", f"--datadir={data}", "--user=root",
            f"--bind-address={self.ip}", f"--port={PORTS['mariadb']}",
            f"--socket={self.mysql_sock()}", f"--pid-file={self.path('mariadb', 'mysqld.pid')}",
            "--skip-name-resolve", "--skip-log-bin", "--innodb-flush-log-at-trx-commit=0",
            "--innodb-doublewrite=0", "--innodb-buffer-pool-size=128M", "--max-connections=500",
            "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
            "--performance-schema=off", "--innodb-flush-method=nosync", "--skip-sync-frm",
        ])
        self.wait("mariadb", lambda: subprocess.run(
            ["mariadb-admin", "--no-defaults", f"--socket={self.mysql_sock()}", "ping"],
            capture_output=True).returncode == 0, "answering on its socket")
        sql = "".join(f"CREATE DATABASE {n} CHARACTER SET utf8mb4;" for n in DATABASES)
        sql += (f"CREATE USER 'ra'@'%' IDENTIFIED BY '{self.secrets['db']}';"
                "GRANT ALL PRIVILEGES ON *.* TO 'ra'@'%'; FLUSH PRIVILEGES;")
        self.run("mariadb", ["mariadb", "--no-defaults", f"--socket={self.mysql_sock()}", "-uroot"],
                 input_text=sql)

    def rabbit_env(self):
        r = self.path("rabbitmq")
        return {
            "HOME": r, "RABBITMQ_CONF_ENV_FILE": f"{r}/rabbitmq-env.conf",
            "RABBITMQ_CONFIG_FILE": f"{r}/rabbitmq", "RABBITMQ_MNESIA_BASE": f"{r}/mnesia",
            "RABBITMQ_LOG_BASE": f"{r}/log", "RABBITMQ_NODENAME": "ra@localhost",
            "RABBITMQ_ENABLED_PLUGINS_FILE": f"{r}/enabled_plugins",
            "RABBITMQ_PID_FILE": f"{r}/rabbitmq.pid", "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port), "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_CTL_DIST_PORT_MIN": str(self.dist_port + 1),
            "RABBITMQ_CTL_DIST_PORT_MAX": str(self.dist_port + 10),
        }

    def start_rabbitmq(self):
        self.write("rabbitmq/rabbitmq.conf", f"""listeners.tcp.1 = {self.ip}:{PORTS['rabbitmq']}
loopback_users = none
default_user = ra
default_pass = {self.secrets['rabbit']}
log.console = true
log.console.level = warning
log.file = false
""")
        self.write("rabbitmq/enabled_plugins", "[].\n")
        self.write("rabbitmq/rabbitmq-env.conf", "")
        env = self.rabbit_env()
        self.spawn("epmd", ["epmd", "-port", str(self.epmd_port), "-address", "127.0.0.1"], env)
        self.wait("epmd", lambda: self.port_open(self.epmd_port, "127.0.0.1"), "listening", timeout=20)
        self.spawn("rabbitmq", ["/usr/lib/rabbitmq/bin/rabbitmq-server"], env)
        self.wait("rabbitmq", lambda: self.port_open(PORTS["rabbitmq"]), "accepting AMQP")

    # -- Keystone --------------------------------------------------------------------------------

    def uwsgi(self, service, script, env):
        return self.spawn(service, [
            "uwsgi", "--plugin", "python3", "--http-socket", f"{self.ip}:{PORTS[service]}",
            "--wsgi-file", script, "--master", "--processes", "1", "--threads", "8",
            "--die-on-term", "--need-app", "--buffer-size", "65535", "--enable-threads",
            # uWSGI's plain http-socket closes each connection after one response without saying
            # so; clients that pool connections (keystonemiddleware, keystoneauth) then fail with
            # "Remote end closed connection without response" on the next request.
            "--add-header", "Connection: close",
        ], env)

    def sync_keystone(self):
        conf = ["--config-file", self.path("etc/keystone/keystone.conf")]
        for d in ("fernet-keys", "credential-keys"):
            os.makedirs(self.path("keystone", d), mode=0o700, exist_ok=True)
        km = ["keystone-manage"] + conf
        self.run("keystone", km + ["db_sync"])
        self.run("keystone", km + ["fernet_setup", "--keystone-user", "root",
                                   "--keystone-group", "root"])
        self.run("keystone", km + ["credential_setup", "--keystone-user", "root",
                                   "--keystone-group", "root"])
        url = self.url("keystone", "/v3")
        # The password goes in the environment: a command line shows in ps and in the log.
        self.run("keystone", km + ["bootstrap", "--bootstrap-admin-url", url, "--bootstrap-internal-url", url,
                                   "--bootstrap-public-url", url, "--bootstrap-region-id", REGION],
                 {"OS_BOOTSTRAP_PASSWORD": self.secrets["admin"]})

    def start_keystone(self):
        self.uwsgi("keystone", "/usr/bin/keystone-wsgi-public",
                   {"OS_KEYSTONE_CONFIG_DIR": self.path("etc/keystone")})
        self.wait("keystone", lambda: self.http("GET", self.url("keystone", "/v3"))[0] == 200,
                  "answering GET /v3")

    def token(self, user, password, project, domain="Default"):
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"name": domain}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"name": domain}}}}}
        _, headers, data = self.http("POST", self.url("keystone", "/v3/auth/tokens"), body)
        return headers["X-Subject-Token"], data["token"]

    def admin_token(self):
        return self.token("admin", self.secrets["admin"], "admin")[0]

    def register_identities(self):
        """Service project and users, catalog, the test's projects and users."""
        ks, tok = self.url("keystone", "/v3"), self.admin_token()

        def create(kind, body):
            return self.http("POST", f"{ks}/{kind}s", {kind: body}, tok)[2][kind]

        roles = {r["name"]: r["id"] for r in self.http("GET", f"{ks}/roles", token=tok)[2]["roles"]}
        roles["service"] = create("role", {"name": "service"})["id"]
        projects = {}
        for name, desc in (("service", "OpenStack services"), ("ra", "replica-autoscaler tests"),
                           ("ra-other", "a second project, for isolation tests")):
            projects[name] = create("project", {"name": name, "domain_id": "default",
                                                "description": desc})["id"]

        def user(name, password, project, role_names):
            uid = create("user", {"name": name, "password": password, "domain_id": "default",
                                  "default_project_id": projects[project]})["id"]
            for r in role_names:
                self.http("PUT", f"{ks}/projects/{projects[project]}/users/{uid}/roles/{roles[r]}",
                          token=tok)
            return uid

        for svc in ("nova", "cinder", "glance", "placement", "neutron"):
            user(svc, self.secrets["service"], "service", ["admin", "service"])
        ra_uid = user("ra", self.secrets["ra"], "ra", ["member", "reader"])
        user("ra-other", self.secrets["ra-other"], "ra-other", ["member", "reader"])

        catalog = [
            ("compute", "nova", self.url("nova-api", "/v2.1")),
            ("placement", "placement", self.url("placement")),
            ("image", "glance", self.url("glance")),
            ("network", "neutron", self.url("neutron")),
            ("volumev3", "cinderv3", self.url("cinder-api", "/v3/%(project_id)s")),
        ]
        for stype, name, url in catalog:
            sid = create("service", {"type": stype, "name": name})["id"]
            for interface in ("public", "internal"):
                create("endpoint", {"service_id": sid, "interface": interface, "url": url,
                                    "region_id": REGION})
        self.ids = {"projects": projects, "ra_user": ra_uid}

    def application_credential(self):
        tok, _ = self.token("ra", self.secrets["ra"], "ra")
        _, _, data = self.http(
            "POST", self.url("keystone", f"/v3/users/{self.ids['ra_user']}/application_credentials"),
            {"application_credential": {"name": "ra-autoscaler",
                                        "description": "replica-autoscaler tests"}}, tok)
        cred = data["application_credential"]
        return cred["id"], cred["secret"]

    # -- the other services ----------------------------------------------------------------------

    def nova_manage(self, *args):
        self.run("nova-manage", self.py("nova-manage", "nova.cmd.manage:main", "--config-file",
                                        self.path("etc/nova/nova.conf"), *args))

    def sync_nova(self):
        self.nova_manage("api_db", "sync")
        # Without --database_connection, cell0's URL is [database]connection's with "_cell0"
        # appended to the database name (nova_cell0), and no password lands in the log.
        self.nova_manage("cell_v2", "map_cell0")
        self.nova_manage("cell_v2", "create_cell", "--name", "cell1")
        self.nova_manage("db", "sync")

    def nova_service(self, name, module):
        conf = "nova-compute.conf" if name == "nova-compute" else "nova.conf"
        self.spawn(name, self.py(name, f"nova.cmd.{module}:main", "--config-file",
                                 self.path("etc/nova", conf), "--log-file", self.logfile(name)))

    def cinder_service(self, name, module):
        self.spawn(name, self.py(name, f"cinder.cmd.{module}:main", "--config-file",
                                 self.path("etc/cinder/cinder.conf"), "--log-file",
                                 self.logfile(name)))

    # -- start -----------------------------------------------------------------------------------

    def start(self):
        if os.path.exists(self.state_file) and marked_processes(self.dir, self.sessions()):
            raise StartError("realcloud", f"already running in {self.dir} (stop it first)",
                             started=False)
        if os.path.isdir(self.dir):
            for sub in ("etc", "log", "run", "mariadb", "rabbitmq", "keystone", "glance", "nova",
                        "cinder", "neutron"):
                shutil.rmtree(self.path(sub), ignore_errors=True)
        for sub in ("etc", "log", "run", "mariadb", "rabbitmq", "keystone", "glance/images",
                    "glance/staging", "glance/tasks", "nova/instances", "cinder/coordination",
                    "neutron"):
            os.makedirs(self.path(sub), exist_ok=True)
        os.chmod(self.dir, 0o700)
        self.secrets = {k: secrets.token_urlsafe(18) for k in
                        ("db", "rabbit", "admin", "service", "ra", "ra-other")}
        busy = []
        for name, port in list(PORTS.items()) + [("epmd", self.epmd_port), ("rabbitmq-dist", self.dist_port)]:
            host = "127.0.0.1" if name in ("epmd", "rabbitmq-dist") else self.ip
            try:
                with socket.socket() as sock:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind((host, port))
            except OSError as e:
                busy.append(f"{name} {host}:{port} ({e.strerror})")
        if busy:
            raise StartError("realcloud", "ports in use (another cloud running? try "
                             "--ip 127.0.61.1): " + ", ".join(busy), started=False)
        with open(self.state_file, "w") as f:
            json.dump({"ip": self.ip, "started": time.time()}, f)
        self.write_configs()
        self.write_neutron_config()
        t_start = time.monotonic()

        pool = concurrent.futures.ThreadPoolExecutor(max_workers=8)
        ev = {n: threading.Event() for n in ("db", "rabbit", "keystone", "identities",
                                              "placement")}
        failures = []

        def need(*names):
            for n in names:
                while not ev[n].wait(0.5):
                    if failures:
                        raise StartError("realcloud", "aborted")

        def step(fn, done=None):
            def wrapped():
                try:
                    fn()
                    if done:
                        ev[done].set()
                except BaseException as e:
                    failures.append(e)
                    raise
            return pool.submit(wrapped)

        def keystone_track():
            need("db")
            self.timed("keystone-db", self.sync_keystone)
            self.timed("keystone", self.start_keystone)
            ev["keystone"].set()
            self.timed("identities", self.register_identities)

        def placement_track():
            need("db")
            self.timed("placement-db", lambda: self.run("placement", [
                "placement-manage", "--config-file", self.path("etc/placement/placement.conf"),
                "db", "sync"]))
            need("keystone")

            def up():
                self.uwsgi("placement", "/usr/bin/placement-api",
                           {"OS_PLACEMENT_CONFIG_DIR": self.path("etc/placement")})
                self.wait("placement", lambda: self.http("GET", self.url("placement"))[0] == 200,
                          "answering GET /")
            self.timed("placement", up)

        def glance_track():
            need("db")
            self.timed("glance-db", lambda: self.run("glance-manage", self.py(
                "glance-manage", "glance.cmd.manage:main", "--config-file",
                self.path("etc/glance/glance-api.conf"), "db_sync")))
            need("rabbit")

            def up():
                self.spawn("glance", self.py("glance-api", "glance.cmd.api:main", "--config-file",
                                             self.path("etc/glance/glance-api.conf"),
                                             "--log-file", self.logfile("glance")))
                self.wait("glance", lambda: self.http("GET", self.url("glance", "/versions"))[0]
                          == 200, "answering GET /versions")
            self.timed("glance", up)

        def nova_track():
            need("db")
            self.timed("nova-db", self.sync_nova)
            # The scheduler exits at start-up if the catalog has no placement endpoint yet.
            need("rabbit", "identities")
            t0 = time.monotonic()
            self.nova_service("nova-conductor", "conductor")
            self.nova_service("nova-scheduler", "scheduler")
            self.nova_service("nova-api", "api_os_compute")
            need("placement")
            self.nova_service("nova-compute", "compute")
            self.wait("nova-api", lambda: self.http("GET", self.url("nova-api", "/"))[0] == 200,
                      "answering GET /")
            self.timings["nova-api"] = time.monotonic() - t0

        def cinder_track():
            need("db")
            self.timed("cinder-db", lambda: self.run("cinder-manage", self.py(
                "cinder-manage", "cinder.cmd.manage:main", "--config-file",
                self.path("etc/cinder/cinder.conf"), "db", "sync")))
            need("rabbit", "identities")
            t0 = time.monotonic()
            self.cinder_service("cinder-scheduler", "scheduler")
            self.cinder_service("cinder-volume", "volume")
            self.cinder_service("cinder-api", "api")
            self.wait("cinder-api", lambda: self.http("GET", self.url("cinder-api", "/"),
                                                      ok=None)[0] in (200, 300),
                      "answering GET /")
            self.timings["cinder-api"] = time.monotonic() - t0

        def neutron_track():
            need("db")
            self.timed("neutron-db", lambda: self.run("neutron-db-manage", self.py(
                "neutron-db-manage", "neutron.db.migration.cli:main", "--config-file",
                self.path("etc/neutron/neutron.conf"), "upgrade", "heads")))
            need("rabbit", "identities")

            def up():
                self.spawn("neutron", self.py(
                    "neutron-server", "neutron.cmd.eventlet.server:main", "--config-file",
                    self.path("etc/neutron/neutron.conf"), "--log-file", self.logfile("neutron")))
                self.wait("neutron", lambda: self.http("GET", self.url("neutron", "/"))[0] == 200,
                          "answering GET /")
            self.timed("neutron", up)

        futures = [
            step(lambda: self.timed("mariadb", self.start_mariadb), "db"),
            step(lambda: self.timed("rabbitmq", self.start_rabbitmq), "rabbit"),
            step(keystone_track, "identities"),
            step(placement_track, "placement"),
            step(glance_track), step(nova_track), step(cinder_track), step(neutron_track),
        ]
        try:
            for f in concurrent.futures.as_completed(futures):
                f.result()
            self.timed("resources", self.create_resources)
        except BaseException as e:
            pool.shutdown(wait=False, cancel_futures=True)
            err = next((x for x in failures if isinstance(x, StartError)
                        and x.service != "realcloud"), e)
            self.fail(err)
            raise SystemExit(1)
        pool.shutdown()
        total = time.monotonic() - t_start
        order = ["mariadb", "rabbitmq", "keystone-db", "keystone", "identities", "placement-db",
                 "placement", "glance-db", "glance", "nova-db", "nova-api", "nova-compute",
                 "cinder-db", "cinder-api", "cinder-volume", "neutron-db", "neutron", "resources"]
        summary = ", ".join(f"{n} {self.timings[n]:.1f}s" for n in order if n in self.timings)
        say(f"up in {total:.0f}s ({summary}); env in {self.path('openstack.env')}")

    def fail(self, err):
        if isinstance(err, StartError):
            say(f"start failed: {err.service}: {err.message}")
            if err.log:
                sys.stdout.write(f"--- last lines of {err.log}\n{log_tail(err.log)}\n---\n")
        else:
            say(f"start failed: {type(err).__name__}: {err}")
        sys.stdout.flush()
        if not isinstance(err, StartError) or err.started:
            self.stop(quiet=True)

    # -- the test's resources ----------------------------------------------------------------------

    def create_resources(self):
        tok = self.admin_token()
        admin_project = None
        _, _, data = self.http("GET", self.url("keystone", "/v3/auth/tokens"), token=tok,
                               headers={"X-Subject-Token": tok})
        admin_project = data["token"]["project"]["id"]
        ra_project = self.ids["projects"]["ra"]
        nova = self.url("nova-api", "/v2.1")
        cinder = self.url("cinder-api", f"/v3/{admin_project}")

        # Image: a few bytes, public, so that any project can boot it.
        _, _, image = self.http("POST", self.url("glance", "/v2/images"), {
            "name": "ra-replica", "disk_format": "raw", "container_format": "bare",
            "visibility": "public", "min_disk": 0}, tok)
        self.http("PUT", self.url("glance", f"/v2/images/{image['id']}/file"), token=tok,
                  raw=b"replica-autoscaler test image\n" + b"\0" * 994)
        self.wait("glance", lambda: self.http("GET", self.url("glance", f"/v2/images/{image['id']}"),
                                              token=tok)[2]["status"] == "active",
                  "making the image active", timeout=60)

        _, _, flavor = self.http("POST", f"{nova}/flavors", {"flavor": {
            "name": "ra.small", "ram": 512, "vcpus": 1, "disk": 1}}, tok)
        flavor_id = flavor["flavor"]["id"]

        _, _, vtype = self.http("POST", f"{cinder}/types", {"volume_type": {
            "name": "ra-fake", "extra_specs": {"volume_backend_name": "fake"},
            "os-volume-type-access:is_public": True}}, tok)

        # The compute host registers itself in the cell database; map it, then wait until Nova's
        # scheduler can see it (placement has its resource provider).
        t0 = time.monotonic()
        nova_json = {"OpenStack-API-Version": "compute 2.53", "X-OpenStack-Nova-API-Version": "2.53"}

        def services_up(url, binaries, headers=None):
            svcs = self.http("GET", url, token=tok, headers=headers)[2]["services"]
            return binaries <= {s["binary"] for s in svcs if s["state"] == "up"}
        for b in ("nova-conductor", "nova-scheduler", "nova-compute"):
            self.wait(b, lambda: services_up(f"{nova}/os-services", {b}, nova_json),
                      "reported up in os-services")
        self.wait("nova-compute", lambda: self.http(
            "GET", self.url("placement", "/resource_providers"), token=tok,
            headers={"OpenStack-API-Version": "placement 1.0"})[2]["resource_providers"],
            "registered as a resource provider in placement")
        self.nova_manage("cell_v2", "discover_hosts")
        self.wait("nova-compute", lambda: self.http(
            "GET", f"{nova}/os-hypervisors", token=tok, headers=nova_json)[2]["hypervisors"],
            "listed in os-hypervisors")
        self.timings["nova-compute"] = time.monotonic() - t0 + self.timings.get("nova-api", 0)

        t0 = time.monotonic()

        for b in ("cinder-scheduler", "cinder-volume"):
            self.wait(b, lambda: services_up(f"{cinder}/os-services", {b}),
                      "reported up in os-services")
        self.timings["cinder-volume"] = time.monotonic() - t0 + self.timings.get("cinder-api", 0)

        cred_id, cred_secret = self.application_credential()
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise StartError(name, f"exited with status {proc.returncode}",
                                 self.logfile(name))
        env = {
            "OS_AUTH_URL": self.url("keystone", "/v3"), "OS_IDENTITY_API_VERSION": "3",
            "OS_REGION_NAME": REGION, "OS_INTERFACE": "public",
            "OS_USERNAME": "ra", "OS_PASSWORD": self.secrets["ra"], "OS_PROJECT_NAME": "ra",
            "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_NAME": "Default",
            "RA_PROJECT_ID": ra_project, "RA_USER_ID": self.ids["ra_user"],
            "RA_APP_CRED_ID": cred_id, "RA_APP_CRED_SECRET": cred_secret,
            "RA_ADMIN_USERNAME": "admin", "RA_ADMIN_PASSWORD": self.secrets["admin"],
            "RA_ADMIN_PROJECT": "admin", "RA_ADMIN_PROJECT_ID": admin_project,
            "RA_OTHER_USERNAME": "ra-other", "RA_OTHER_PASSWORD": self.secrets["ra-other"],
            "RA_OTHER_PROJECT": "ra-other", "RA_OTHER_PROJECT_ID": self.ids["projects"]["ra-other"],
            "RA_IMAGE_ID": image["id"], "RA_FLAVOR_ID": flavor_id,
            "RA_VOLUME_TYPE": vtype["volume_type"]["name"],
            "RA_VOLUME_TYPE_ID": vtype["volume_type"]["id"], "RA_AVAILABILITY_ZONE": "nova",
            "RA_KEYSTONE_URL": self.url("keystone", "/v3"),
            "RA_COMPUTE_URL": self.url("nova-api", "/v2.1"),
            "RA_VOLUME_URL": self.url("cinder-api", f"/v3/{ra_project}"),
            "RA_IMAGE_URL": self.url("glance"), "RA_NETWORK_URL": self.url("neutron"), "RA_PLACEMENT_URL": self.url("placement"),
            "RA_TOKEN_EXPIRATION": str(self.token_expiration),
            "RA_REALCLOUD_DIR": self.dir,
        }
        for key, pkg in VERSION_PACKAGES.items():
            env[f"RA_VERSION_{key}"] = subprocess.run(
                ["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True,
                text=True).stdout.strip() or "unknown"
        self.write("openstack.env", "".join(f"{k}={shell_quote(v)}\n" for k, v in env.items()))

    # -- stop and status -------------------------------------------------------------------------

    def sessions(self):
        """(pid, start time, service) of every service leader start recorded in DIR/run."""
        found = []
        run = self.path("run")
        if os.path.isdir(run):
            for name in os.listdir(run):
                try:
                    with open(os.path.join(run, name)) as f:
                        pid, started = (int(x) for x in f.read().split())
                    found.append((pid, started, name[:-len(".pid")]))
                except (OSError, ValueError):
                    pass
        return found

    def stop(self, quiet=False, grace=10):
        run = self.path("run")
        sessions = self.sessions()
        pids = set(marked_processes(self.dir, sessions))
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            pids = {p for p in pids if alive(p)} | set(marked_processes(self.dir, sessions))
            pids = {p for p in pids if alive(p)}
            if not pids:
                break
            time.sleep(0.2)
        killed, killed_names = 0, set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # KILL until none is left, new ones included
            left = [p for p in set(marked_processes(self.dir, sessions)) | pids if alive(p)]
            if not left:
                break
            for pid in left:
                try:
                    killed_names.add(process_service(pid) or str(pid))
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
                except OSError:
                    pass
            time.sleep(0.3)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        left = [p for p in marked_processes(self.dir, sessions) if alive(p)]
        if os.path.isdir(run):
            shutil.rmtree(run, ignore_errors=True)
        if left:
            say(f"stop: {len(left)} processes would not die: {left}")
            return 1
        if not quiet:
            say("stopped" + (f" ({killed} processes of {', '.join(sorted(killed_names))} killed"
                                f" after {grace}s)" if killed else ""))
        return 0

    def status(self):
        per = {}
        sessions = self.sessions()
        for pid in marked_processes(self.dir, sessions):
            if alive(pid):
                st = proc_stat(pid)
                s = process_service(pid) or next(
                    (n for leader, _, n in sessions if st and st[1] == leader), "?")
                n, rss = per.get(s, (0, 0))
                per[s] = (n + 1, rss + rss_kb(pid))
        expected = ["mariadb", "epmd", "rabbitmq", "keystone", "placement", "glance",
                    "nova-api", "nova-conductor", "nova-scheduler", "nova-compute", "cinder-api",
                    "cinder-scheduler", "cinder-volume", "neutron"]
        ok = True
        total = 0
        for s in expected + sorted(set(per) - set(expected)):
            n, rss = per.get(s, (0, 0))
            total += rss
            ok &= n > 0 or s not in expected
            print(f"{s:18} {'up' if n else 'DOWN':5} processes {n:2}  rss {rss / 1024:7.1f} MB")
        print(f"{'total':18} {'':5} processes {sum(n for n, _ in per.values()):2}  "
              f"rss {total / 1024:7.1f} MB")
        return 0 if ok else 1


def shell_quote(value):
    value = str(value)
    if value and all(c.isalnum() or c in "@%+=:,./-_" for c in value):
        return value
    return "'" + value.replace("'", "'\"'\"'") + "'"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=["start", "stop", "status"])
    p.add_argument("--dir", required=True, help="all state, configuration and logs go here")
    p.add_argument("--ip", default=os.environ.get("RA_REALCLOUD_IP", "127.0.60.1"),
                   help="loopback address the services listen on (default 127.0.60.1)")
    p.add_argument("--token-expiration", type=int, default=600,
                   help="Keystone token lifetime in seconds (default 600, at least 300)")
    p.add_argument("--timeout", type=int, default=180,
                   help="seconds to wait for each step before giving up (default 180)")
    p.add_argument("--debug", action="store_true", help="debug logging in every service")
    p.add_argument("--spawn-hook", default="", metavar="COMMAND",
                   help="run COMMAND when nova-compute spawns a server (see ra_virt_driver.py)")
    p.add_argument("--destroy-hook", default="", metavar="COMMAND",
                   help="run COMMAND when nova-compute destroys a server")
    p.add_argument("--compute-driver", default=None,
                   help="nova-compute's compute_driver (default fake.FakeDriver, or "
                        "ra_virt_driver.RADriver when a hook is given)")
    a = p.parse_args()
    if a.token_expiration < 300:
        # keystoneauth renews a token once it has less than 120 s left: below ~300 s every
        # service re-authenticates on almost every call and Keystone burns a core (seen at 60 s).
        p.error("--token-expiration must be at least 300 seconds")
    if not a.ip.startswith("127."):
        p.error("--ip must be a loopback address (127.0.0.0/8)")
    cloud = Cloud(a.dir, a.ip, a.token_expiration, a.timeout, a.debug, a.spawn_hook,
                  a.destroy_hook, a.compute_driver)
    if a.command == "start":
        os.makedirs(cloud.dir, exist_ok=True)
        try:
            cloud.start()
        except StartError as e:
            cloud.fail(e)
            return 1
        except KeyboardInterrupt:
            cloud.stop(quiet=True)
            return 130
        return 0
    if a.command == "stop":
        return cloud.stop()
    return cloud.status()


if __name__ == "__main__":
    sys.exit(main())
