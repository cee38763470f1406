#!/usr/bin/env bash
# SCIM conformance: starts a real rollcall and runs scim2-tester (from PyPI, through
# scim2-cli's `test` command, in a fresh virtualenv) against its SCIM endpoint: on SQLite,
# and on PostgreSQL too when ROLLCALL_TEST_POSTGRES_URL is set. Any check that does not
# succeed fails the run; so does a run that made suspiciously few checks.
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-target}"
cargo build --locked --quiet
bin="$(realpath "$target/debug/rollcall")"
work="$(mktemp -d)"
server=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check scim2-cli==0.6.0 scim2-tester==0.5.2

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

check() {
    local label="$1" database_url="$2"
    local port
    port="$(free_port)"
    export ROLLCALL_DATABASE_URL="$database_url"
    export ROLLCALL_LISTEN="127.0.0.1:$port"
    export ROLLCALL_PUBLIC_BASE_URL="http://127.0.0.1:$port"
    export ROLLCALL_SECRETS__KEY_FILE="$work/key"
    export ROLLCALL_MAIL__FILE_DIR="$work/mail"
    "$bin" migrate >/dev/null
    local admin
    # The token is the one line that is one; the rest of the output says how to go on.
    admin="$("$bin" bootstrap --org-slug conformance --org-name Conformance --admin-email admin@conformance.test | grep '^rc_pat_')"
    "$bin" serve >"$work/serve-$label.log" 2>&1 &
    server=$!
    for _ in $(seq 1 50); do
        curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
        sleep 0.2
    done
    local api="http://127.0.0.1:$port/api/v1/orgs/conformance"
    local connection secret
    connection="$(curl -fsS -H "Authorization: Bearer $admin" -H 'content-type: application/json' \
        -d '{"kind": "saml", "name": "Conformance IdP"}' "$api/connections" \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')"
    secret="$(curl -fsS -H "Authorization: Bearer $admin" -H 'content-type: application/json' \
        -d "{\"name\": \"scim2-tester\", \"connection_id\": $connection}" "$api/scim-tokens" \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["secret"])')"
    # The token goes through the environment: command lines are visible to other users.
    SCIM_CLI_HEADERS="Authorization: Bearer $secret" "$work/venv/bin/scim2" \
        --url "http://127.0.0.1:$port/scim/v2/conformance" test >"$work/result-$label.txt" 2>&1 || true
    kill "$server" && wait "$server" 2>/dev/null || true
    server=""
    local passed failed
    passed="$(grep -c '^SUCCESS' "$work/result-$label.txt" || true)"
    failed="$(grep -cE '^(ERROR|CRITICAL|WARNING)' "$work/result-$label.txt" || true)"
    echo "scim conformance ($label): $passed checks passed, $failed failed"
    if [ "$failed" -ne 0 ] || [ "$passed" -lt 100 ]; then
        grep -vE '^SUCCESS' "$work/result-$label.txt" | head -n 80
        echo "--- server log ---"
        tail -n 40 "$work/serve-$label.log"
        exit 1
    fi
}

check sqlite "sqlite://$work/conformance.db"

if [ -n "${ROLLCALL_TEST_POSTGRES_URL:-}" ]; then
    database="rollcall_scim_conformance"
    export PGOPTIONS="--client-min-messages=warning"
    psql "$ROLLCALL_TEST_POSTGRES_URL" -qAt -c "DROP DATABASE IF EXISTS $database" -c "CREATE DATABASE $database"
    check postgres "${ROLLCALL_TEST_POSTGRES_URL%/*}/$database"
    psql "$ROLLCALL_TEST_POSTGRES_URL" -qAt -c "DROP DATABASE IF EXISTS $database"
fi
