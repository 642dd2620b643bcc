#!/usr/bin/env bash
# `down` beside its floor (issue 18, item 1), alternating rounds in one run so that the load of
# the machine's other work hits both alike:
#
# - tool:  the built `xtask down` on a warm stack (`xtask up` 2 s before): the supervisor
#          stops every service with its stop signal, dependents first, and the command returns
#          once every process is gone;
# - floor: the same daemons (argv, environment, account as recorded from the tool's stack by
#          xtask/bench/hand_stack.py) started by hand and stopped by hand, every one signalled
#          at the same instant and waited for (no order, no supervisor, no command to start).
#
#   xtask/bench/down.sh            # from anywhere in the repository; ROUNDS=10, FIRST_PORT=17700
#   BEFORE=/tmp/old/xtask xtask/bench/down.sh   # also an older build of the xtask, same rounds
#
# BEFORE's directory must hold the apps' binaries too (symlinks into target/debug will do,
# with amtp-apps-built.stamp): an xtask finds them beside itself.
# Needs python3 and the stack's servers (garage and rotel-agent included, for all nine
# services). Its own state dir under /tmp and ports from FIRST_PORT on 127.0.0.1; stopped and
# deleted on exit. Results go to docs/benchmarks/stack.md by hand.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
rounds=${ROUNDS:-10}
# shellcheck source=own-stack.sh
source "$repo/xtask/bench/own-stack.sh"
cd "$repo"
own_stack down "${FIRST_PORT:-17700}"
bin="${CARGO_TARGET_DIR:-$repo/target}/debug/xtask"
hand="$repo/xtask/bench/hand_stack.py"
snapshot=/tmp/amtp-bench-down.json
samples=/tmp/amtp-bench-down.samples

cleanup() {
    "$bin" down --volumes >/dev/null 2>&1 || true
    rm -f "$snapshot" "$snapshot".*.out
}
trap cleanup EXIT

# Builds and the cold start are not measured.
cargo build --quiet --workspace --bins --examples
cleanup
"$bin" up >/dev/null
python3 "$hand" record "$AMTP_STATE_DIR" "$snapshot"
"$bin" down >/dev/null

# tool NAME XTASK: one warm `up`, then `down` timed. The wait before it (2 s and a random part
# of a second, the same as the floor's) samples Garage's stop evenly: its peering loop sleeps
# 1 s between passes and only then sees that it must exit.
tool() {
    "$2" up >/dev/null 2>&1
    sleep "2.$(printf %03d $((RANDOM % 1000)))"
    local began
    began=$(date +%s%N)
    "$2" down >/dev/null
    echo "$1 $(( ($(date +%s%N) - began) / 1000000 ))" >>"$samples"
}
tools() {
    tool tool "$bin"
    if [[ -n ${BEFORE:-} ]]; then tool before "$BEFORE"; fi
}
floor() {
    echo "floor $(python3 "$hand" stop "$snapshot" | awk '{ printf "%d", $1 * 1000 }')" >>"$samples"
}

: >"$samples"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$rounds"); do
    if ((round % 2)); then tools && floor; else floor && tools; fi
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
awk '{ n[$1]++; sum[$1] += $2; v[$1] = v[$1] " " $2
       if (!($1 in min) || $2 < min[$1]) min[$1] = $2; if ($2 > max[$1]) max[$1] = $2 }
     END { for (k in n) printf "%-5s mean %4d ms  min %4d  max %4d  (ms:%s)\n", k, sum[k] / n[k], min[k], max[k], v[k]
           for (k in n) if (k != "floor")
               printf "%s / floor (means): %.2f\n", k, (sum[k] / n[k]) / (sum["floor"] / n["floor"]) }' "$samples"
