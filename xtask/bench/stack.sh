#!/usr/bin/env bash
# Stack benchmark: cold `up` (empty state to all healthy), warm `up` (data kept) and `down`,
# `cargo xtask` beside xtask/bench/sequential.sh (the same starts, one after the other).
#
#   xtask/bench/stack.sh            # from anywhere in the repository; RUNS=10 by default
#
# Needs hyperfine (apt-get install hyperfine), curl, psql/createdb, valkey-cli or redis-cli and the stack's
# servers. Everything listens on 127.0.0.1 (ports 17400-17423) under /tmp, and is stopped and
# deleted on exit. Results go to docs/benchmarks.md by hand.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
runs=${RUNS:-10}
seq_state=/tmp/amtp-bench-sequential
seq="$repo/xtask/bench/sequential.sh"
# shellcheck source=own-stack.sh
source "$repo/xtask/bench/own-stack.sh"
need_hyperfine stack.sh
cd "$repo"
# The xtask's own stack (ports 17412 up, state in /tmp/amtp-bench-xtask), beside the
# sequential script's (17400-17411).
own_stack xtask 17412

cleanup() {
    cargo xtask down --volumes >/dev/null 2>&1 || true
    "$seq" down "$seq_state" >/dev/null 2>&1 || true
    rm -rf "$seq_state"
}
trap cleanup EXIT
cleanup

# Builds are not part of any measurement.
cargo build --quiet --workspace --bins --examples  # the selection `up` builds
cargo xtask up >/dev/null && cargo xtask down >/dev/null

echo "== per-service time to ready, one cold up"
cargo xtask down --volumes >/dev/null
cargo xtask up
cargo xtask down >/dev/null

hyperfine --runs "$runs" --export-markdown /tmp/amtp-bench-stack.md \
    -n 'cold up: cargo xtask up' --prepare 'cargo xtask down --volumes >/dev/null' \
    'cargo xtask up' \
    -n 'cold up: sequential.sh' --prepare "$seq down $seq_state; rm -rf $seq_state" \
    "$seq up $seq_state" \
    -n 'warm up: cargo xtask up' --prepare 'cargo xtask down >/dev/null' \
    'cargo xtask up' \
    -n 'warm up: sequential.sh' --prepare "$seq down $seq_state" \
    "$seq up $seq_state" \
    -n 'down: cargo xtask down' --prepare 'cargo xtask up >/dev/null' \
    'cargo xtask down' \
    -n 'down: sequential.sh' --prepare "$seq down $seq_state; $seq up $seq_state" \
    "$seq down $seq_state"
cat /tmp/amtp-bench-stack.md
