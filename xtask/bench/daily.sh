#!/usr/bin/env bash
# The daily loop's benchmark: `restart healthcheck` and `restart postgres` until ready (as
# typed, `cargo` included, and the built binary alone, so Cargo's share shows), and `watch`'s
# edit-to-serving time for the healthcheck (save -> new binary answering /health), with the
# Cargo build's share as `watch` prints it.
#
#   xtask/bench/daily.sh          # from anywhere in the repository; RUNS=10 by default
#
# Needs hyperfine (apt-get install hyperfine) and the stack's servers. Everything listens on
# 127.0.0.1 (ports from 17600 up) with its state in /tmp, stopped and deleted on exit. The
# watch part edits one log message of apps/healthcheck/src/main.rs and puts the file back.
# Results go to docs/benchmarks/daily.md by hand.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
runs=${RUNS:-10}
# shellcheck source=own-stack.sh
source "$repo/xtask/bench/own-stack.sh"
need_hyperfine daily.sh
cd "$repo"
own_stack daily 17600

main_rs=apps/healthcheck/src/main.rs
cp "$main_rs" /tmp/amtp-bench-daily-main.rs
cleanup() {
    [[ -n "${watch_pid:-}" ]] && kill -INT "$watch_pid" 2>/dev/null && wait "$watch_pid" 2>/dev/null
    cp /tmp/amtp-bench-daily-main.rs "$main_rs"
    cargo xtask down --volumes >/dev/null 2>&1 || true
}
trap cleanup EXIT
cargo xtask down --volumes >/dev/null 2>&1 || true
cargo xtask up >/dev/null
xtask=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/xtask

hyperfine --runs "$runs" --export-markdown /tmp/amtp-bench-daily.md \
    -n 'restart healthcheck (cargo xtask)' 'cargo xtask restart healthcheck' \
    -n 'restart healthcheck (binary)' "$xtask restart healthcheck" \
    -n 'restart postgres (cargo xtask)' 'cargo xtask restart postgres' \
    -n 'restart postgres (binary)' "$xtask restart postgres"
cat /tmp/amtp-bench-daily.md

# watch: each round changes a string the binary carries, so every build changes its bytes.
out=/tmp/amtp-bench-daily-watch.out
"$xtask" watch >"$out" 2>&1 &
watch_pid=$!
until grep -q watching "$out"; do sleep 0.1; done
for round in $(seq 1 "$runs"); do
    sed -i "s/tracing::info!(\"stopped[^\"]*\");/tracing::info!(\"stopped (bench $round)\");/" "$main_rs"
    until [[ $(grep -c '^serving' "$out") -ge $round ]]; do sleep 0.05; done
done
echo
echo "watch, edit to serving (build share), $runs rounds:"
grep '^serving' "$out" | sed -E 's/serving ([0-9.]+) s after the change \(build ([0-9.]+) s\)/\1 \2/' |
    awk '{ total += $1; build += $2; print "  " $1 " s (build " $2 " s)" }
         END { printf "  mean %.2f s, build %.2f s, the rest (restart until ready) %.2f s\n", total/NR, build/NR, (total-build)/NR }'
