#!/usr/bin/python3
"""The API over TLS (api.tls), against the real service binary: a self-signed certificate made
with openssl; `curl --cacert` succeeds over https, plain http to the same port fails, and a
certificate file that cannot be read stops the service with a message naming it.

  /usr/bin/python3 tests/integration/api_tls.py --binary build/bin/replica-autoscaler
"""
import argparse
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_service import ADMIN_TOKEN, Service  # noqa: E402

FAILURES = []


def check(condition, message):
    print(("  ok: " if condition else "  FAILED: ") + message, flush=True)
    if not condition:
        FAILURES.append(message)


def curl(*args):
    done = subprocess.run(["curl", "-sS", "--max-time", "5", *args], capture_output=True,
                          text=True)
    return done.returncode, done.stdout, done.stderr


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="ra-api-tls-")
    cert, key = os.path.join(work, "api.pem"), os.path.join(work, "api.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key,
                    "-out", cert], check=True, capture_output=True)

    service = Service(args.binary, tls=(cert, key))
    try:
        base = f"127.0.0.1:{service.port}"
        rc, out, err = curl("--cacert", cert, "-o", "/dev/null", "-w", "%{http_code}",
                            f"https://{base}/healthz")
        check(rc == 0 and out in ("200", "503"),
              f"https /healthz with --cacert answers (curl {rc}, status {out}) {err.strip()}")
        rc, out, err = curl("--cacert", cert, "-H", f"Authorization: Bearer {ADMIN_TOKEN}",
                            "-o", "/dev/null", "-w", "%{http_code}",
                            f"https://{base}/v1/clusters/orders")
        check(rc == 0 and out == "200", f"https GET /v1/clusters/orders: 200 ({rc} {out} {err})")
        rc, out, err = curl("-o", "/dev/null", "-w", "%{http_code}", f"https://{base}/healthz")
        check(rc != 0, f"https without the CA is refused by curl (curl {rc})")
        rc, out, err = curl("-o", "/dev/null", "-w", "%{http_code}", f"http://{base}/healthz")
        check(rc != 0 or out == "000", f"plain http fails (curl {rc}, status {out})")
        check(service.proc.poll() is None, "the service is still running")
    finally:
        service.stop()

    # An unreadable certificate: the service refuses to start and names the file.
    missing = os.path.join(work, "missing.pem")
    try:
        broken = Service(args.binary, tls=(missing, key))
        broken.stop()
        check(False, "the service started with a missing certificate file")
    except RuntimeError as e:
        check(missing in str(e), f"a missing certificate file is named: {str(e)[-300:]}")

    if FAILURES:
        print(f"\n{len(FAILURES)} check(s) failed")
        return 1
    print("\nall checks held")
    return 0


if __name__ == "__main__":
    sys.exit(main())
