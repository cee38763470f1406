# The two quickstart commands are `make run` and `make test`; both install what is missing.
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: deps deps-test run test check

deps:
	@./scripts/deps.sh

deps-test:
	@./scripts/deps.sh --test

## Serve on 127.0.0.1:8080 with the embedded SQLite database ./rollcall.db.
run: deps
	cargo run --locked -- serve

## The whole test suite: SQLite always, PostgreSQL too when ROLLCALL_TEST_POSTGRES_URL is set,
## e.g. postgres://postgres@127.0.0.1:5432/test (each test makes and drops its own schema);
## then scim2-tester against a running rollcall (scripts/scim-conformance.sh), and the SCIM
## benchmark in its tiny configuration, which checks counts, never speed (scripts/bench-smoke.sh).
test: deps-test
	@[ -n "$$ROLLCALL_TEST_POSTGRES_URL" ] || echo "make test: ROLLCALL_TEST_POSTGRES_URL is not set, so the postgres:: tests pass without running (CI sets it)."
	cargo test --locked --all-targets
	./scripts/scim-conformance.sh
	./scripts/bench-smoke.sh

## Formatting and lints, as CI checks them.
check: deps
	cargo fmt --check
	cargo clippy --locked --all-targets -- -D warnings
