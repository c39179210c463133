#!/usr/bin/env bash
# Measures what InvokeAI, ComfyUI, diffusers and sd-scripts do with lora-verify's corpus, its
# samples in every dialect and every `convert --for APP` output, by running each application's
# own loading code (see README.md). Writes data/loaders/<app>-<commit>.json.
#
#   LV_INVOKEAI=/path/to/InvokeAI LV_COMFYUI=/path/to/ComfyUI LV_DIFFUSERS=/path/to/diffusers \
#   LV_SDSCRIPTS=/path/to/sd-scripts tools/loader-lab/run.sh [build/lora-verify]
#
# Apps whose variable is unset are skipped. Needs Debian's python3-torch (LV_PYTHON, default
# /usr/bin/python3). LV_LAB_WORK: working folder (default: a temporary one, removed at the end).
# LV_LAB_FAMILY=flux2: the FLUX.2 files (dev, klein 9B, klein 4B) instead, written to
# data/loaders/<app>-<commit>-flux2.json (sd-scripts has no FLUX.2 path and is skipped).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
lv="${1:-$repo/build/lora-verify}"
py="${LV_PYTHON:-/usr/bin/python3}"
work="${LV_LAB_WORK:-$(mktemp -d)}"
[ -n "${LV_LAB_WORK:-}" ] || trap 'rm -rf "$work"' EXIT

declare -A dirs=([invokeai]="${LV_INVOKEAI:-}" [comfyui]="${LV_COMFYUI:-}" [diffusers]="${LV_DIFFUSERS:-}" [sd-scripts]="${LV_SDSCRIPTS:-}")
declare -A runner=([invokeai]=invokeai [comfyui]=comfyui [diffusers]=diffusers [sd-scripts]=sdscripts)
family="${LV_LAB_FAMILY:-flux1}"
suffix=""; [ "$family" = flux1 ] || suffix="-$family"
# FLUX.1: reuse freed memory (far fewer page faults). FLUX.2's dense weights are up to 1.4 GB
# each: those are better given back to the system when freed (peak ~6 GB instead of ~11 GB).
[ "$family" != flux1 ] || export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736
apps=()
for a in invokeai comfyui diffusers sd-scripts; do
  [ -n "${dirs[$a]}" ] || continue
  if [ "$family" != flux1 ] && [ "$a" = sd-scripts ]; then echo "sd-scripts: no $family path, skipped" >&2; continue; fi
  apps+=("$a")
done
[ ${#apps[@]} -gt 0 ] || { echo "set at least one of LV_INVOKEAI, LV_COMFYUI, LV_DIFFUSERS, LV_SDSCRIPTS" >&2; exit 64; }

start=$(date +%s)
cd "$here"
"$py" -m lab.prepare "$lv" "$work" "${apps[@]}" --family "$family"
for a in "${apps[@]}"; do
  t0=$(date +%s)
  "$py" -m lab.runner "${runner[$a]}" --app-dir "${dirs[$a]}" --jobs "$work/jobs-$a$suffix.json" --out "$work/res-$a$suffix.json" 2>"$work/$a$suffix.log"
  "$py" -m lab.export "$work/res-$a$suffix.json" "$work/inputs$suffix.json" "$a" "$repo/data/loaders"
  echo "$a: $(( $(date +%s) - t0 )) s" >&2
done
echo "full measurement: $(( $(date +%s) - start )) s" >&2
