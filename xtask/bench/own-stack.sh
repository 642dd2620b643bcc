# Sourced by the benchmark scripts: `own_stack NAME FIRST_PORT` gives the script a stack of its
# own, its state in /tmp/amtp-bench-NAME and one port per port variable of the unit table from
# FIRST_PORT up, with no `.env` and no password of the caller's; `need_hyperfine SCRIPT` fails
# with the install command when hyperfine is missing.

need_hyperfine() {
    command -v hyperfine >/dev/null ||
        { echo "$1: hyperfine is required (apt-get install hyperfine)" >&2; exit 1; }
}

own_stack() {
    export AMTP_STATE_DIR="/tmp/amtp-bench-$1" AMTP_ENV_FILE=/nonexistent/.env
    unset POSTGRES_PASSWORD VALKEY_PASSWORD GITHUB_APP_ID
    local port=$2 var
    # `__port-vars` prints one VAR=default line per port of the table.
    while IFS='=' read -r var _; do
        export "$var=$port"
        port=$((port + 1))
    done < <(cargo xtask __port-vars 2>/dev/null)
}
