#!/usr/bin/env bash
# The baseline of the stack benchmark: what a hand-written start script does. The same
# programs, flags, accounts and readiness conditions as `cargo xtask up`, started one after
# the other, each waited for with the client tools' usual polling (pg_ctl -w, sleep 0.1 loops).
#
#   xtask/bench/sequential.sh up   STATE_DIR     # start (initdb first when STATE_DIR is empty)
#   xtask/bench/sequential.sh down STATE_DIR     # stop everything it started, keep the data
#
# Ports come from BENCH_PORT_BASE (17400): postgres +0, pgbouncer +1, valkey +2, healthcheck +3,
# mcp +4, docs +5, stand-in +6, Garage S3 +7, RPC +8, admin +9, collector OTLP/HTTP +10,
# OTLP/gRPC +11. Garage's first start is bootstrapped with its own CLI (layout, bucket, key)
# and curl's SigV4 (the lifecycle rule), as a person would. Needs the workspace built (`cargo
# build --workspace`), curl >= 7.75, openssl and, as root, the `postgres` account. Not part of
# the tool: only `xtask/bench/stack.sh` runs it.
set -euo pipefail

action=${1:?usage: sequential.sh up|down STATE_DIR}
state=${2:?usage: sequential.sh up|down STATE_DIR}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=$repo/target/debug
base=${BENCH_PORT_BASE:-17400}
pg_port=$base bouncer_port=$((base + 1)) valkey_port=$((base + 2))
health_port=$((base + 3)) mcp_port=$((base + 4)) docs_port=$((base + 5)) standin_port=$((base + 6))
s3_port=$((base + 7)) rpc_port=$((base + 8)) admin_port=$((base + 9)) otlp_port=$((base + 10)) grpc_port=$((base + 11))
pg_bin=$(dirname "$(command -v postgres || echo /usr/lib/postgresql/15/bin/postgres)")
[[ -x $pg_bin/postgres ]] || pg_bin=/usr/lib/postgresql/15/bin
valkey=$(command -v valkey-server || command -v redis-server)
valkey_cli=$(command -v valkey-cli || command -v redis-cli)
run=/tmp/amtp-seq-$base
as_pg=()
[[ $(id -u) == 0 ]] && as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups)

wait_for() { # wait_for WHAT COMMAND...: poll every 100 ms for up to 20 s
    local what=$1
    shift
    for _ in $(seq 200); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "sequential.sh: $what did not become ready" >&2
    exit 1
}

if [[ $action == down ]]; then
    for pidfile in "$state"/*.pid; do
        [[ -f $pidfile ]] && kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    kill -QUIT "$(cat "$state/nginx/nginx.pid" 2>/dev/null)" 2>/dev/null || true
    [[ -f $state/pgbouncer/pgbouncer.pid ]] && kill -INT "$(cat "$state/pgbouncer/pgbouncer.pid")" 2>/dev/null || true
    "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$state/pg" -m fast -w stop >/dev/null 2>&1 || true
    for pidfile in "$state"/*.pid "$state/nginx/nginx.pid" "$state/pgbouncer/pgbouncer.pid"; do
        pid=$(cat "$pidfile" 2>/dev/null) || continue
        while kill -0 "$pid" 2>/dev/null && [[ $(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null) != Z ]]; do sleep 0.1; done
        rm -f "$pidfile"
    done
    rm -rf "$run"
    exit 0
fi

mkdir -p "$state"/{pgbouncer,nginx/logs,standin,garage/meta,garage/data} "$run"
pg_password=bench-pg-password valkey_password=bench-valkey-password
[[ -n ${as_pg[*]} ]] && chown postgres:postgres "$state" "$state/pgbouncer" "$run"

# PostgreSQL: initdb once, then the documented -c flags.
if [[ ! -f $state/pg/PG_VERSION ]]; then
    echo "$pg_password" >"$state/pwfile" && chmod 600 "$state/pwfile"
    [[ -n ${as_pg[*]} ]] && chown postgres "$state/pwfile"
    # shellcheck disable=SC2046 # one flag per line in initdb.args
    "${as_pg[@]}" "$pg_bin/initdb" -D "$state/pg" -U amtp --pwfile="$state/pwfile" --no-sync \
        --locale=C $(grep -v '^#' "$repo/infra/postgres/initdb.args") >/dev/null
fi
flags=$(grep -Ev '^\s*(#|$)' "$repo/infra/postgres/postgresql.conf" | sed -E 's/\s*=\s*/=/; s/^/-c /' | tr '\n' ' ')
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$state/pg" -w -l "$state/postgres.log" \
    -o "-p $pg_port -h 127.0.0.1 -k $run $flags" start >/dev/null
export PGPASSWORD=$pg_password
psql -qAt -h 127.0.0.1 -p "$pg_port" -U amtp -d postgres -c "SELECT 1 FROM pg_database WHERE datname='amtp'" |
    grep -q 1 || createdb -h 127.0.0.1 -p "$pg_port" -U amtp amtp
verifier=$(psql -qAt -h 127.0.0.1 -p "$pg_port" -U amtp -d postgres -c "SELECT rolpassword FROM pg_authid WHERE rolname='amtp'")

# PgBouncer, with max_prepared_statements left out where the version refuses it.
echo "\"amtp\" \"$verifier\"" >"$state/pgbouncer/userlist.txt"
{
    grep -Ev '^\s*(;|$)' "$repo/infra/pgbouncer/pgbouncer.ini" |
        { if pgbouncer --version | grep -qE 'PgBouncer 1\.(1[0-9]|20)\.'; then grep -v max_prepared_statements; else cat; fi; }
    printf 'listen_addr = 127.0.0.1\nlisten_port = %s\nunix_socket_dir = %s\nauth_file = %s\npidfile = %s\nlogfile = %s\n' \
        "$bouncer_port" "$run" "$state/pgbouncer/userlist.txt" "$state/pgbouncer/pgbouncer.pid" "$state/pgbouncer/pgbouncer.log"
    printf '[databases]\namtp = host=127.0.0.1 port=%s dbname=amtp\n' "$pg_port"
} >"$state/pgbouncer/pgbouncer.ini"
[[ -n ${as_pg[*]} ]] && chown -R postgres:postgres "$state/pgbouncer"
"${as_pg[@]}" pgbouncer -d -q "$state/pgbouncer/pgbouncer.ini"
wait_for pgbouncer psql -qAt -h 127.0.0.1 -p "$bouncer_port" -U amtp -d amtp -c 'SELECT 1'

# Valkey, documented flags on the command line.
"$valkey" --bind 127.0.0.1 --port "$valkey_port" --save "" --appendonly no \
    --requirepass "$valkey_password" --maxmemory 512mb --maxmemory-policy allkeys-lru \
    --daemonize yes --pidfile "$state/valkey.pid" --logfile "$state/valkey.log" --dir "$state"
wait_for valkey "$valkey_cli" -p "$valkey_port" -a "$valkey_password" --no-auth-warning ping

# nginx, serving the built docs site.
sed -e "s|\${AMTP_DOCS_LISTEN}|127.0.0.1:$docs_port|" -e "s|\${AMTP_DOCS_ROOT}|$repo/docs|" \
    "$repo/infra/nginx/default.conf" >"$state/nginx/server.conf"
printf 'pid %s/nginx/nginx.pid;\nerror_log stderr;\nevents {}\nhttp {\n include /etc/nginx/mime.types;\n access_log off;\n include %s/nginx/server.conf;\n}\n' \
    "$state" "$state" >"$state/nginx/nginx.conf"
nginx -p "$state/nginx" -c "$state/nginx/nginx.conf" -e stderr 2>"$state/nginx.log"
wait_for nginx curl -fs "http://127.0.0.1:$docs_port/healthz"

# Garage: secrets once, the config from infra/, the server; a fresh node gets its layout, the
# bucket, the key and the lifecycle rule.
garage_dir=$state/garage
for secret in rpc_secret admin_token; do
    [[ -f $garage_dir/$secret ]] || { openssl rand -hex 32 >"$garage_dir/$secret" && chmod 600 "$garage_dir/$secret"; }
done
[[ -f $garage_dir/key ]] || echo "GK$(openssl rand -hex 12) $(openssl rand -hex 32)" >"$garage_dir/key"
read -r key_id key_secret <"$garage_dir/key"
sed -e "s|\${AMTP_GARAGE_DIR}|$garage_dir|" -e 's|\${AMTP_GARAGE_BIND}|127.0.0.1|' \
    -e "s|\${GARAGE_S3_PORT}|$s3_port|" -e "s|\${GARAGE_RPC_PORT}|$rpc_port|" \
    -e "s|\${GARAGE_ADMIN_PORT}|$admin_port|" -e "s|\${AMTP_GARAGE_RPC_SECRET_FILE}|$garage_dir/rpc_secret|" \
    -e "s|\${AMTP_GARAGE_ADMIN_TOKEN_FILE}|$garage_dir/admin_token|" \
    "$repo/infra/garage/garage.toml" >"$garage_dir/garage.toml"
garage=(garage -c "$garage_dir/garage.toml")
RUST_LOG=netapp=info,garage=info nohup "${garage[@]}" server >"$state/garage.log" 2>&1 &
echo $! >"$state/garage.pid"
wait_for garage curl -fs -H "Authorization: Bearer $(cat "$garage_dir/admin_token")" \
    "http://127.0.0.1:$admin_port/v2/GetClusterStatus"
if [[ ! -f $garage_dir/bootstrapped ]]; then
    node=$("${garage[@]}" node id -q 2>/dev/null | cut -d@ -f1)
    "${garage[@]}" layout assign -z dev -c 10G "$node" >/dev/null
    "${garage[@]}" layout apply --version 1 >/dev/null
    wait_for 'garage health' curl -fs "http://127.0.0.1:$admin_port/health"
    "${garage[@]}" bucket create test-bundles >/dev/null
    "${garage[@]}" key import --yes -n amtp-artifacts "$key_id" "$key_secret" >/dev/null
    "${garage[@]}" bucket allow --read --write --owner test-bundles --key "$key_id" >/dev/null
    # `lifecycle=`: curl signs a bare `?lifecycle` differently from how S3 reads it.
    curl -fs --aws-sigv4 aws:amz:garage:s3 --user "$key_id:$key_secret" -X PUT \
        -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -H 'content-type: application/xml' \
        --data '<LifecycleConfiguration><Rule><ID>expire-after-7-days</ID><Status>Enabled</Status><Filter><Prefix/></Filter><Expiration><Days>7</Days></Expiration></Rule></LifecycleConfiguration>' \
        "http://127.0.0.1:$s3_port/test-bundles?lifecycle=" >/dev/null
    touch "$garage_dir/bootstrapped"
fi
wait_for 'garage health' curl -fs "http://127.0.0.1:$admin_port/health"

# The OpenTelemetry collector (Rotel), its debug log the only output.
nohup rotel-agent start --log-format json --otlp-http-endpoint "127.0.0.1:$otlp_port" \
    --otlp-grpc-endpoint "127.0.0.1:$grpc_port" --debug-log traces --debug-log-verbosity detailed \
    --exporter blackhole >"$state/otel-collector.log" 2>&1 &
echo $! >"$state/otel-collector.pid"
wait_for otel-collector curl -fs -H 'content-type: application/json' --data '{"resourceSpans":[]}' \
    "http://127.0.0.1:$otlp_port/v1/traces"

# Migrations, then the apps.
"$bin/amtp-migrate" --url "postgres://amtp:$pg_password@127.0.0.1:$pg_port/amtp" \
    --location "$repo/migrations/sql" >/dev/null
start() { # start NAME COMMAND...: in the background, pid kept
    local name=$1
    shift
    nohup "$@" >"$state/$name.log" 2>&1 &
    echo $! >"$state/$name.pid"
}
export VALKEY_HOST=127.0.0.1 VALKEY_PORT=$valkey_port VALKEY_PASSWORD=$valkey_password BIND_ADDR=127.0.0.1
PORT=$health_port start healthcheck "$bin/healthcheck"
wait_for healthcheck curl -fs "http://127.0.0.1:$health_port/health"
start github-standin "$bin/github-standin" --listen "127.0.0.1:$standin_port" --app-id 1 \
    --installation-id 1 --app-key "$state/standin/app_key.pem"
wait_for github-standin curl -fs "http://127.0.0.1:$standin_port/_standin/health"
OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$otlp_port OTEL_SERVICE_NAME=github-mcp \
    MCP_HTTP_PORT=$mcp_port GITHUB_APP_ID=1 GITHUB_APP_INSTALLATION_ID=1 \
    GITHUB_APP_KEY_FILE=$state/standin/app_key.pem GITHUB_API_URL=http://127.0.0.1:$standin_port \
    start github-mcp "$bin/github-mcp"
wait_for github-mcp curl -fs "http://127.0.0.1:$mcp_port/health"
