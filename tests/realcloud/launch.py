#!/usr/bin/python3
"""Runs an OpenStack console entry point by module path.

Debian's python3-nova, python3-cinder and python3-glance ship the code of the services but not
their /usr/bin scripts (those come with nova-api, cinder-volume, ... whose maintainer scripts
configure system-wide databases and services). This does what such a script would:

    launch.py NAME MODULE:FUNCTION [ARGS...]

runs MODULE.FUNCTION() with sys.argv = [NAME, ARGS...], so the service sees its usual program
name (oslo.log and nova's service records use it).
"""
import importlib
import sys


def main():
    if len(sys.argv) < 3 or ":" not in sys.argv[2]:
        sys.stderr.write("usage: launch.py NAME MODULE:FUNCTION [ARGS...]\n")
        return 2
    name, target = sys.argv[1], sys.argv[2]
    module, function = target.split(":", 1)
    sys.argv = [name] + sys.argv[3:]
    return getattr(importlib.import_module(module), function)()


if __name__ == "__main__":
    sys.exit(main())
