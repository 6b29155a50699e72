#!/usr/bin/python3
"""Validates Data Plane API traffic against the official Swagger 2.0 specifications.

Runs the Data Plane integration tests (C++ client against the double over real HAProxy) with
RA_DATAPLANE_CAPTURE_DIR set, so the double records every request and answer, then checks each
recorded exchange against the specification of its API version (/v2: Data Plane API 2.9, /v3: 3.3):

  request   the path and method exist; every query parameter is declared, has the declared type,
            enum and pattern; required ones are present; path parameters match their pattern; the
            JSON body validates against the body parameter's schema
  response  the status code is declared for the operation (or `default` applies); the body
            validates against that response's schema; a 204 has no body; an error answer is
            {"code": <its status>, "message": "..."}

Schemas are Swagger 2.0, checked with jsonschema's Draft 4 validator after $refs are resolved and
two Swagger-only notions translated: `x-nullable: true` (also null) and `allOf` beside
`additionalProperties: false` (go-swagger merges the members' properties). One relaxation, the
one PROVENANCE.md names: the stats `status` and `check_status` enums are dropped, because HAProxy
reports values the specification does not list ("UP 1/2", "DRAIN", "MAINT (via be/srv)", "* L4TOUT").

Requests sent by the C++ client (User-Agent "replica-autoscaler") are counted apart: each API
version must have seen client traffic, so a silent capture failure cannot pass.

  check_conformance.py --integration-binary BIN [--spec-dir DIR]
  check_conformance.py --captures DIR [--spec-dir DIR]     (validate existing captures only)

Exit 77 (ctest SKIP_RETURN_CODE) when the specification directory is absent.
"""
import argparse
import copy
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

import jsonschema
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
DEFAULT_SPEC_DIR = os.path.join(REPO, "..", "shared", "specs", "haproxy-dataplaneapi")
SPEC_FILES = {"v2": "v2-dataplaneapi-2.9.yaml", "v3": "v3-dataplaneapi-3.3.yaml"}
CLIENT_AGENT = "replica-autoscaler"
# The relaxation PROVENANCE.md documents: HAProxy's real status strings exceed these enums.
RELAXED_ENUMS = {("native_stat_stats", "status"), ("native_stat_stats", "check_status")}


class Spec:
    def __init__(self, path):
        with open(path) as f:
            self.raw = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        for definition, prop in RELAXED_ENUMS:
            self.raw["definitions"][definition]["properties"][prop].pop("enum", None)
        self.ops = []  # (regex, template, path item)
        for template, item in self.raw["paths"].items():
            regex = "^" + re.sub(r"\{[^}]+\}", "([^/]+)", template) + "$"
            self.ops.append((re.compile(regex), template, item))
        self._resolved = {}

    def lookup(self, ref):
        if not ref.startswith("#/"):
            raise ValueError(f"external $ref not supported: {ref}")
        node = self.raw
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def resolve(self, schema, stack=()):
        """The schema with every $ref inlined and Swagger-only notions made JSON Schema."""
        if isinstance(schema, list):
            return [self.resolve(s, stack) for s in schema]
        if not isinstance(schema, dict):
            return schema
        if "$ref" in schema:
            ref = schema["$ref"]
            if ref in stack:  # recursive model: accept anything below this point
                return {}
            if ref not in self._resolved:
                self._resolved[ref] = self.resolve(self.lookup(ref), stack + (ref,))
            return self._resolved[ref]
        out = {}
        for key, value in schema.items():
            if key in ("properties", "definitions", "patternProperties"):
                out[key] = {k: self.resolve(v, stack) for k, v in value.items()}
            elif key in ("items", "additionalProperties", "allOf", "anyOf", "oneOf", "not"):
                out[key] = self.resolve(value, stack)
            elif key.startswith("x-") or key in ("example", "readOnly", "discriminator",
                                                   "externalDocs", "xml"):
                continue
            else:
                out[key] = copy.deepcopy(value)
        if "allOf" in out and out.get("additionalProperties") is False:
            # go-swagger: the object is the union of its members' properties, nothing else.
            merged_props, required = dict(out.get("properties", {})), list(out.get("required", []))
            for member in out.pop("allOf"):
                merged_props.update(member.get("properties", {}))
                required += member.get("required", [])
            out["properties"] = merged_props
            if required:
                out["required"] = sorted(set(required))
            out["type"] = "object"
        if schema.get("x-nullable") is True and "type" in out:
            types = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = types + ["null"]
            if "enum" in out:
                out["enum"] = out["enum"] + [None]
        return out

    def resolve_object(self, obj):
        """A parameter or response object: its $ref and its schema resolved."""
        if "$ref" in obj:
            obj = self.lookup(obj["$ref"])
        obj = dict(obj)
        if "schema" in obj:
            obj["schema"] = self.resolve(obj["schema"])
        return obj

    def operation(self, path, method):
        for regex, template, item in self.ops:
            m = regex.match(path)
            if m:
                op = item.get(method.lower())
                if op is None:
                    return None, template, None, None
                params = [self.resolve_object(p)
                          for p in item.get("parameters", []) + op.get("parameters", [])]
                names = re.findall(r"\{([^}]+)\}", template)
                return op, template, params, dict(zip(names, m.groups()))
        return None, None, None, None


def check_scalar(name, where, value, param, errors):
    t = param.get("type", "string")
    if t == "integer":
        if not re.fullmatch(r"-?\d+", value):
            errors.append(f"{where} parameter {name}={value!r} is not an integer")
            return
    elif t == "boolean":
        if value not in ("true", "false", "1", "0"):
            errors.append(f"{where} parameter {name}={value!r} is not a boolean")
            return
    if "enum" in param and value not in [str(e) for e in param["enum"]]:
        errors.append(f"{where} parameter {name}={value!r} not in {param['enum']}")
    if "pattern" in param and not re.search(param["pattern"], value):
        errors.append(f"{where} parameter {name}={value!r} does not match {param['pattern']}")


def validate(schema, instance, what, errors):
    validator = jsonschema.Draft4Validator(schema)
    for e in sorted(validator.iter_errors(instance), key=lambda e: list(e.path))[:5]:
        where = "/".join(str(p) for p in e.path)
        message = e.message if len(e.message) < 240 else (
            f"fails '{e.validator}': {str(e.validator_value)[:120]}")
        errors.append(f"{what} at '{where}': {message}")


def check_record(spec, rec):
    errors = []
    prefix = "/" + rec["api"]
    path = rec["path"]
    if not path.startswith(prefix + "/"):
        if rec["status"] == 404:  # asking the other API version: the API's own 404 body
            validate(spec.resolve({"$ref": "#/definitions/error"}), rec["response_body"],
                     "404 body", errors)
            return errors, None
        return [f"path {path} outside {prefix}"], None
    op, template, params, path_values = spec.operation(path[len(prefix):], rec["method"])
    if op is None:
        return [f"{rec['method']} {path}: no such operation in the specification"
                f" (template {template})"], None
    key = f"{rec['method']} {template}"

    # Request.
    query = rec["query"]
    declared = {p["name"]: p for p in params if p.get("in") == "query"}
    for name, value in query.items():
        if name not in declared:
            errors.append(f"query parameter {name} is not declared for {key}")
        else:
            check_scalar(name, "query", value, declared[name], errors)
    for name, p in declared.items():
        if p.get("required") and name not in query:
            errors.append(f"required query parameter {name} missing")
    for p in params:
        if p.get("in") == "path":
            check_scalar(p["name"], "path", path_values.get(p["name"], ""), p, errors)
    body_params = [p for p in params if p.get("in") == "body"]
    if rec["request_body"]:
        if not body_params:
            errors.append(f"{key} takes no body but one was sent")
        else:
            try:
                body = json.loads(rec["request_body"])
            except ValueError as e:
                errors.append(f"request body is not JSON: {e}")
            else:
                validate(body_params[0]["schema"], body, "request body", errors)
    elif any(p.get("required") for p in body_params) and rec["status"] != 401:
        errors.append(f"{key} requires a body")

    # Response.
    status = rec["status"]
    responses = op.get("responses", {})
    response = responses.get(str(status))
    if response is None:
        response = responses.get("default")
        if response is None or 200 <= status < 300:
            errors.append(f"status {status} is not declared for {key}")
            return errors, key
    response = spec.resolve_object(response)
    body = rec["response_body"]
    if status == 204 and body is not None:
        errors.append("204 with a body")
    if "schema" in response:
        if body is None and status != 202:
            errors.append(f"status {status} must carry a body")
        elif body is not None:
            validate(response["schema"], body, f"{status} body", errors)
    if status >= 400:
        if not (isinstance(body, dict) and body.get("code") == status and
                isinstance(body.get("message"), str)):
            errors.append(f"error body is not {{code: {status}, message}}: {body!r}")
    return errors, key


def self_test(specs):
    """The checker must reject what the specifications forbid, or its passing means nothing."""
    def rec(api, method, path, query, body, status, answer):
        return {"api": api, "method": method, "path": path, "query": query,
                "request_body": body, "status": status, "response_body": answer}
    bad = [
        rec("v3", "POST", "/v3/services/haproxy/configuration/backends/be/servers",
            {"version": "1"}, '{"name":"a","address":"1.2.3.4","bogus":1}', 202,
            {"name": "a", "address": "1.2.3.4"}),
        rec("v3", "POST", "/v3/services/haproxy/configuration/backends/be/servers",
            {"version": "one"}, '{"name":"a","address":"1.2.3.4"}', 202,
            {"name": "a", "address": "1.2.3.4"}),
        rec("v2", "GET", "/v2/services/haproxy/stats/native", {}, "", 200,
            {"runtimeAPI": "x", "stats": []}),
        rec("v3", "PUT", "/v3/services/haproxy/transactions/t", {}, "", 406,
            {"code": 409, "message": "m"}),
        rec("v3", "PUT", "/v3/services/haproxy/runtime/backends/be/servers/a", {},
            '{"admin_state":"paused"}', 200, {"name": "a", "admin_state": "ready"}),
        rec("v2", "GET", "/v2/services/haproxy/configuration/version", {}, "", 200, "7"),
    ]
    good = rec("v3", "GET", "/v3/services/haproxy/stats/native",
               {"type": "server", "parent": "be"}, "", 200,
               {"runtimeAPI": "x", "stats": [{"type": "server", "name": "a", "backend_name": "be",
                                              "stats": {"status": "MAINT (via be/b)",
                                                        "check_status": "* L4TOUT", "scur": 0}}]})
    for r in bad:
        if not check_record(specs[r["api"]], r)[0]:
            sys.exit(f"conformance self-test: the checker accepted {r}")
    errors = check_record(specs["v3"], good)[0]
    if errors:
        sys.exit(f"conformance self-test: the checker rejected a valid exchange: {errors}")


def run_integration(binary, capture_dir):
    env = dict(os.environ, RA_DATAPLANE_CAPTURE_DIR=capture_dir)
    r = subprocess.run([binary, "--gtest_filter=Api/DataplaneItest.*", "--gtest_brief=1"],
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=600)
    if r.returncode != 0:
        print(r.stdout[-6000:])
        sys.exit("conformance: the Data Plane integration tests failed; nothing to validate")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--spec-dir", default=DEFAULT_SPEC_DIR)
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--integration-binary")
    group.add_argument("--captures")
    args = p.parse_args()

    spec_dir = os.path.abspath(args.spec_dir)
    if not os.path.isdir(spec_dir):
        print(f"SKIP: the Data Plane API specifications are not at {spec_dir} "
              "(../shared/specs/haproxy-dataplaneapi beside the repository)")
        sys.exit(77)
    specs = {api: Spec(os.path.join(spec_dir, name)) for api, name in SPEC_FILES.items()}
    self_test(specs)

    with tempfile.TemporaryDirectory(prefix="ra-dataplane-capture-") as tmp:
        capture_dir = args.captures or tmp
        if args.integration_binary:
            run_integration(args.integration_binary, capture_dir)
        files = sorted(glob.glob(os.path.join(capture_dir, "*.jsonl")))
        if not files:
            sys.exit(f"conformance: no capture files in {capture_dir}")
        failures, stats = [], {api: {"records": 0, "client": 0, "ops": set(), "client_ops": set()}
                               for api in specs}
        for path in files:
            with open(path) as f:
                for n, line in enumerate(f, 1):
                    rec = json.loads(line)
                    if rec["path"] == "/_control":
                        continue  # the double's fault knobs are not part of the API
                    s = stats[rec["api"]]
                    s["records"] += 1
                    errors, key = check_record(specs[rec["api"]], rec)
                    from_client = rec.get("user_agent") == CLIENT_AGENT
                    if key:
                        s["ops"].add(key)
                        if from_client:
                            s["client_ops"].add(key)
                    if from_client:
                        s["client"] += 1
                    for e in errors:
                        failures.append(f"{os.path.basename(path)}:{n} {rec['method']} "
                                        f"{rec['path']} -> {rec['status']}"
                                        f"{' (client)' if from_client else ''}: {e}")
        for api, s in sorted(stats.items()):
            print(f"{api}: {s['records']} exchanges ({s['client']} from the C++ client), "
                  f"{len(s['ops'])} operations:")
            for op in sorted(s["ops"]):
                print(f"    {'client ' if op in s['client_ops'] else 'test   '} {op}")
            if s["client"] == 0:
                failures.append(f"{api}: no request from the C++ client was captured")
        if failures:
            print(f"\n{len(failures)} conformance failures:")
            for f in failures[:200]:
                print("  " + f)
            sys.exit(1)
        print("all exchanges conform to the specifications")


if __name__ == "__main__":
    main()
