#!/usr/bin/env bash
# Builds the npm package `roomcast-client` from client-wasm: a size-tuned release build
# for wasm32, wasm-bindgen's JS glue and TypeScript declarations, and wasm-opt -Oz (from
# npm's binaryen, pinned in client-wasm/tools). Writes two flavours of the package:
#   client-wasm/pkg/web      ES module for <script type="module"> (call the default init())
#   client-wasm/pkg/bundler  for webpack, vite and other bundlers
# and prints the gzipped size of each .wasm + .js.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh > /dev/null
cargo build --locked --profile wasm-release -p roomcast-client --target wasm32-unknown-unknown
wasm=target/wasm32-unknown-unknown/wasm-release/roomcast_client.wasm
(cd client-wasm/tools && npm ci --no-audit --no-fund --silent)
wasm_opt=client-wasm/tools/node_modules/.bin/wasm-opt
version=$(cargo pkgid -p roomcast-client | sed 's/.*[#@]//')

for target in web bundler; do
  out=client-wasm/pkg/$target
  rm -rf "$out"
  wasm-bindgen --target "$target" --out-dir "$out" --out-name roomcast_client "$wasm"
  # The features rustc's wasm32 target emits by default.
  "$wasm_opt" -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals --enable-multivalue --enable-reference-types \
    --strip-debug --strip-producers "$out/roomcast_client_bg.wasm" -o "$out/roomcast_client_bg.wasm"
  [ -f client-wasm/README.md ] && cp client-wasm/README.md "$out/"
  cat > "$out/package.json" <<JSON
{
  "name": "roomcast-client",
  "version": "$version",
  "description": "Browser SDK for Roomcast: rooms, chat, notifications and live feeds over WebSocket, with reconnect that loses nothing",
  "license": "MIT OR Apache-2.0",
  "type": "module",
  "main": "roomcast_client.js",
  "types": "roomcast_client.d.ts",
  "files": ["roomcast_client_bg.wasm", "roomcast_client.js", "roomcast_client_bg.js", "roomcast_client.d.ts", "roomcast_client_bg.wasm.d.ts", "README.md"],
  "sideEffects": ["./roomcast_client.js", "./snippets/*"]
}
JSON
  wasm_gz=$(gzip -9 -c "$out/roomcast_client_bg.wasm" | wc -c)
  js_gz=$(cat "$out"/roomcast_client*.js | gzip -9 -c | wc -c)
  echo "roomcast-client $version ($target): wasm $(wc -c < "$out/roomcast_client_bg.wasm") B, gzipped wasm $wasm_gz B + js $js_gz B = $((wasm_gz + js_gz)) B"
done
