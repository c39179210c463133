#!/usr/bin/env bash
# Install what is missing, build, and run the whole test suite with ctest.
# Exit status 0 only when every test passes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
cd build
ctest --output-on-failure -j"$(nproc 2>/dev/null || echo 2)"
