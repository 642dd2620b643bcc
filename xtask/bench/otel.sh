#!/usr/bin/env bash
# The OpenTelemetry collector's cost on github-mcp: the p50 and p95 of a cached `repo.tree`
# (raw JSON-RPC `tools/call` POSTs on one MCP session, curl's time_total: the server's share)
# with the app exporting its spans to the stack's collector, and with export off
# (OTEL_SDK_DISABLED=true), alternating on/off rounds in one run so that load drift hits both.
#
#   xtask/bench/otel.sh            # from anywhere in the repository; ROUNDS=2 CALLS=300
#
# Needs curl and the stack's servers (rotel-agent included). Its own state dir under /tmp and
# ports 17440-17451 on 127.0.0.1; stopped and deleted on exit. The apps are the debug builds
# `up` makes. Results go to docs/benchmarks/otel.md by hand.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
rounds=${ROUNDS:-2}
calls=${CALLS:-300}
# shellcheck source=own-stack.sh
source "$repo/xtask/bench/own-stack.sh"
cd "$repo"
own_stack otel 17440
unset OTEL_EXPORTER_OTLP_ENDPOINT AMTP_OTLP_FORWARD
url="http://127.0.0.1:$MCP_HTTP_PORT/mcp"
headers=(-H 'content-type: application/json' -H 'accept: application/json, text/event-stream')
samples=$(mktemp -d /tmp/amtp-bench-otel-samples.XXXXXX)

cleanup() {
    cargo xtask down --volumes >/dev/null 2>&1 || true
    rm -rf "$samples"
}
trap cleanup EXIT
cleanup
mkdir -p "$samples"

# Builds are not part of any measurement.
cargo build --workspace --bins --examples --quiet

# An MCP session: initialize, then the initialized notification; prints the session id.
session() {
    local sid
    sid=$(curl -s -D - -o /dev/null "${headers[@]}" "$url" --data \
        '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}' |
        tr -d '\r' | awk -F': ' 'tolower($1) == "mcp-session-id" { print $2 }')
    curl -s -o /dev/null "${headers[@]}" -H "mcp-session-id: $sid" "$url" \
        --data '{"jsonrpc":"2.0","method":"notifications/initialized"}'
    echo "$sid"
}

# `repo.tree` of the stand-in's sample repository, $1 times on session $2, one time a line (s).
tree_calls() {
    local i
    for ((i = 0; i < $1; i++)); do
        curl -s -o /dev/null -w '%{time_total}\n' "${headers[@]}" -H "mcp-session-id: $2" "$url" \
            --data '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"repo.tree","arguments":{"owner":"amtp","repo":"sample"}}}'
    done
}

# The p50 and p95 of a file of times in seconds, in ms.
percentiles() {
    sort -n "$1" | awk '{ t[NR] = $1 * 1000 } END {
        printf "p50 %.2f ms  p95 %.2f ms  (n=%d)", t[int(NR * 0.5 + 0.5)], t[int(NR * 0.95 + 0.5)], NR }'
}

for ((round = 1; round <= rounds; round++)); do
    for mode in on off; do
        if [[ $mode == off ]]; then export OTEL_SDK_DISABLED=true; else unset OTEL_SDK_DISABLED; fi
        cargo xtask up github-mcp >/dev/null
        # The app says at its start whether it exports; the off rounds must not.
        exporting=$(cargo xtask logs github-mcp --tail 30 --no-prefix | grep -c 'exporting OTLP' || true)
        [[ $mode == on && $exporting -gt 0 || $mode == off && $exporting -eq 0 ]] ||
            { echo "otel.sh: github-mcp's export is not $mode" >&2; exit 1; }
        sid=$(session)
        # The first call fills the cache; the rest warm up.
        tree_calls 30 "$sid" >/dev/null
        tree_calls "$calls" "$sid" | tee -a "$samples/$mode" >"$samples/$mode.$round"
        echo "round $round, export $mode: $(percentiles "$samples/$mode.$round"), load $(cut -d' ' -f1-3 /proc/loadavg)"
        cargo xtask down >/dev/null
    done
done
unset OTEL_SDK_DISABLED
for mode in on off; do
    echo "all rounds, export $mode: $(percentiles "$samples/$mode")"
done
