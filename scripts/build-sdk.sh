#!/usr/bin/env bash
# Builds the npm package `roomcast-client` from client-wasm with wasm-pack: the size-tuned
# `wasm-release` profile for wasm32, wasm-bindgen's JS glue and TypeScript declarations,
# package.json from Cargo.toml, then wasm-opt -Oz from npm's binaryen (pinned in
# client-wasm/tools; wasm-pack's own wasm-opt download is switched off with --no-opt).
# Two flavours of the same code:
#   client-wasm/pkg/bundler  what `npm publish` ships as roomcast-client (webpack, vite, ...)
#   client-wasm/pkg/web      an ES module for <script type="module"> without a bundler
#                            (call the default init() first); marked private, not published
# The demo page (www/) loads the web build from www/pkg, which this script refreshes.
# Prints the gzipped size of each .wasm + .js.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh > /dev/null
(cd client-wasm/tools && npm ci --no-audit --no-fund --silent)
wasm_opt=$PWD/client-wasm/tools/node_modules/.bin/wasm-opt

for target in bundler web; do
  out=client-wasm/pkg/$target
  rm -rf "$out"
  # --mode no-install: use the wasm-bindgen that setup.sh installed, never download one.
  wasm-pack --quiet build --mode no-install --target "$target" --profile wasm-release --no-opt \
    --out-dir "pkg/$target" --out-name roomcast_client client-wasm -- --locked
  # The features rustc's wasm32 target emits by default.
  "$wasm_opt" -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals --enable-multivalue --enable-reference-types \
    --strip-debug --strip-producers "$out/roomcast_client_bg.wasm" -o "$out/roomcast_client_bg.wasm"
  if [ "$target" = web ]; then
    python3 - "$out/package.json" <<'PY'
import json, sys
path = sys.argv[1]
package = json.load(open(path))
package["private"] = True
json.dump(package, open(path, "w"), indent=2)
PY
  fi
  version=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["version"])' "$out/package.json")
  wasm_gz=$(gzip -9 -c "$out/roomcast_client_bg.wasm" | wc -c)
  js_gz=$(cat "$out"/roomcast_client*.js | gzip -9 -c | wc -c)
  echo "roomcast-client $version ($target): wasm $(wc -c < "$out/roomcast_client_bg.wasm") B, gzipped wasm $wasm_gz B + js $js_gz B = $((wasm_gz + js_gz)) B"
done

rm -rf www/pkg
mkdir -p www/pkg
cp client-wasm/pkg/web/roomcast_client.js client-wasm/pkg/web/roomcast_client_bg.wasm www/pkg/
