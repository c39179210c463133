#!/usr/bin/env bash
# Builds the web page into build-web/: the core libraries and web/wasm_api.cpp compiled to
# WebAssembly with Debian's emscripten (lv_core.mjs + lv_core.wasm), the JavaScript API
# (lora-verify.mjs) and the page (index.html, app.mjs, worker.mjs, style.css). Serve it with
# `node web/serve.mjs build-web`. Extra arguments go to cmake's configure step.
# Exit 77 (skipped) when emscripten is not installed (scripts/install-deps.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v emcmake >/dev/null 2>&1; then
  echo "build-web: emscripten is not installed (apt-get install emscripten): web page not built" >&2
  exit 77
fi
# emcc's JavaScript optimizer needs acorn: Debian's node-acorn, in /usr/share/nodejs, which
# a Node.js other than Debian's own does not search.
export NODE_PATH=/usr/share/nodejs${NODE_PATH:+:$NODE_PATH}
jobs=$(nproc 2>/dev/null || echo 2)
start=$(date +%s)
emcmake cmake -S . -B build-web -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build-web -j"$jobs"
echo "build-web: built build-web/ in $(( $(date +%s) - start )) s; lv_core.wasm is $(stat -c %s build-web/lv_core.wasm) bytes"
