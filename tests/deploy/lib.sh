# Shared helpers of the deploy tests (sourced, not run).
# Every test: set -euo pipefail, a work directory removed on exit, bounded commands.

ra_src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

fail() { echo "FAIL: $*" >&2; exit 1; }
note() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
check() {  # check DESCRIPTION COMMAND...: runs it, fails the test with DESCRIPTION if it fails
  local what=$1; shift
  if "$@"; then echo "ok: $what"; else fail "$what (command: $*)"; fi
}
need_root() { [ "$(id -u)" -eq 0 ] || fail "must run as root (CI does)"; }
need_cmd() { for c in "$@"; do command -v "$c" >/dev/null || fail "$c not found (scripts/setup.sh installs it)"; done; }

# A free TCP port on 127.0.0.1.
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_http URL SECONDS: until URL answers 2xx.
wait_http() {
  local url=$1 deadline=$(( $(date +%s) + $2 ))
  until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.3
  done
}

# Builds the Debian package from BUILD_DIR into OUT_DIR and prints the .deb's path.
build_deb() {
  local build=$1 out=$2
  [ -x "$build/bin/replica-autoscaler" ] || fail "$build/bin/replica-autoscaler is not built"
  mkdir -p "$out"
  (cd "$build" && timeout 300 cpack -G DEB -B "$out" --config "$build/CPackConfig.cmake") >"$out/cpack.log" 2>&1 ||
    { cat "$out/cpack.log" >&2; fail "cpack -G DEB failed"; }
  local deb
  deb=$(ls "$out"/replica-autoscaler_*.deb 2>/dev/null | head -1)
  [ -n "$deb" ] || { cat "$out/cpack.log" >&2; fail "cpack made no .deb"; }
  echo "$deb"
}
