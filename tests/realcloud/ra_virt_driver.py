"""A Nova virt driver for tests: nova.virt.fake.FakeDriver plus two hooks.

nova-compute loads it with compute_driver = ra_virt_driver.RADriver (launch.py makes this
directory part of nova.virt). In nova.conf:

    [ra_test]
    spawn_hook = /path/to/script     run when an instance is spawned, after FakeDriver's spawn
    destroy_hook = /path/to/script   run when an instance is destroyed, before FakeDriver's destroy
    hook_timeout = 60

Each hook runs with RA_HOOK (spawn or destroy), RA_INSTANCE_UUID, RA_INSTANCE_NAME (the server's
display name), RA_PROJECT_ID and RA_USER_DATA (the server's user_data, base64-decoded) in its
environment. A failing spawn hook fails the build as a guest that does not boot would: Nova
reschedules, and with one compute host the server goes to ERROR with the fault "Exceeded maximum
number of retries". A failing destroy hook is logged and the instance is destroyed anyway.
"""
import base64
import os
import subprocess

from oslo_config import cfg
from oslo_log import log as logging

import nova.conf
from nova import exception
from nova.virt import fake

LOG = logging.getLogger(__name__)
CONF = nova.conf.CONF
CONF.register_opts([
    cfg.StrOpt("spawn_hook", default="", help="command run after an instance is spawned"),
    cfg.StrOpt("destroy_hook", default="", help="command run before an instance is destroyed"),
    cfg.IntOpt("hook_timeout", default=60, min=1, help="seconds a hook may run"),
], group="ra_test")


def _user_data(instance):
    if not instance.user_data:
        return ""
    try:
        return base64.b64decode(instance.user_data).decode("utf-8", "replace")
    except (ValueError, TypeError):
        return ""


def _run_hook(kind, command, instance):
    """Runs COMMAND for INSTANCE; returns (exit status, output tail)."""
    env = dict(os.environ, RA_HOOK=kind, RA_INSTANCE_UUID=instance.uuid,
               RA_INSTANCE_NAME=instance.display_name or "",
               RA_PROJECT_ID=instance.project_id or "", RA_USER_DATA=_user_data(instance))
    try:
        p = subprocess.run([command], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=CONF.ra_test.hook_timeout)
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {CONF.ra_test.hook_timeout}s"
    except OSError as e:
        return -1, str(e)
    out = (p.stdout + p.stderr).decode("utf-8", "replace")[-2000:]
    return p.returncode, out


class RADriver(fake.FakeDriver):
    def spawn(self, context, instance, image_meta, injected_files, admin_password, allocations,
              network_info=None, block_device_info=None, power_on=True, accel_info=None):
        super().spawn(context, instance, image_meta, injected_files, admin_password, allocations,
                      network_info=network_info, block_device_info=block_device_info,
                      power_on=power_on, accel_info=accel_info)
        command = CONF.ra_test.spawn_hook
        if command:
            status, out = _run_hook("spawn", command, instance)
            LOG.info("spawn hook %s exited %s: %s", command, status, out, instance=instance)
            if status != 0:
                raise exception.InstanceDeployFailure(
                    reason=f"spawn hook exited {status}: {out[-300:]}")

    def destroy(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, destroy_secrets=True):
        command = CONF.ra_test.destroy_hook
        if command:
            status, out = _run_hook("destroy", command, instance)
            log = LOG.info if status == 0 else LOG.warning
            log("destroy hook %s exited %s: %s", command, status, out, instance=instance)
        super().destroy(context, instance, network_info, block_device_info=block_device_info,
                        destroy_disks=destroy_disks, destroy_secrets=destroy_secrets)
