#!/usr/bin/env bash
# Install what is missing, build, and run the whole test suite with ctest.
# Exit status 0 only when every test passes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# The Python module and its pytest suite (ctest runs python/tests) when pybind11 and Debian's
# pytest are installed (install-deps.sh installs both); without them the C++ suite alone.
python_flag=-DLV_PYTHON=OFF
if [ -f /usr/lib/cmake/pybind11/pybind11Config.cmake ] && /usr/bin/python3 -c 'import pytest' 2>/dev/null; then
  python_flag=-DLV_PYTHON=ON
fi
bash scripts/build.sh "$python_flag"
# The web page's WebAssembly build (build-web/), which ctest's web.node and web.browser test;
# skipped (77) only where emscripten is missing, which install-deps.sh installs.
status=0
bash scripts/build-web.sh || status=$?
if [ "$status" -ne 0 ] && [ "$status" -ne 77 ]; then exit "$status"; fi
cd build
ctest --output-on-failure -j"$(nproc 2>/dev/null || echo 2)"
