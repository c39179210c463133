#!/usr/bin/env bash
# Regenerates the committed compatibility matrix in reports/ (byte-stable for the same
# lora-verify version). A test fails when the committed files are stale.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
./build/lora-verify matrix --out reports --jobs "$(nproc 2>/dev/null || echo 2)"
