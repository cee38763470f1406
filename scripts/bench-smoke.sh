#!/usr/bin/env bash
# CI's run of the benchmarks in their tiny configuration: examples/scim_scale.rs (2,000
# Users synced into a real `rollcall serve`, every phase run a little, every count checked:
# Users, memberships and audit events after the sync, no one left in the renamed group's
# team) and examples/sso_scale.rs (40 SAML sign-ins twice: members, team members and audit
# events counted). Never a speed: the figures printed here are a debug build's.
# SQLite always; PostgreSQL too when ROLLCALL_TEST_POSTGRES_URL is set (CI sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}/debug"
# Already built by `cargo test --all-targets`; this only makes sure.
cargo build --locked --quiet --bin rollcall --example scim_scale --example sso_scale

work=$(mktemp -d)
db="rollcall_bench_smoke_$$"
cleanup() {
    rm -rf "$work"
    if [ -n "${ROLLCALL_TEST_POSTGRES_URL:-}" ]; then
        psql "$ROLLCALL_TEST_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS $db" -c "DROP DATABASE IF EXISTS ${db}_sso" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

# run BENCHMARK DATABASE_URL ARGS...
run() {
    echo "bench-smoke: $1 on $2"
    BENCH_TINY=1 BENCH_OUT="$work/out" "$target/examples/$1" "${@:2}" >"$work/log" 2>&1 \
        || { cat "$work/log"; exit 1; }
    grep -E "counts match|rename" "$work/log"
}

run scim_scale "sqlite://$work/bench.db" 2000 500
run sso_scale "sqlite://$work/sso.db"
for f in scim-sqlite.json scim-sqlite.svg sso-sqlite.json; do test -s "$work/out/$f"; done
if [ -n "${ROLLCALL_TEST_POSTGRES_URL:-}" ]; then
    psql "$ROLLCALL_TEST_POSTGRES_URL" -qc "CREATE DATABASE $db" -c "CREATE DATABASE ${db}_sso"
    run scim_scale "${ROLLCALL_TEST_POSTGRES_URL%/*}/$db" 2000 500
    run sso_scale "${ROLLCALL_TEST_POSTGRES_URL%/*}/${db}_sso"
    for f in scim-postgres.json scim-postgres.svg sso-postgres.json; do test -s "$work/out/$f"; done
else
    echo "bench-smoke: ROLLCALL_TEST_POSTGRES_URL is not set, so PostgreSQL was not run (CI sets it)."
fi
