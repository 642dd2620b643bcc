#!/usr/bin/env bash
# Side-by-side load test of GET /health: this service (release build) and the seed's reference
# Node implementation (Express + ioredis), against one throwaway valkey-server on loopback.
#
#   apps/healthcheck/bench/compare.sh            # from anywhere in the repository
#
# Needs: cargo, wrk, node + npm, curl, redis-cli, valkey-server (or redis-server, or
# AMTP_VALKEY_SERVER_BIN). Everything it starts listens on 127.0.0.1 and is stopped on exit.
# Knobs (environment): DURATION (10s), CONNECTIONS (32), THREADS (2), BENCH_PORT_BASE (18380),
# NODE_PEER_DIR (/tmp/node-healthcheck), NODE_PEER_SRC (<repo>/../shared/peers/node-healthcheck).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
duration=${DURATION:-10s}
connections=${CONNECTIONS:-32}
threads=${THREADS:-2}
port_base=${BENCH_PORT_BASE:-18380}
valkey_port=$port_base
rust_port=$((port_base + 1))
node_port=$((port_base + 2))
password="bench-$RANDOM$RANDOM"
node_dir=${NODE_PEER_DIR:-/tmp/node-healthcheck}
node_src=${NODE_PEER_SRC:-$repo/../shared/peers/node-healthcheck}
work=$(mktemp -d /tmp/healthcheck-bench.XXXXXX)

die() { echo "compare.sh: $*" >&2; exit 1; }
for tool in cargo wrk node npm curl redis-cli; do
    command -v "$tool" >/dev/null || die "$tool is required; install it (or run inside \`nix develop\`)"
done
valkey_bin=${AMTP_VALKEY_SERVER_BIN:-$(command -v valkey-server || command -v redis-server || true)}
[[ -n $valkey_bin ]] || die "no valkey-server or redis-server found; install one or set AMTP_VALKEY_SERVER_BIN"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# Polls a command until it succeeds, for at most 10 s.
wait_for() {
    local what=$1; shift
    for _ in $(seq 1 200); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.05
    done
    die "$what not ready after 10 s (logs in $work)"
}

if [[ ! -d $node_dir/node_modules ]]; then
    [[ -d $node_src ]] || die "Node peer not found at $node_src; set NODE_PEER_SRC"
    echo "installing the Node peer into $node_dir" >&2
    mkdir -p "$node_dir"
    cp "$node_src"/package.json "$node_src"/package-lock.json "$node_src"/server.js "$node_dir"/
    chmod -R u+w "$node_dir"
    npm install --prefix "$node_dir" --no-audit --no-fund >&2
fi

echo "building the release binary" >&2
cargo build --release --quiet --manifest-path "$repo/Cargo.toml" -p amtp-healthcheck
target_dir=${CARGO_TARGET_DIR:-$repo/target}
rust_bin=$target_dir/release/healthcheck

"$valkey_bin" --port "$valkey_port" --bind 127.0.0.1 --save "" --appendonly no \
    --requirepass "$password" --maxmemory 512mb --maxmemory-policy allkeys-lru \
    >"$work/valkey.log" 2>&1 &
pids+=($!)
wait_for valkey redis-cli -p "$valkey_port" -a "$password" --no-auth-warning ping

export VALKEY_HOST=127.0.0.1 VALKEY_PORT=$valkey_port VALKEY_PASSWORD=$password
PORT=$rust_port "$rust_bin" 2>"$work/rust.log" &
rust_pid=$!
pids+=($rust_pid)
PORT=$node_port node "$node_dir/server.js" >"$work/node.log" 2>&1 &
node_pid=$!
pids+=($node_pid)
wait_for "healthcheck (Rust)" curl -fsS "http://127.0.0.1:$rust_port/health"
wait_for "healthcheck (Node)" curl -fsS "http://127.0.0.1:$node_port/health"

# Highest VmRSS seen while wrk runs (kB), sampled every 200 ms.
sample_rss() {
    local pid=$1 out=$2 peak=0 rss
    while kill -0 "$pid" 2>/dev/null; do
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        if ((rss > peak)); then peak=$rss; fi
        echo "$peak" >"$out"
        sleep 0.2
    done
}

# Runs wrk against one service and prints a markdown table row.
measure() {
    local name=$1 pid=$2 port=$3
    local url="http://127.0.0.1:$port/health"
    wrk -t"$threads" -c"$connections" -d2s "$url" >/dev/null # warm-up
    sample_rss "$pid" "$work/$name.rss" &
    local sampler=$!
    wrk -t"$threads" -c"$connections" -d"$duration" --latency "$url" >"$work/$name.wrk"
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    local rps p50 p99 errors hwm rss
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$work/$name.wrk")
    p50=$(awk '$1 == "50%" {print $2}' "$work/$name.wrk")
    p99=$(awk '$1 == "99%" {print $2}' "$work/$name.wrk")
    errors=$(awk '/Non-2xx or 3xx responses:/ {print $NF} /Socket errors:/ {print}' "$work/$name.wrk")
    hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
    rss=$(cat "$work/$name.rss")
    awk -v name="$name" -v rps="$rps" -v p50="$p50" -v p99="$p99" -v rss="$rss" -v hwm="$hwm" \
        -v errors="${errors:-0}" 'BEGIN {
            printf "| %s | %s | %s | %s | %.1f | %.1f | %s |\n", name, rps, p50, p99, rss / 1024, hwm / 1024, errors
        }'
}

echo
echo "wrk -t$threads -c$connections -d$duration --latency, $(nproc) cores, $("$valkey_bin" --version | awk '{print $1, $3}')"
echo
echo "| service | req/s | p50 | p99 | RSS under load (MB) | VmHWM (MB) | non-2xx / socket errors |"
echo "|---|---|---|---|---|---|---|"
measure rust "$rust_pid" "$rust_port"
measure node "$node_pid" "$node_port"
