#!/usr/bin/python3
"""Runs the cloud simulator (the package tests/sandbox/cloudsim; see app.py for what it is).
Also runnable as `python3 -m cloudsim` from tests/sandbox."""
import os
import sys

# The import root is tests/sandbox (its modules and packages: httpbase, pgctl, cloudsim, ...),
# not this directory, whose module names (nova, cinder, ...) must not shadow anything.
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from cloudsim.app import main  # noqa: E402

if __name__ == "__main__":
    main()
