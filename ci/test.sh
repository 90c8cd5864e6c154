#!/usr/bin/env bash
# The whole test suite, from a fresh Debian/Ubuntu machine: installs what is
# missing, vets and lints, then runs every test with a line per test (each
# fault proof, each Renode run) and a one-line summary; then the example
# user module (tests/own-firmware). With DDHIL_RENODE (a local Renode) or
# DDHIL_RENODE_IMAGE (a container image) set, the end-to-end suites run on
# that Renode too; DDHIL_REQUIRE_TARGET=1 makes a missing target fail
# instead of skip. Exits 0 when everything passed, 1 when a test failed,
# 3 when the set-up failed.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
make --no-print-directory deps firmware || { echo "test: set-up failed (exit 3)" >&2; exit 3; }
go vet ./... && go tool staticcheck ./... || { echo "test: go vet or staticcheck failed" >&2; exit 1; }

sum() { go tool gotestsum --format testname --format-hide-empty-pkg "$@"; }
status=0
sum -- -count=1 -timeout 20m ./... || status=1
sum --raw-command -- go -C tests/own-firmware test -json -count=1 -timeout 10m ./... || status=1
if [ -n "${DDHIL_RENODE:-}" ]; then
  echo "== end-to-end suites on the local Renode $DDHIL_RENODE"
  DDHIL_RENODE_IMAGE= sum -- -count=1 -timeout 20m ./tests/ -args -ddhil.target=renode || status=1
fi
if [ -n "${DDHIL_RENODE_IMAGE:-}" ]; then
  echo "== end-to-end suites on the Renode image $DDHIL_RENODE_IMAGE"
  DDHIL_RENODE= sum -- -count=1 -timeout 20m ./tests/ -args -ddhil.target=renode || status=1
fi
[ $status = 0 ] && echo "test: all passed" || echo "test: FAILED" >&2
exit $status
