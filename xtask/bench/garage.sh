#!/usr/bin/env bash
# Garage benchmark: its share of a cold `up` (start + first-up bootstrap) and of a warm `up`
# (data kept, nothing to bootstrap), as `up` reports each service's time to ready, and PUT/GET
# of a 10 MB test bundle through the S3 API (curl's SigV4 signing, path-style, as an AWS SDK
# sends them).
#
#   xtask/bench/garage.sh           # from anywhere in the repository; RUNS=10 by default
#
# Needs hyperfine, curl >= 7.75 (--aws-sigv4) and the stack's servers, garage included. Its own
# state dir under /tmp and ports 17420-17429 on 127.0.0.1; stopped and deleted on exit.
# Results go to docs/benchmarks/garage.md by hand.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
runs=${RUNS:-10}
# shellcheck source=own-stack.sh
source "$repo/xtask/bench/own-stack.sh"
need_hyperfine garage.sh
cd "$repo"
own_stack garage 17420
bundle=/tmp/amtp-bench-garage-bundle.tar.gz

cleanup() {
    cargo xtask down --volumes >/dev/null 2>&1 || true
    rm -f "$bundle"
}
trap cleanup EXIT
cleanup

# Builds are not part of any measurement.
cargo build --quiet --workspace --bins --examples
xtask=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/debug/xtask

# One `up`'s "garage ready in N ms" and "stack ready in S s", as two numbers.
ready_times() {
    local out
    out=$("$xtask" up 2>/dev/null)
    echo "$(sed -n 's/^garage *ready in \([0-9]*\) ms.*/\1/p' <<<"$out") $(sed -n 's/^stack ready in \([0-9.]*\) s/\1/p' <<<"$out")"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

for kind in cold warm; do
    : >"/tmp/amtp-bench-garage-$kind"
    for _ in $(seq "$runs"); do
        if [[ $kind == cold ]]; then "$xtask" down --volumes >/dev/null; else "$xtask" down >/dev/null; fi
        ready_times >>"/tmp/amtp-bench-garage-$kind"
    done
    garage_ms=$(cut -d' ' -f1 "/tmp/amtp-bench-garage-$kind" | median)
    stack_s=$(cut -d' ' -f2 "/tmp/amtp-bench-garage-$kind" | median)
    echo "$kind up ($runs runs, medians): garage ready in $garage_ms ms (start + bootstrap), stack ready in $stack_s s"
done

# The stack is up (warm). 10 MB of random bytes: an archive does not compress either.
eval "$("$xtask" env)"
head -c 10485760 /dev/urandom >"$bundle"
url="$AWS_ENDPOINT_URL/$ARTIFACTS_BUCKET/bench/test-bundle.tar.gz"
# The key reaches curl in a file of its own (mode 0600), never on a command line.
netrc=$(mktemp)
trap 'cleanup; rm -f "$netrc"' EXIT
printf 'machine 127.0.0.1 login %s password %s\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >"$netrc"
# Garage wants the payload's hash header; curl signs it as given (an unsigned payload).
s3() {
    curl --silent --show-error --fail --netrc-file "$netrc" --aws-sigv4 "aws:amz:$AWS_REGION:s3" \
        -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@"
}
export -f s3 && export netrc bundle url AWS_REGION
s3 -T "$bundle" "$url"
s3 -o - "$url" | cmp - "$bundle"
hyperfine --shell bash --runs "$runs" --warmup 2 --export-markdown /tmp/amtp-bench-garage.md \
    -n 'PUT 10 MB' 's3 -T "$bundle" "$url"' \
    -n 'GET 10 MB' 's3 -o /dev/null "$url"'
cat /tmp/amtp-bench-garage.md
