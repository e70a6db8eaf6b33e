#!/usr/bin/env bash
# Installs what a fresh machine lacks to build, run and test Roomcast. Idempotent: run it
# as often as you like; it only installs what is missing.
set -euo pipefail

say() { printf 'setup: %s\n' "$*"; }

command -v cargo >/dev/null || { say "cargo not found: install Rust with rustup first (https://rustup.rs)"; exit 1; }

# rustfmt and clippy are part of the test command.
for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
    say "adding rustup component ${component}"
    rustup component add "${component}"
  fi
done

# The protocol crate and the browser SDK build for wasm32.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding rustup target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

say "ok"
