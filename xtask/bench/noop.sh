#!/usr/bin/env bash
# No-op commands with the stack up (issue 18, item 5): `status`, a no-op `up`, `env` and
# `logs --tail 10`, each as typed (`cargo xtask …`, Cargo's freshness check included) and as
# the built binary (`$CARGO_TARGET_DIR/debug/xtask …`), beside the floors: the binary's
# `--help` (starting the program, nothing else) and `cargo xtask --help` (that plus Cargo).
#
#   xtask/bench/noop.sh              # RUNS=20 by default; FIRST_PORT=17600 by default
#
# Needs hyperfine (apt-get install hyperfine) and the stack's servers. Everything listens on
# 127.0.0.1 (ports from FIRST_PORT up, one per service of the unit table) with its state in
# /tmp, and is stopped and deleted on exit. Results go to docs/benchmarks/commands.md by hand.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
runs=${RUNS:-20}
# shellcheck source=own-stack.sh
source "$repo/xtask/bench/own-stack.sh"
need_hyperfine noop.sh
cd "$repo"
own_stack noop "${FIRST_PORT:-17600}"
bin="${CARGO_TARGET_DIR:-$repo/target}/debug/xtask"

trap 'cargo xtask down --volumes >/dev/null 2>&1 || true' EXIT
cargo xtask down --volumes >/dev/null 2>&1 || true
# The build and the cold start are not measured.
cargo xtask up >/dev/null

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
hyperfine --runs "$runs" --warmup 2 -N --export-markdown /tmp/amtp-bench-noop.md \
    -n 'floor: xtask --help' "$bin --help" \
    -n 'floor: cargo xtask --help' 'cargo xtask --help' \
    -n 'status' "$bin status" \
    -n 'cargo xtask status' 'cargo xtask status' \
    -n 'no-op up' "$bin up" \
    -n 'cargo xtask up (no-op)' 'cargo xtask up' \
    -n 'env' "$bin env" \
    -n 'cargo xtask env' 'cargo xtask env' \
    -n 'logs --tail 10' "$bin logs --tail 10" \
    -n 'cargo xtask logs --tail 10' 'cargo xtask logs --tail 10'
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
cat /tmp/amtp-bench-noop.md
