#!/usr/bin/env bash
# Installs what building (and, with --test, testing) rollcall needs on Debian/Ubuntu, only
# when missing.
# The XML-security packages are for SAML signature checking (samael with xmlsec);
# libclang-dev is what its bindings generator needs at build time.
set -euo pipefail

packages=(build-essential pkg-config libxml2-dev libxmlsec1-dev libxmlsec1-openssl libclang-dev ca-certificates curl)
# `deps.sh --test` adds what only the test suite needs: a real browser for the UI tests,
# Python with venv for the SCIM conformance run (scim2-tester, from PyPI), the xmlsec1
# command, the independent signer of the test IdP's SAML responses, and nginx, the real load
# balancer in front of two instances in tests/it/load_balancer.rs.
if [ "${1:-}" = "--test" ]; then
    packages+=(chromium chromium-driver python3 python3-venv xmlsec1 nginx-light)
fi

missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

if ((${#missing[@]})); then
    echo "deps: installing ${missing[*]}"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "deps: run as root or install sudo" >&2; exit 1; }
        sudo="sudo"
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
    # Debian's own cargo is too old for rollcall's dependencies; rustup brings a current one.
    echo "deps: installing the Rust toolchain with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component clippy,rustfmt
fi
