#!/usr/bin/env bash
# Installs everything Vigil's build and tests need on a fresh Debian
# machine: system packages, the Rust components, and tansu (the Kafka-API
# broker the tests run against). Safe to run again: it skips what is there.
set -euo pipefail

log() { printf '\n== %s\n' "$*" >&2; }

. "$(dirname "$0")/apt.sh"

# System packages: Mosquitto (the tests' MQTT broker), a C toolchain and
# the libraries librdkafka's bundled build links (zlib, zstd, OpenSSL, SASL),
# and headless Chromium with its WebDriver for the dashboard's browser test.
apt_install mosquitto build-essential pkg-config cmake perl python3 zlib1g-dev libzstd-dev libssl-dev libsasl2-dev curl chromium chromium-driver

if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    else
        echo "cargo not found: install Rust with rustup (https://rustup.rs) first" >&2
        exit 1
    fi
fi
if command -v rustup >/dev/null 2>&1; then
    rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
    rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi

# tansu takes ~15 minutes to build: reuse an installed binary.
if ! command -v tansu >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/tansu" ]; then
    log "building tansu (once; about 15 minutes)"
    cargo install tansu --locked --features dynostore,libsql
fi

if ! command -v cargo-nextest >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/cargo-nextest" ]; then
    log "installing cargo-nextest"
    cargo install cargo-nextest --locked
fi
