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

# The SDK's browser tests: Debian's Chromium and ChromeDriver, and wasm-bindgen's test
# runner at exactly the wasm-bindgen version in Cargo.lock (a mismatch refuses to run).
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  say "installing chromium and chromium-driver (Debian packages)"
  sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
  sudo_if_needed apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq chromium chromium-driver
fi
for tool in python3 curl; do
  command -v "$tool" >/dev/null || { say "$tool not found: install it (Debian: apt-get install $tool)"; exit 1; }
done
wasm_bindgen_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' \
  "$(dirname "$0")/../Cargo.lock")
if [ "$(wasm-bindgen-test-runner --version 2>/dev/null | awk '{print $2}')" != "$wasm_bindgen_version" ]; then
  say "installing wasm-bindgen-cli $wasm_bindgen_version (the version in Cargo.lock)"
  cargo install wasm-bindgen-cli --version "$wasm_bindgen_version"
fi

# The SDK's package build and browser test driver.
wasm_pack_version=0.15.1
if [ "$(wasm-pack --version 2>/dev/null | awk '{print $2}')" != "$wasm_pack_version" ]; then
  say "installing wasm-pack $wasm_pack_version"
  cargo install wasm-pack --version "$wasm_pack_version" --locked
fi

say "ok"
