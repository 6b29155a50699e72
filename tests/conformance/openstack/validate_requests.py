#!/usr/bin/python3
"""Conformance: every request body a client sent to the cloud simulator (its --capture file)
is checked against the request schemas of Nova or Cinder themselves (python3-nova,
python3-cinder), the schema chosen for the microversion the request carried, exactly as
their API controllers choose it: the @validation.schema decorators of the `create` methods are
read from the installed Nova/Cinder sources and evaluated in their own modules.

  validate_requests.py --service compute|volume CAPTURE.jsonl

Nova and Cinder cannot share one interpreter (their oslo configuration and object registries
collide), so each service is a separate run. Exit 0 when every body validates and there was at
least one to check.
"""
import argparse
import ast
import inspect
import json
import re
import sys
import textwrap
import warnings

warnings.filterwarnings("ignore")


def version_tuple(text):
    m = re.fullmatch(r"(\d+)\.(\d+)", str(text))
    if not m:
        raise ValueError(f"not a microversion: {text!r}")
    return int(m.group(1)), int(m.group(2))


def decorated_schemas(cls, method, module):
    """(schema, min, max) for every @validation.schema(...) on cls.method, from the source."""
    source = textwrap.dedent(inspect.getsource(cls))
    tree = ast.parse(source)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == method:
            for dec in node.decorator_list:
                if not (isinstance(dec, ast.Call) and isinstance(dec.func, ast.Attribute)
                        and dec.func.attr == "schema"):
                    continue
                args = [eval(compile(ast.Expression(a), "<decorator>", "eval"), vars(module))
                        for a in dec.args]
                schema = args[0]
                lo = args[1] if len(args) > 1 else None
                hi = args[2] if len(args) > 2 else None
                out.append((schema, lo, hi))
    if not out:
        raise RuntimeError(f"no @validation.schema found on {cls.__name__}.{method}")
    return out


def pick(schemas, version):
    for schema, lo, hi in schemas:
        if lo is not None and version < version_tuple(lo):
            continue
        if hi is not None and version > version_tuple(hi):
            continue
        return schema
    raise RuntimeError(f"no schema for microversion {version}")


def header(entry, name):
    for k, v in entry["headers"].items():
        if k.lower() == name.lower():
            return v
    return None


def microversion(entry, service, default):
    generic = header(entry, "OpenStack-API-Version")
    if generic:
        words = generic.split()
        if len(words) == 2 and words[0] == service:
            return version_tuple(words[1])
    if service == "compute" and header(entry, "X-OpenStack-Nova-API-Version"):
        return version_tuple(header(entry, "X-OpenStack-Nova-API-Version"))
    return default


def compute_checks():
    from nova.api.openstack.compute import servers
    from nova.api.validation import validators
    schemas = decorated_schemas(servers.ServersController, "create", servers)

    def check(entry):
        version = microversion(entry, "compute", (2, 1))
        validators._SchemaValidator(pick(schemas, version)).validate(entry["body"])
        return f"POST /servers at {version[0]}.{version[1]}"
    return [(re.compile(r".*/servers$"), check)]


def volume_checks():
    from cinder import objects
    objects.register_all()
    from cinder.api.v3 import snapshots, volumes
    from cinder.api.validation import validators
    volume_schemas = decorated_schemas(volumes.VolumeController, "create", volumes)
    snapshot_schemas = decorated_schemas(snapshots.SnapshotsController, "create", snapshots)

    def checker(schemas, what):
        def check(entry):
            version = microversion(entry, "volume", (3, 0))
            validators._SchemaValidator(pick(schemas, version)).validate(entry["body"])
            return f"POST {what} at {version[0]}.{version[1]}"
        return check
    return [(re.compile(r".*/v3/[^/]+/volumes$"), checker(volume_schemas, "/volumes")),
            (re.compile(r".*/v3/[^/]+/snapshots$"), checker(snapshot_schemas, "/snapshots"))]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--service", choices=["compute", "volume"], required=True)
    p.add_argument("capture")
    args = p.parse_args()
    checks = compute_checks() if args.service == "compute" else volume_checks()
    checked = failed = 0
    with open(args.capture) as f:
        entries = [json.loads(line) for line in f if line.strip()]
    for entry in entries:
        if entry["service"] != args.service or entry["method"] != "POST":
            continue
        for pattern, check in checks:
            if not pattern.fullmatch(entry["path"]):
                continue
            checked += 1
            try:
                what = check(entry)
                print(f"ok   {what}: {json.dumps(entry['body'])[:160]}")
            except Exception as e:  # nova/cinder ValidationError, or a body that is not JSON
                failed += 1
                print(f"FAIL {entry['path']}: {type(e).__name__}: {e}\n     body: {json.dumps(entry['body'])}")
    print(f"{checked - failed} passed, {failed} failed")
    if checked == 0:
        print(f"no {args.service} request bodies were captured", file=sys.stderr)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
