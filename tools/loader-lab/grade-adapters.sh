#!/usr/bin/env bash
# Grades the adapters of examples/adapters against the measurements: runs them as
# `lora-verify matrix --converter` columns over the measured files and compares every cell with
# what the app did (lab/grade.py says how). Writes data/adapters/grade.json.
#
#   LV_INVOKEAI=/path/to/InvokeAI LV_COMFYUI=/path/to/ComfyUI LV_DIFFUSERS=/path/to/diffusers \
#   tools/loader-lab/grade-adapters.sh [build/lora-verify] WORK
#
# WORK: the working folder of a measurement (run.sh's LV_LAB_WORK: inputs.json and the files).
# Apps whose variable is unset are not graded. LV_MEASUREMENTS: the folder of the
# <app>-<commit>.json measurements (default data/loaders). LV_GRADE_OUT: the grade file.
# LV_GRADE_WORK: keep the matrix reports and cell logs there (default: a temporary folder).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
[ $# -ge 1 ] || { echo "usage: grade-adapters.sh [LORA_VERIFY] WORK" >&2; exit 64; }
lv="$repo/build/lora-verify"
[ $# -ge 2 ] && { lv="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; shift; }
work="$(cd "$1" && pwd)"
py="${LV_PYTHON:-/usr/bin/python3}"
data="${LV_MEASUREMENTS:-$repo/data/loaders}"
out="${LV_GRADE_OUT:-$repo/data/adapters/grade.json}"
declare -A vars=([invokeai]=LV_INVOKEAI [comfyui]=LV_COMFYUI [diffusers]=LV_DIFFUSERS)
measured=()
for app in invokeai comfyui diffusers; do
  [ -n "${!vars[$app]:-}" ] || continue
  files=()
  for f in "$data/$app"-*.json; do [[ -e "$f" && "$f" != *-flux2.json ]] && files+=("$f"); done  # FLUX.1 measurements
  [ ${#files[@]} -gt 0 ] || { echo "no $app measurement in $data" >&2; exit 66; }
  [ ${#files[@]} -eq 1 ] || { echo "more than one $app measurement in $data: ${files[*]}" >&2; exit 64; }
  measured+=(--measured "$app=${files[0]}")
done
[ ${#measured[@]} -gt 0 ] || { echo "set at least one of LV_INVOKEAI, LV_COMFYUI, LV_DIFFUSERS" >&2; exit 64; }
mkdir -p "$(dirname "$out")"
runs="${LV_GRADE_WORK:-$(mktemp -d)}"
[ -n "${LV_GRADE_WORK:-}" ] || trap 'rm -rf "$runs"' EXIT
cd "$here"
"$py" -m lab.grade "$lv" --inputs "$work/inputs.json" "${measured[@]}" --for-outputs --work "$runs" --out "$out"
