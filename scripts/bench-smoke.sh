#!/usr/bin/env bash
# CI's run of the SCIM benchmark (examples/scim_scale.rs) in its tiny configuration: 2,000
# Users synced into a real `rollcall serve`, every phase run a little, and every count
# checked (Users, memberships and audit events after the sync; no one left in the renamed
# group's team). Never a speed: the figures printed here are a debug build's.
# SQLite always; PostgreSQL too when ROLLCALL_TEST_POSTGRES_URL is set (CI sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}/debug"
# Already built by `cargo test --all-targets`; this only makes sure.
cargo build --locked --quiet --bin rollcall --example scim_scale

work=$(mktemp -d)
db="rollcall_bench_smoke_$$"
cleanup() {
    rm -rf "$work"
    if [ -n "${ROLLCALL_TEST_POSTGRES_URL:-}" ]; then
        psql "$ROLLCALL_TEST_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

run() {
    echo "bench-smoke: $1"
    BENCH_TINY=1 BENCH_OUT="$work/out" "$target/examples/scim_scale" "$1" 2000 500 >"$work/log" 2>&1 \
        || { cat "$work/log"; exit 1; }
    grep -E "counts match|rename" "$work/log"
}

run "sqlite://$work/bench.db"
test -s "$work/out/scim-sqlite.json" && test -s "$work/out/scim-sqlite.svg"
if [ -n "${ROLLCALL_TEST_POSTGRES_URL:-}" ]; then
    psql "$ROLLCALL_TEST_POSTGRES_URL" -qc "CREATE DATABASE $db"
    run "${ROLLCALL_TEST_POSTGRES_URL%/*}/$db"
    test -s "$work/out/scim-postgres.json" && test -s "$work/out/scim-postgres.svg"
else
    echo "bench-smoke: ROLLCALL_TEST_POSTGRES_URL is not set, so PostgreSQL was not run (CI sets it)."
fi
