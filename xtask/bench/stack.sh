#!/usr/bin/env bash
# Stack benchmark: cold `up` (empty state to all healthy), warm `up` (data kept) and `down`,
# `cargo xtask` beside xtask/bench/sequential.sh (the same starts, one after the other).
#
#   xtask/bench/stack.sh            # from anywhere in the repository; RUNS=10 by default
#
# Needs hyperfine (apt-get install hyperfine), curl, psql/createdb, valkey-cli or redis-cli and the stack's
# servers. Everything listens on 127.0.0.1 (ports 17400-17419) under /tmp, and is stopped and
# deleted on exit. Results go to docs/benchmarks.md by hand.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
runs=${RUNS:-10}
seq_state=/tmp/amtp-bench-sequential
seq="$repo/xtask/bench/sequential.sh"
command -v hyperfine >/dev/null || { echo "stack.sh: hyperfine is required (apt-get install hyperfine)" >&2; exit 1; }
cd "$repo"

# The xtask's own stack: its own state dir and ports, no .env of the developer's.
export AMTP_STATE_DIR=/tmp/amtp-bench-xtask AMTP_ENV_FILE=/nonexistent/.env
export POSTGRES_PORT=17410 PGBOUNCER_PORT=17411 VALKEY_PORT=17412 HEALTHCHECK_PORT=17413 \
    MCP_HTTP_PORT=17414 DOCS_HOST_PORT=17415 GITHUB_STANDIN_PORT=17416 \
    GARAGE_S3_PORT=17417 GARAGE_RPC_PORT=17418 GARAGE_ADMIN_PORT=17419
unset POSTGRES_PASSWORD VALKEY_PASSWORD GITHUB_APP_ID

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
