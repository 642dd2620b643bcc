#!/usr/bin/env bash
# Command start-up benchmark: warm `up` (data kept), a no-op `up` (stack running) and `status`,
# as the user types them (`cargo` included), on a stack of its own.
#
#   xtask/bench/commands.sh          # from anywhere in the repository; RUNS=10 by default
#
# Needs hyperfine (apt-get install hyperfine) and the stack's servers. Everything listens on
# 127.0.0.1 (ports from 17500 up, one per service of the unit table) with its state in /tmp,
# and is stopped and deleted on exit. Results go to docs/benchmarks/build.md by hand.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
runs=${RUNS:-10}
# shellcheck source=own-stack.sh
source "$repo/xtask/bench/own-stack.sh"
need_hyperfine commands.sh
cd "$repo"
own_stack commands 17500

trap 'cargo xtask down --volumes >/dev/null 2>&1 || true' EXIT
cargo xtask down --volumes >/dev/null 2>&1 || true
# The build and the cold start are not measured.
cargo xtask up >/dev/null

hyperfine --runs "$runs" --export-markdown /tmp/amtp-bench-commands.md \
    -n 'warm up' --prepare 'cargo xtask down >/dev/null' 'cargo xtask up' \
    -n 'no-op up' --prepare 'cargo xtask up >/dev/null' 'cargo xtask up' \
    -n 'status' --prepare 'true' 'cargo xtask status'
cat /tmp/amtp-bench-commands.md
