#!/usr/bin/python3
"""Runs an OpenStack console entry point by module path.

Debian's python3-nova, python3-cinder and python3-glance ship the code of the services but not
their /usr/bin scripts (those come with nova-api, cinder-volume, ... whose maintainer scripts
configure system-wide databases and services). This does what such a script would:

    launch.py NAME MODULE:FUNCTION [ARGS...]

runs MODULE.FUNCTION() with sys.argv = [NAME, ARGS...], so the service sees its usual program
name (oslo.log and nova's service records use it). With RA_NOVA_VIRT_DIR set, modules in that
directory are importable as nova.virt.<module>, so compute_driver can name a driver of ours.
"""
import importlib
import os
import sys


def main():
    if len(sys.argv) < 3 or ":" not in sys.argv[2]:
        sys.stderr.write("usage: launch.py NAME MODULE:FUNCTION [ARGS...]\n")
        return 2
    name, target = sys.argv[1], sys.argv[2]
    module, function = target.split(":", 1)
    sys.argv = [name] + sys.argv[3:]
    entry = getattr(importlib.import_module(module), function)
    virt_dir = os.environ.get("RA_NOVA_VIRT_DIR")
    if virt_dir:
        # Nova (Zed) loads compute_driver only as nova.virt.<compute_driver>: let a module of
        # ours in VIRT_DIR be found there (after the import above, which patched eventlet).
        import nova.virt
        nova.virt.__path__.append(virt_dir)
    return entry()


if __name__ == "__main__":
    sys.exit(main())
