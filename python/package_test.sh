#!/usr/bin/env bash
# ctest python.installed_package: the Python package as a user gets it. A copy of the source
# tree (tracked and new files, as a clean checkout has them) is built with
# `python3 -m build --no-isolation --wheel` and installed with
# `pip install . --no-build-isolation --no-index` into a fresh venv (Debian's python3; its
# pytest is seen through --system-site-packages), offline; the wheel must hold the package,
# its stub and py.typed, and its compiled module must be portable (scripts/check-portable.py);
# then python/tests runs against the installed package. Prints both build times and the
# wheel's size. Skipped (77) without python3-venv, python3-build or pip.
# Usage: package_test.sh SOURCE_DIR CLI
set -euo pipefail
src=$1
cli=$2
py=/usr/bin/python3
for m in venv build pip setuptools; do
  "$py" -c "import $m" 2>/dev/null || { echo "python3 module $m not installed (scripts/install-deps.sh): skipped"; exit 77; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/src"
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
  (cd "$src" && git ls-files -z --cached --others --exclude-standard | tar --null --ignore-failed-read -T - -cf -) | tar -C "$work/src" -xf -
else
  tar -C "$src" --exclude='./build*' --exclude=./dist -cf - . | tar -C "$work/src" -xf -
fi
"$py" -m venv --system-site-packages "$work/venv"
export LV_BUILD_DIR=$work/cmake PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1
cd "$work/src"
t0=$(date +%s)
"$work/venv/bin/pip" install . --no-build-isolation --no-index >"$work/pip.log" 2>&1 || { tail -40 "$work/pip.log"; exit 1; }
t1=$(date +%s)
"$py" -m build --no-isolation --wheel --outdir "$work/dist" >"$work/build.log" 2>&1 || { tail -40 "$work/build.log"; exit 1; }
t2=$(date +%s)
wheel=$(ls "$work"/dist/lora_verify-*.whl)
echo "pip install . in $((t1 - t0)) s; wheel $(basename "$wheel") (same CMake tree) in $((t2 - t1)) s: $(stat -c %s "$wheel") bytes"
listing=$("$py" -m zipfile -l "$wheel")
for f in lora_verify/__init__.py lora_verify/_core.pyi lora_verify/py.typed lora_verify/_core.cpython; do
  grep -q "$f" <<<"$listing" || { echo "the wheel lacks $f"; echo "$listing"; exit 1; }
done
mkdir "$work/unpacked"
"$py" -m zipfile -e "$wheel" "$work/unpacked"
"$py" "$src/scripts/check-portable.py" "$work"/unpacked/lora_verify/_core*.so
cd "$work"
LV_EXPECT_INSTALLED=$work/venv LV_CLI_PATH=$cli LV_SOURCE_DIR=$src PYTHONDONTWRITEBYTECODE=1 \
  "$work/venv/bin/python" -m pytest -q -p no:cacheprovider "$src/python/tests"
