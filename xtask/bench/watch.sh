#!/usr/bin/env bash
# `watch`, edit to serving (issue 18, item 4): each round starts `xtask watch`, changes a log
# message of apps/healthcheck/src/main.rs (a string the binary carries, so every build changes
# its bytes) and waits for watch's line `serving X s after the change (build Y s)`: X from the
# first file event to the new binary answering /health, Y Cargo's build. The floor is the same
# build typed by hand, `cargo build --workspace --bins --examples` after the same kind of edit
# (what watch runs, without noticing the change or restarting anything).
#
#   xtask/bench/watch.sh                          # ROUNDS=8, FIRST_PORT=17800
#   BEFORE=/tmp/old/xtask xtask/bench/watch.sh    # also an older build's watch, same rounds
#
# Rounds alternate (this build's watch, BEFORE's, the hand build) so that the load of the
# machine's other work hits each alike. BEFORE's directory must hold the apps' binaries too
# (symlinks into target/debug, with amtp-apps-built.stamp). Needs the stack's servers; its own
# state dir under /tmp and ports from FIRST_PORT on 127.0.0.1, stopped and deleted on exit.
# The file is put back at the end. Results go to docs/benchmarks/daily.md by hand.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
rounds=${ROUNDS:-8}
# shellcheck source=own-stack.sh
source "$repo/xtask/bench/own-stack.sh"
cd "$repo"
own_stack watch "${FIRST_PORT:-17800}"
bin="${CARGO_TARGET_DIR:-$repo/target}/debug/xtask"
main_rs=apps/healthcheck/src/main.rs
out=/tmp/amtp-bench-watch.out
samples=/tmp/amtp-bench-watch.samples

cp "$main_rs" /tmp/amtp-bench-watch-main.rs
cleanup() {
    [[ -n "${watch_pid:-}" ]] && kill -INT "$watch_pid" 2>/dev/null && wait "$watch_pid" 2>/dev/null
    cp /tmp/amtp-bench-watch-main.rs "$main_rs"
    "$bin" down --volumes >/dev/null 2>&1 || true
}
trap cleanup EXIT
cargo build --quiet --workspace --bins --examples
"$bin" down --volumes >/dev/null 2>&1 || true
"$bin" up >/dev/null 2>&1

edits=0
edit() {
    edits=$((edits + 1))
    sed -i "s/tracing::info!(\"stopped[^\"]*\");/tracing::info!(\"stopped (bench $edits)\");/" "$main_rs"
}

# watched NAME XTASK: one edit under XTASK's watch; its serving and build seconds as NAME.
watched() {
    : >"$out"
    "$2" watch >"$out" 2>&1 &
    watch_pid=$!
    until grep -q watching "$out"; do sleep 0.05; done
    edit
    until grep -q '^serving' "$out"; do sleep 0.02; done
    kill -INT "$watch_pid" && wait "$watch_pid" || true
    watch_pid=
    sed -nE "s/^serving ([0-9.]+) s after the change \(build ([0-9.]+) s\)/$1 \1 \2/p" "$out" >>"$samples"
}
# by_hand: the same edit and build, timed from the edit to Cargo's end.
by_hand() {
    local began
    began=$(date +%s%N)
    edit
    cargo build --quiet --workspace --bins --examples
    local ms=$(( ($(date +%s%N) - began) / 1000000 ))
    echo "hand-build $ms $ms" | awk '{ printf "%s %.3f %.3f\n", $1, $2 / 1000, $3 / 1000 }' >>"$samples"
}

: >"$samples"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq "$rounds"); do
    watched watch "$bin"
    if [[ -n ${BEFORE:-} ]]; then watched before "$BEFORE"; fi
    by_hand
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
awk '{ n[$1]++; total[$1] += $2; build[$1] += $3; v[$1] = v[$1] " " $2 "(" $3 ")" }
     END { for (k in n) printf "%-10s mean %.2f s, build %.2f s, the rest %.2f s  (s:%s)\n", k,
               total[k] / n[k], build[k] / n[k], (total[k] - build[k]) / n[k], v[k] }' "$samples"
