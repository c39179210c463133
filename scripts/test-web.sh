#!/usr/bin/env bash
# Tests the web build (scripts/build-web.sh) against the CLI: the JavaScript API in node
# (web/test/node-api.test.mjs) and the page in a real headless Chromium, Debian's, driven by
# playwright-core from web/package-lock.json (web/test/page.test.mjs). Node's test runner.
#   scripts/test-web.sh [--node | --browser] [--screenshot PATH]
# LV_CLI: the CLI to compare with (default build/lora-verify); LV_CHROMIUM: the browser
# (default /usr/bin/chromium). Exit 77 (skipped), saying why, when the web build, node or the
# browser is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
files=(web/test/node-api.test.mjs web/test/page.test.mjs)
while [ $# -gt 0 ]; do
  case "$1" in
    --node) files=(web/test/node-api.test.mjs) ;;
    --browser) files=(web/test/page.test.mjs) ;;
    --screenshot) export LV_SCREENSHOT="$(realpath -m "$2")"; shift ;;
    *) echo "usage: scripts/test-web.sh [--node | --browser] [--screenshot PATH]" >&2; exit 64 ;;
  esac
  shift
done
skip() { echo "test-web: skipped: $*" >&2; exit 77; }
command -v node >/dev/null 2>&1 || skip "node is not installed"
[ -f build-web/lv_core.wasm ] || skip "no web build (scripts/build-web.sh; it needs emscripten)"
export LV_CLI="${LV_CLI:-$PWD/build/lora-verify}"
[ -x "$LV_CLI" ] || skip "no CLI at $LV_CLI to compare with (scripts/build.sh)"
if [[ " ${files[*]} " == *page.test.mjs* ]]; then
  [ -x "${LV_CHROMIUM:-/usr/bin/chromium}" ] || skip "no Chromium at ${LV_CHROMIUM:-/usr/bin/chromium} (apt-get install chromium)"
  if [ ! -f web/node_modules/playwright-core/package.json ]; then
    npm ci --prefix web --no-audit --no-fund >/dev/null || skip "playwright-core could not be installed (npm ci --prefix web)"
  fi
fi
node --test "${files[@]}"
