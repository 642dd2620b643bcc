#!/usr/bin/env bash
# Cold and warm `up` beside their floor (issue 18, item 2), alternating rounds in one run so
# that the load of the machine's other work hits both alike:
#
# - tool:  the built `xtask up` (`$CARGO_TARGET_DIR/debug/xtask`, no Cargo), cold (after
#          `down --volumes`: initdb, Garage's bootstrap) and warm (after `down`: data kept);
# - floor: xtask/bench/sequential.sh, the same nine services started one after the other by a
#          shell script (initdb, start, wait, createdb, the others, migrate, the apps), each
#          waited for with the client tools' usual polling.
#
# One cold and one warm `up --timings` are shown first: each service's critical path as the
# supervisor recorded it.
#
#   xtask/bench/up.sh            # from anywhere in the repository; ROUNDS=6, FIRST_PORT=17760
#
# Needs curl, openssl, psql/createdb, valkey-cli or redis-cli and the stack's servers (garage
# and rotel-agent included). Everything listens on 127.0.0.1 (the tool's stack on ports from
# FIRST_PORT, the script's from FIRST_PORT + 20), state under /tmp, stopped and deleted on exit.
# Results go to docs/benchmarks/stack.md by hand.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
rounds=${ROUNDS:-6}
first_port=${FIRST_PORT:-17760}
# shellcheck source=own-stack.sh
source "$repo/xtask/bench/own-stack.sh"
cd "$repo"
own_stack up "$first_port"
export BENCH_PORT_BASE=$((first_port + 20))
bin="${CARGO_TARGET_DIR:-$repo/target}/debug/xtask"
seq="$repo/xtask/bench/sequential.sh"
seq_state=/tmp/amtp-bench-up-sequential
samples=/tmp/amtp-bench-up.samples

cleanup() {
    "$bin" down --volumes >/dev/null 2>&1 || true
    "$seq" down "$seq_state" >/dev/null 2>&1 || true
    rm -rf "$seq_state"
}
trap cleanup EXIT

# Builds are not measured; one cold start of each warms the page cache.
cargo build --quiet --workspace --bins --examples
cleanup
"$bin" up >/dev/null && "$bin" down --volumes >/dev/null
"$seq" up "$seq_state" && "$seq" down "$seq_state" && rm -rf "$seq_state"

echo "== cold up --timings"
"$bin" up --timings | sed -n '/^stack ready/,$p'
"$bin" down >/dev/null
echo "== warm up --timings"
"$bin" up --timings | sed -n '/^stack ready/,$p'
"$bin" down --volumes >/dev/null

# time NAME COMMAND...: the command's wall time in ms, appended to the samples as NAME.
time_it() {
    local name=$1 began
    shift
    began=$(date +%s%N)
    "$@" >/dev/null
    echo "$name $(( ($(date +%s%N) - began) / 1000000 ))" >>"$samples"
}
tool_cold() { "$bin" down --volumes >/dev/null; time_it cold-tool "$bin" up; }
floor_cold() { "$seq" down "$seq_state"; rm -rf "$seq_state"; time_it cold-floor "$seq" up "$seq_state"; }
tool_warm() { "$bin" down >/dev/null; time_it warm-tool "$bin" up; }
floor_warm() { "$seq" down "$seq_state"; time_it warm-floor "$seq" up "$seq_state"; }

: >"$samples"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$rounds"); do
    if ((round % 2)); then
        tool_cold; floor_cold; tool_warm; floor_warm
    else
        floor_cold; tool_cold; floor_warm; tool_warm
    fi
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
awk '{ n[$1]++; sum[$1] += $2; v[$1] = v[$1] " " $2
       if (!($1 in min) || $2 < min[$1]) min[$1] = $2; if ($2 > max[$1]) max[$1] = $2 }
     END { for (k in n) printf "%-10s mean %5d ms  min %5d  max %5d  (ms:%s)\n", k, sum[k] / n[k], min[k], max[k], v[k]
           printf "cold: tool / floor (means) %.2f\n", (sum["cold-tool"] / n["cold-tool"]) / (sum["cold-floor"] / n["cold-floor"])
           printf "warm: tool / floor (means) %.2f\n", (sum["warm-tool"] / n["warm-tool"]) / (sum["warm-floor"] / n["warm-floor"]) }' "$samples"
