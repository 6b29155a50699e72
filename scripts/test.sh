#!/usr/bin/env bash
# The whole test suite, as CI runs it (README: "Run the tests").
#   1. installs Debian packages and builds (scripts/setup.sh)
#   2. checks formatting (clang-format)
#   3. unit tests, also in an AddressSanitizer + UndefinedBehaviorSanitizer build
#   4. integration tests against real components started on loopback
#   5. conformance tests (the sandbox's fidelity against official schemas)
#   6. the OpenStack client against real Keystone/Nova/Cinder/Glance/Placement (tests/realcloud)
#   7. deployment tests (package, Ansible roles, Packer, Terraform, dashboards and alerts)
# Exits non-zero if anything fails. Options: --quick (unit tests only, no sanitizer build).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
quick=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "test.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

jobs=$(nproc)
start=$(date +%s)
step() { printf '\n==> %s (%ss)\n' "$1" "$(( $(date +%s) - start ))"; }

step "set-up and build"
scripts/setup.sh

step "format check"
mapfile -t sources < <(git ls-files '*.cc' '*.h' 2>/dev/null || true)
if [ ${#sources[@]} -gt 0 ]; then
  clang-format --dry-run -Werror "${sources[@]}"
fi

failed=()
run_ctest() {  # run_ctest NAME BUILD_DIR LABEL
  local name=$1 dir=$2 label=$3
  step "$name"
  if ! ctest --test-dir "$dir" -L "^${label}\$" --output-on-failure --no-tests=error \
       -j "$([ "$label" = unit ] && echo "$jobs" || echo 1)" --timeout 900; then
    failed+=("$name")
  fi
}

run_ctest "unit tests" build unit
if [ "$quick" = 1 ]; then
  [ ${#failed[@]} -eq 0 ] || { echo "FAILED: ${failed[*]}"; exit 1; }
  exit 0
fi

step "sanitizer build (ASan + UBSan)"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DRA_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs" --target unit_tests
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_ctest "unit tests under sanitizers" build-asan unit

run_ctest "integration tests" build integration
if ctest --test-dir build -N -L '^conformance$' | grep -q 'Total Tests: [1-9]'; then
  run_ctest "conformance tests" build conformance
fi
# The OpenStack client against real Keystone, Nova, Cinder, Glance and Placement (tests/realcloud).
run_ctest "real OpenStack contract tests" build realcloud
# Deployment proofs (tests/deploy, issue #6): package, roles in a fresh root, Packer, Terraform, ops.
if ctest --test-dir build -N -L '^deploy$' | grep -q 'Total Tests: [1-9]'; then
  run_ctest "deployment tests" build deploy
fi

step "done"
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "all suites passed"
