#!/usr/bin/env bash
# A fresh clone's three builds, timed: what `cargo xtask --help` builds (the alias's
# `cargo run --package xtask`), the first `up`'s build, then `cargo xtask test`'s build, one
# after the other on an empty target dir, each under `/usr/bin/time -v` with the load beside it.
#
#   xtask/bench/fresh-builds.sh REV OUT      # REV: a commit of this repository, or a directory
#
# OUT gets the sources (src/), the target dir (target/), and per build N its `time -v` report
# (timeN), Cargo's JSON messages (outN.json) and its progress (errN), plus `log` with the load.
# The crates must be downloaded first (`cargo fetch`), so no figure includes a download. The
# summary it prints ends with every crate Cargo compiled more than once across the three
# (docs/benchmarks/build.md, "One feature set for every build").
set -euo pipefail

rev=${1:?usage: fresh-builds.sh REV OUT}
out=${2:?usage: fresh-builds.sh REV OUT}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
rm -rf "$out"
mkdir -p "$out/src"
if [[ -d $rev ]]; then
    tar -C "$rev" --exclude=./.git --exclude=./target -cf - . | tar -x -C "$out/src"
else
    git -C "$repo" archive "$rev" | tar -x -C "$out/src"
fi
export CARGO_TARGET_DIR=$out/target
cd "$out/src"
builds=("build --package xtask" "build --workspace --bins --examples" "test --workspace --no-run")
for i in 1 2 3; do
    echo "cargo ${builds[i - 1]}: start $(uptime)" >>"$out/log"
    # shellcheck disable=SC2086 # the build's words are Cargo's arguments
    /usr/bin/time -v -o "$out/time$i" cargo ${builds[i - 1]} --message-format=json \
        >"$out/out$i.json" 2>"$out/err$i"
    echo "cargo ${builds[i - 1]}: end $(uptime)" >>"$out/log"
    wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$out/time$i")
    cpu=$(awk -F': ' '/User time|System time/ { s += $2 } END { printf "%.0f", s }' "$out/time$i")
    echo "cargo ${builds[i - 1]}: $wall wall, $cpu s CPU, $(grep -c '^ *Compiling' "$out/err$i") crates compiled"
done
cat "$out/log"
echo "compiled more than once across the three (a workspace crate's test target counts too):"
cat "$out"/err[123] | awk '$1 == "Compiling" { print $2, $3 }' | sort | uniq -c | awk '$1 > 1'
