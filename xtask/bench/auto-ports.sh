#!/usr/bin/env bash
# What `AMTP_PORTS=auto` costs a command (issue 22): `env` as the built binary with the port
# variables set (the baseline), with `AMTP_PORTS=auto` on a stopped stack (the block derived
# and looked up in /proc/net/tcp*), and on a running one (the ports read from run/state.json);
# and `wait` on a ready stack (one look at the state and one probe per service, as `status`).
# The floor is starting the binary at all (`xtask --help`).
#
#   xtask/bench/auto-ports.sh        # RUNS=30 by default
#
# Needs hyperfine (apt-get install hyperfine) and Postgres, PgBouncer and Valkey. The stack
# (postgres, pgbouncer, valkey only) listens on 127.0.0.1 in its own block of 20000-32000 with
# its state in /tmp/amtp-bench-auto-ports, and is stopped and deleted on exit. Results go to
# docs/benchmarks/commands.md by hand.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
runs=${RUNS:-30}
# shellcheck source=own-stack.sh
source "$repo/xtask/bench/own-stack.sh"
need_hyperfine auto-ports.sh
cd "$repo"
cargo build -p xtask >/dev/null
bin="${CARGO_TARGET_DIR:-$repo/target}/debug/xtask"
# Explicit ports from 22000 for the baseline; `auto` runs without them (`env -u`).
own_stack auto-ports 22000
unset_ports=()
while IFS='=' read -r var _; do unset_ports+=(-u "$var"); done < <("$bin" __port-vars)
auto="env ${unset_ports[*]} AMTP_PORTS=auto"

trap '$auto "$bin" down --volumes >/dev/null 2>&1 || true' EXIT
$auto "$bin" down --volumes >/dev/null 2>&1 || true
AMTP_SKIP_BUILD=1 $auto "$bin" up pgbouncer valkey

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "listening sockets: $(cat /proc/net/tcp /proc/net/tcp6 | awk '$4 == "0A"' | wc -l)"
hyperfine --runs "$runs" --warmup 3 -N --export-markdown /tmp/amtp-bench-auto-ports-running.md \
    -n 'floor: xtask --help' "$bin --help" \
    -n 'env, AMTP_PORTS=auto, running' "$auto $bin env" \
    -n 'wait, ready' "$auto $bin wait"
$auto "$bin" down >/dev/null
hyperfine --runs "$runs" --warmup 3 -N --export-markdown /tmp/amtp-bench-auto-ports-stopped.md \
    -n 'env, ports set, stopped' "$bin env" \
    -n 'env, AMTP_PORTS=auto, stopped' "$auto $bin env"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
cat /tmp/amtp-bench-auto-ports-running.md /tmp/amtp-bench-auto-ports-stopped.md
