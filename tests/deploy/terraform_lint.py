#!/usr/bin/python3
"""Layout and consistency checks of the Terraform module (run by terraform_test.sh after the HCL
parse/format check). Not a substitute for `terraform validate`, which needs the provider."""
import os
import re
import sys

root = os.path.abspath(sys.argv[1])
failures = []


def check(what, ok, detail=""):
    print(("ok: " if ok else "FAIL: ") + what + ("" if ok or not detail else f" — {detail}"))
    if not ok:
        failures.append(what)


def blocks(text, kind):
    """name -> body of top-level `kind "name" { ... }` blocks (brace matching, strings aware)."""
    out = {}
    for m in re.finditer(r'^%s\s+"([^"]+)"\s*\{' % kind, text, re.M):
        depth, i, in_str = 0, m.end() - 1, False
        while i < len(text):
            c = text[i]
            if in_str:
                if c == "\\":
                    i += 1
                elif c == '"':
                    in_str = False
            elif c == '"':
                in_str = True
            elif c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        out[m.group(1)] = text[m.end():i]
    return out


def module(dirpath):
    text = "".join(open(os.path.join(dirpath, f)).read() + "\n" for f in sorted(os.listdir(dirpath)) if f.endswith(".tf"))
    return text


for d in [root] + [os.path.join(root, "examples", e) for e in sorted(os.listdir(os.path.join(root, "examples")))]:
    rel = os.path.relpath(d, root) if d != root else "module"
    for f in ("main.tf", "variables.tf", "outputs.tf", "versions.tf"):
        check(f"{rel}: has {f}", os.path.isfile(os.path.join(d, f)))
    text = module(d)
    variables = blocks(text, "variable")
    outputs = blocks(text, "output")
    # Strip comments and heredoc descriptions before looking for references.
    code = re.sub(r"#[^\n]*", "", text)
    code = re.sub(r"<<-?EOT.*?EOT", '""', code, flags=re.S)
    used = set(re.findall(r"\bvar\.([A-Za-z_][A-Za-z0-9_-]*)", code))
    check(f"{rel}: every var.x is declared", used <= set(variables), sorted(used - set(variables)))
    check(f"{rel}: every declared variable is used", set(variables) <= used, sorted(set(variables) - used))
    locals_decl = set()
    for body in re.findall(r"^locals\s*\{(.*?)^\}", code, re.M | re.S):
        locals_decl |= set(re.findall(r"^  ([a-z_][a-z0-9_]*)\s*=", body, re.M))
    used_locals = set(re.findall(r"\blocal\.([a-z_][a-z0-9_]*)", code))
    check(f"{rel}: every local.x is declared", used_locals <= locals_decl, sorted(used_locals - locals_decl))
    for name, body in variables.items():
        check(f"{rel}: variable {name} has a description and a type",
              "description" in body and re.search(r"^\s*type\s*=", body, re.M) is not None)
        if re.search(r"password|secret|token", name) or name == "secrets":
            check(f"{rel}: secret variable {name} is sensitive", re.search(r"sensitive\s*=\s*true", body) is not None)
    for name, body in outputs.items():
        check(f"{rel}: output {name} has a description", "description" in body)
        check(f"{rel}: output {name} exposes no secret",
              re.search(r"\.secret\b|var\.secrets|password|token", body.split("value", 1)[-1]) is None)
    if d == root:
        resources = set(re.findall(r'^resource\s+"([a-z0-9_]+)"\s+"([a-z0-9_]+)"', code, re.M))
        refs = set(re.findall(r"\b(openstack_[a-z0-9_]+)\.([a-z0-9_]+)\.", code))
        check("module: every resource reference names a declared resource", refs <= resources, sorted(refs - resources))
        for want in ("openstack_compute_instance_v2", "openstack_networking_port_v2",
                     "openstack_networking_secgroup_v2", "openstack_identity_application_credential_v3"):
            check(f"module: creates {want}", any(r[0] == want for r in resources))
        check("module: the application credential is restricted",
              re.search(r"unrestricted\s*=\s*false", code) is not None and "access_rules" in code)
        check("module: the security group drops its default egress rules",
              re.search(r"delete_default_rules\s*=\s*true", code) is not None)
        ingress = re.findall(r'direction\s*=\s*"ingress"', code)
        check("module: ingress comes from one rule set (admin and SSH CIDRs)", len(ingress) == 1)
        check("module: ingress rules are built only from admin_cidrs and ssh_cidrs",
              re.search(r"ingress_rules\s*=\s*merge\(\s*\{ for cidr in var\.admin_cidrs.*?\{ for cidr in var\.ssh_cidrs", code, re.S) is not None)
        check("module: cloud-init writes secret files 0600 owned by the service user",
              '"0600"' in code and '"replica-autoscaler:replica-autoscaler"' in code)
        readme = open(os.path.join(root, "README.md")).read()
        for name in variables:
            check(f"README lists input {name}", f"| `{name}` |" in readme)
        for name in outputs:
            check(f"README lists output {name}", f"| `{name}` |" in readme)
        check("README says terraform validate could not run here", "were not run" in readme)

print(f"{len(failures)} failed" if failures else "terraform lint passed")
sys.exit(1 if failures else 0)
