#!/usr/bin/env bash
# Peer benchmark (issue 24): lora-verify's verified conversion against the physical floor and,
# when a checkout of sd-scripts and Debian's python3-torch are present, against sd-scripts' own
# unverified converter on the same file, in one run (median of RUNS runs each):
#   - a full FLUX.1 rank-R BF16 kohya sample with alpha != rank (the scales fold): `convert --to
#     diffusers` vs sd-scripts' convert_flux_lora.py (load + convert + save, timed in process) +
#     `cp` of the input;
#   - the same rank as a diffusers sample: `convert` to kohya vs `cp` of the input + `dd
#     conv=fsync` of the output's size.
# lora-verify and its floor are timed alternately, after one untimed run of each. Also prints
# convert's phase times (--verbose). Writes bench/peer.md.
#   LV_SDSCRIPTS=/src/sd-scripts RANKS="16 128" RUNS=5 bash scripts/bench-peer.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ranks=${RANKS:-"16 128"}
runs=${RUNS:-5}
bin=${LV_BIN:-$PWD/build/lora-verify}
[ -x "$bin" ] || { bash scripts/build.sh >/dev/null; bin=$PWD/build/lora-verify; }
work=${WORK:-/tmp/lv-bench-peer}
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l; }
# Medians of two commands (sh -c strings) timed alternately after one untimed run of each, so
# that both meet the same state of the machine (page cache, free memory, the disk's backlog):
# prints "MEDIAN1 MEDIAN2".
med2() {
  local a b
  sh -c "$1" >/dev/null 2>&1 || true
  sh -c "$2" >/dev/null 2>&1 || true
  a=$(mktemp) b=$(mktemp)
  for _ in $(seq "$runs"); do
    sync; secs sh -c "$1" >>"$a"
    sync; secs sh -c "$2" >>"$b"
  done
  echo "$(median <"$a") $(median <"$b")"
  rm -f "$a" "$b"
}
peer() {  # sd-scripts' own time, in process (its imports excluded, as a user's script would pay them once)
  for _ in $(seq "$runs"); do sync; /usr/bin/python3 tools/loader-lab/peer_convert.py "$LV_SDSCRIPTS" "$1" "$2"; done | median
}
phases() { "$bin" "$@" --verbose 2>&1 >/dev/null | sed -n 's/^lora-verify: \(.*\) took \(.*\) s$/\1 \2/p' | tr '\n' ';'; }
out=bench/peer.md
{
  echo "# Peer benchmark ($(date -u +%Y-%m-%d), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg) at the start)"
  echo
  if [ -n "${LV_SDSCRIPTS:-}" ]; then
    rev=$(git -C "$LV_SDSCRIPTS" rev-parse --short HEAD 2>/dev/null || echo "not a git checkout")
    peer_at="sd-scripts at $LV_SDSCRIPTS ($rev)"
  else
    peer_at="sd-scripts not given (LV_SDSCRIPTS)"
  fi
  echo "Medians of $runs runs, seconds (lora-verify and its floor alternately, after one untimed run of each). \`scripts/bench-peer.sh\`; $peer_at."
  echo
  echo "| rank | direction | size MB | lora-verify convert | floor | ratio | peer (sd-scripts) | peer + cp | ratio to peer + cp | lora-verify phases |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
} > "$out"
for r in $ranks; do
  k="$work/k$r.safetensors" d="$work/d$r.safetensors"
  "$bin" sample "$k" --dialect kohya --rank "$r" --alpha $((r / 2)) --dtype BF16 --quiet
  "$bin" sample "$d" --dialect diffusers --rank "$r" --alpha $((r / 2)) --dtype BF16 --quiet
  # kohya -> diffusers, against cp and the peer
  read -r lv cpk < <(med2 "'$bin' convert '$k' -o '$work/o.safetensors' --to diffusers --quiet" "cp '$k' '$work/cp.safetensors'")
  mb=$(( $(stat -c %s "$k") / 1000000 ))
  p="-" pc="-" pr="-"
  if [ -n "${LV_SDSCRIPTS:-}" ] && [ -f "$LV_SDSCRIPTS/networks/convert_flux_lora.py" ]; then
    p=$(peer "$k" "$work/peer.safetensors")
    pc=$(printf '%.3f' "$(echo "$p + $cpk" | bc -l)")
    pr=$(printf '%.2f' "$(echo "$lv / $pc" | bc -l)")
  fi
  printf '| %s | kohya → diffusers | %s | %.3f | cp %.3f | %.2f× | %s | %s | %s | %s |\n' "$r" "$mb" "$lv" "$cpk" \
    "$(echo "$lv / $cpk" | bc -l)" "$p" "$pc" "$pr" "$(phases convert "$k" -o "$work/o.safetensors" --to diffusers)" >> "$out"
  # diffusers -> kohya, against cp + an fsynced write of the output
  "$bin" convert "$d" -o "$work/o.safetensors" --style kohya --quiet
  osz=$(stat -c %s "$work/o.safetensors")
  read -r lv floor < <(med2 "'$bin' convert '$d' -o '$work/o.safetensors' --style kohya --quiet" \
    "cp '$d' '$work/cp.safetensors' && dd if=/dev/zero of='$work/dd.bin' bs=1M count=$(( (osz + 1048575) / 1048576 )) conv=fsync status=none")
  mb=$(( $(stat -c %s "$d") / 1000000 ))
  printf '| %s | diffusers → kohya | %s | %.3f | cp + dd fsync %.3f | %.2f× | - | - | - | %s |\n' "$r" "$mb" "$lv" "$floor" \
    "$(echo "$lv / $floor" | bc -l)" "$(phases convert "$d" -o "$work/o.safetensors" --style kohya)" >> "$out"
  rm -f "$k" "$d" "$work"/*.safetensors "$work/dd.bin"
done
echo >> "$out"
echo "Load $(cut -d' ' -f1 /proc/loadavg) at the end." >> "$out"
cat "$out"
