#!/usr/bin/env bash
# Snapshot benchmark: `cargo xtask snapshot` and `restore` of a seeded stack, on a running stack
# (Postgres, Garage and what depends on them stopped for the copy or the swap) and on a stopped
# one (the files alone), against the file-copy floor (`cp -a` of the same dirs, in the same run;
# for a restore, which also deletes the data it replaces, `rm -rf` then `cp -a`) and the other
# ways to take a copy: `pg_basebackup` (online, Postgres only) and a template database
# (`CREATE DATABASE ... TEMPLATE`, one database only).
#
#   xtask/bench/snapshot.sh        # from anywhere in the repository; RUNS=10 by default
#
# Needs hyperfine, curl >= 7.75 (--aws-sigv4), psql and pg_basebackup (postgresql-client-15)
# and the stack's servers, garage included. Its own state dir under /tmp and ports from 21000
# on 127.0.0.1; stopped and deleted on exit. Results go to docs/benchmarks/snapshot.md by hand.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
runs=${RUNS:-10}
# Seed: this many projects (rows with two indexes) and 1 MiB objects.
rows=${ROWS:-200000}
objects=${OBJECTS:-48}
# shellcheck source=own-stack.sh
source "$repo/xtask/bench/own-stack.sh"
need_hyperfine snapshot.sh
cd "$repo"
own_stack snapshot 21000
scratch=/tmp/amtp-bench-snapshot-scratch

cleanup() {
    "${xtask:-false}" down --volumes >/dev/null 2>&1 || true
    rm -rf "$scratch"
}
trap cleanup EXIT

# Builds are not part of any measurement.
cargo build --quiet --workspace --bins
xtask=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/debug/xtask
cleanup
mkdir -p "$scratch"
"$xtask" up >/dev/null
eval "$("$xtask" env)"

# Credentials in files of mode 0600, never on a command line.
umask 077
creds=${DIRECT_DATABASE_URL#postgres://}
creds=${creds%%@*}
printf '127.0.0.1:%s:*:%s:%s\n' "$POSTGRES_PORT" "${creds%%:*}" "${creds#*:}" >"$scratch/pgpass"
printf 'machine 127.0.0.1 login %s password %s\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >"$scratch/netrc"
export PGPASSFILE=$scratch/pgpass PGHOST=127.0.0.1 PGPORT=$POSTGRES_PORT PGUSER=${creds%%:*}

psql -q -d amtp -c "INSERT INTO projects (github_owner, github_repo, installation_id)
    SELECT 'bench', 'repo-' || g, g FROM generate_series(1, $rows) g"
# Each object its own random bytes: Garage stores a block once however often it is uploaded.
for i in $(seq "$objects"); do
    head -c 1048576 /dev/urandom >"$scratch/object"
    curl --silent --show-error --fail --netrc-file "$scratch/netrc" \
        --aws-sigv4 "aws:amz:$AWS_REGION:s3" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
        -T "$scratch/object" "$AWS_ENDPOINT_URL/$ARTIFACTS_BUCKET/bench/object-$i"
done
state=$AMTP_STATE_DIR
echo "seeded: $rows rows, $objects objects of 1 MiB; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
du -s --apparent-size --block-size=1M "$state/postgres/data" "$state/garage/meta" "$state/garage/data"

floor="mkdir -p $scratch/cp/garage && cp -a $state/postgres/data $scratch/cp/pgdata && cp -a $state/garage/meta $state/garage/data $scratch/cp/garage/"

# Every run starts with the page cache's dirty data written out (`sync` in --prepare): a copy
# of hundreds of MiB leaves that much to write back, and the next command would pay for it.
# Running stack. The template database needs its source without sessions: new ones are barred
# and PgBouncer's and the apps' ended first (a restore drops the live database WITH (FORCE)).
"$xtask" snapshot bench >/dev/null
hyperfine --runs "$runs" --export-markdown "$scratch/running.md" \
    -n 'snapshot, running stack' --prepare "$xtask snapshot --delete run >/dev/null 2>&1 || true; sync" "$xtask snapshot run" \
    -n 'restore, running stack' --prepare sync "$xtask restore bench" \
    -n 'pg_basebackup (Postgres only)' --prepare "rm -rf $scratch/basebackup; sync" \
    "pg_basebackup -D $scratch/basebackup -X stream -c fast -d 'dbname=postgres'" \
    -n 'template database: take (amtp only)' --prepare sync \
    "psql -q -d postgres -c 'ALTER DATABASE amtp ALLOW_CONNECTIONS false' -c \"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'amtp'\" -c 'DROP DATABASE IF EXISTS amtp_snapshot' -c 'CREATE DATABASE amtp_snapshot TEMPLATE amtp' -c 'ALTER DATABASE amtp ALLOW_CONNECTIONS true'" \
    -n 'template database: restore (amtp only)' --prepare sync \
    "psql -q -d postgres -c 'DROP DATABASE amtp WITH (FORCE)' -c 'CREATE DATABASE amtp TEMPLATE amtp_snapshot'"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
psql -q -d postgres -c 'DROP DATABASE amtp_snapshot'

# Stopped stack: the copy alone, against the floor.
"$xtask" down >/dev/null
hyperfine --runs "$runs" --export-markdown "$scratch/stopped.md" \
    -n 'floor: cp -a of the same dirs' --prepare "rm -rf $scratch/cp; sync" "$floor" \
    -n 'floor of a restore: rm -rf of the same dirs, then cp -a' \
    --prepare "rm -rf $scratch/cp; $floor; sync" "rm -rf $scratch/cp && $floor" \
    -n 'snapshot, stopped stack' --prepare "$xtask snapshot --delete stopped >/dev/null 2>&1 || true; sync" "$xtask snapshot stopped" \
    -n 'restore, stopped stack' --prepare sync "$xtask restore bench"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
cat "$scratch/running.md" "$scratch/stopped.md"
