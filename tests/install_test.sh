#!/usr/bin/env bash
# ctest Install.ProgramManPageAndCompletion: `cmake --install BUILD --prefix TMP` installs the
# program, its manual page and its bash completion; the page renders (when man is
# installed) and the completion completes. Usage: install_test.sh BUILD_DIR
set -euo pipefail
build=$1
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
for f in bin/lora-verify share/man/man1/lora-verify.1 share/bash-completion/completions/lora-verify; do
  [ -f "$prefix/$f" ] || { echo "not installed: $f"; exit 1; }
done
[ -x "$prefix/bin/lora-verify" ] || { echo "bin/lora-verify is not executable"; exit 1; }
"$prefix/bin/lora-verify" --version | grep -q '^lora-verify ' || { echo "the installed program does not run"; exit 1; }
if command -v man >/dev/null 2>&1; then
  MANWIDTH=80 man -l "$prefix/share/man/man1/lora-verify.1" 2>/dev/null | grep -q 'lora-verify' ||
    { echo "the manual page does not render"; exit 1; }
fi
# The completion: commands at the first word, a command's options, loader names after --for.
# shellcheck disable=SC1091
source "$prefix/share/bash-completion/completions/lora-verify"
complete_words() {
  COMP_WORDS=("$@")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMPREPLY=()
  _lora_verify
  echo "${COMPREPLY[*]}"
}
[[ " $(complete_words lora-verify con) " == *" convert "* ]] || { echo "completion: no command"; exit 1; }
[[ " $(complete_words lora-verify convert in.safetensors --dr) " == *" --drop-unsupported "* ]] ||
  { echo "completion: no option of convert"; exit 1; }
[[ " $(complete_words lora-verify convert in.safetensors --for '') " == *" invokeai-5.1 "* ]] ||
  { echo "completion: no loader names after --for"; exit 1; }
[[ " $(complete_words lora-verify inspect f --) " != *" --for "* ]] || { echo "completion: --for offered to inspect"; exit 1; }
echo "installed: bin/lora-verify, share/man/man1/lora-verify.1, share/bash-completion/completions/lora-verify"
