#!/usr/bin/env bash
# Installs the Debian 12 packages lora-verify needs, only those that are missing.
# Idempotent: a second run installs nothing and does not touch the network.
set -euo pipefail

packages=(
  build-essential   # g++ 12 and make
  cmake             # the build system
  libeigen3-dev     # linear algebra for the equivalence checks
  nlohmann-json3-dev # SAX parser for safetensors headers, JSON reports
  libgtest-dev      # unit tests
  libbenchmark-dev  # micro-benchmarks of the hot paths
  clang-14          # libFuzzer builds of the fuzz harnesses
  libclang-rt-14-dev # sanitizer and libFuzzer runtimes for clang 14
  python3           # helper scripts (report regeneration, timing)
  libcli11-dev      # the command-line parser; the command table also writes --help, the manual page
                    # and the bash completion
  python3-dev       # Python headers for the lora_verify module (pybind11-dev needs them, does not pull them in)
  pybind11-dev      # the lora_verify Python module (-DLV_PYTHON=ON; scripts/test.sh turns it on when present)
  python3-pytest    # the module's pytest suite (python/tests), run by ctest; also runs the README's pytest snippet
  python3-venv      # the fresh venv ctest python.installed_package installs the package into
  python3-pip       # pip install . --no-build-isolation --no-index (offline: Debian's build tools only)
  python3-setuptools # the build backend of pyproject.toml / setup.py (which runs CMake for the module)
  python3-wheel     # setuptools' bdist_wheel, used by pip install . and python3 -m build
  python3-build     # python3 -m build --no-isolation --wheel: the wheel ctest checks
  binutils          # objdump for scripts/check-portable.py (packages hold no -march=native code)
  emscripten        # the web page's WebAssembly module (scripts/build-web.sh); brings clang-14, lld, binaryen, node-acorn
  nodejs            # runs emscripten's tools and the web tests (node's test runner)
  chromium          # the real headless browser scripts/test-web.sh drives (no browser is downloaded)
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
else
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The web tests' browser driver, playwright-core, at the version web/package-lock.json pins
# (npm registry; it drives the chromium above and downloads no browser).
cd "$(dirname "$0")/.."
want=$(node -p 'require("./web/package-lock.json").packages["node_modules/playwright-core"].version')
have=$(node -p 'require("./web/node_modules/playwright-core/package.json").version' 2>/dev/null || true)
if [ "$have" != "$want" ]; then
  echo "install-deps: npm ci in web/ (playwright-core $want)"
  npm ci --prefix web --no-audit --no-fund --loglevel=error
fi
