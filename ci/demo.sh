#!/usr/bin/env bash
# The main job on the embedded default, from a fresh Debian/Ubuntu machine:
# installs what is missing, builds the reference agent and ddhil, runs the
# agent in QEMU and writes the conformance report to run/demo/.
# Exits with ddhil run's own status: 0 conforms, 1 a check failed,
# 2 usage mistake, 3 lab error (set-up failures are lab errors too).
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
OUT=${OUT:-run/demo}
PERIODS=${PERIODS:-5}
make --no-print-directory deps firmware build || { echo "demo: set-up failed (exit 3)" >&2; exit 3; }
./ddhil run --target qemu --out "$OUT" --periods "$PERIODS" "$@"
code=$?
echo "demo: report at $OUT/report.html (exit $code)"
exit $code
