#!/usr/bin/env bash
# The Terraform module (terraform/). No terraform binary exists in Debian, so:
#   1. every .tf file is parsed by the HCL 2 parser in Debian's packer and must be in canonical
#      format (`packer fmt -check` uses the hclwrite formatter `terraform fmt` uses): the stand-in
#      for `terraform fmt -check -recursive`;
#   2. tests/deploy/terraform_lint.py checks layout and consistency (declared variables,
#      descriptions, sensitive secrets, no secret in outputs, README lists inputs and outputs).
#
#   tests/deploy/terraform_test.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_cmd packer python3
export CHECKPOINT_DISABLE=1

work=$(mktemp -d "${TMPDIR:-/tmp}/ra-terraform-test.XXXXXX")
trap 'rm -rf "$work"' EXIT

cd "$ra_src/terraform"
mapfile -t files < <(find . -name '*.tf' | sort)
[ ${#files[@]} -ge 8 ] || fail "expected the module's and the example's .tf files, found ${#files[@]}"
# packer only formats files named *.pkr.hcl: format copies and map the names back.
for f in "${files[@]}"; do
  cp "$f" "$work/$(echo "${f#./}" | sed 's|/|__|g').pkr.hcl"
done
if out=$(packer fmt -check -diff "$work" 2>&1); then
  echo "ok: ${#files[@]} .tf files parse as HCL 2 and are in canonical format"
else
  echo "$out" | sed "s|$work/||g; s|__|/|g; s|\.pkr\.hcl||g"
  fail "terraform files are not in canonical format or do not parse (packer fmt -check)"
fi
# The check must be able to fail: a misaligned and an unparsable copy are rejected.
printf 'variable "x" {\n  type = string\n  default="a"\n}\n' >"$work/bad-format.pkr.hcl"
check "the format check rejects unformatted HCL" bash -c "! packer fmt -check '$work/bad-format.pkr.hcl' >/dev/null 2>&1"
rm -f "$work/bad-format.pkr.hcl"
printf 'variable "x" {\n  type = string\n' >"$work/bad-parse.pkr.hcl"
check "the format check rejects unparsable HCL" bash -c "! packer fmt -check '$work/bad-parse.pkr.hcl' >/dev/null 2>&1"

python3 "$ra_src/tests/deploy/terraform_lint.py" "$ra_src/terraform"
echo "terraform test passed"
