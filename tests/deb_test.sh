#!/usr/bin/env bash
# ctest Install.DebianPackage: `cpack -G DEB` builds a package that holds usr/bin/lora-verify,
# its manual page and its completion, and the packaged program runs on any x86-64 CPU
# (scripts/check-portable.py: no AVX/AVX-512 outside the kernels chosen at run time). Skipped
# (77) without dpkg-deb. Usage: deb_test.sh BUILD_DIR
set -euo pipefail
build=$1
command -v dpkg-deb >/dev/null 2>&1 || { echo "dpkg-deb not installed: skipped"; exit 77; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cpack -G DEB --config "$build/CPackConfig.cmake" -B "$out" >/dev/null
deb=$(ls "$out"/*.deb)
list=$(dpkg-deb -c "$deb")
for f in ./usr/bin/lora-verify ./usr/share/man/man1/lora-verify.1 ./usr/share/bash-completion/completions/lora-verify; do
  grep -q " $f\$" <<<"$list" || { echo "$deb does not hold $f"; echo "$list"; exit 1; }
done
dpkg-deb -f "$deb" Depends | grep -q 'libc6' || { echo "no Depends: libc6"; exit 1; }
if [ "$(uname -m)" = x86_64 ]; then
  dpkg-deb -x "$deb" "$out/root"
  python3 "$(dirname "$0")/../scripts/check-portable.py" "$out/root/usr/bin/lora-verify"
fi
echo "$(basename "$deb"): usr/bin/lora-verify, manual page, completion"
