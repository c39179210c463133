#!/usr/bin/env bash
# Portable against native: the same end-to-end commands timed with a -march=native build
# (build-native/, -DLV_NATIVE=ON) and the default portable build (build-portable/: kernels
# chosen at run time), and with the portable build capped at baseline x86-64
# (LV_CPU_LEVEL=x86-64: what it would be without the run-time choice). Inputs as in
# scripts/bench.sh: full-size FLUX.1 diffusers LoRAs (BF16) at RANKS, another tool's F32
# conversion of each (compare's numerical path). Runs are interleaved (native, portable,
# baseline, native, …) so load from other work spreads evenly; median of RUNS of the
# elapsed time and of the CPU time (user + system; steadier on a shared machine).
# Writes bench/portable.md.      RANKS="16 64" RUNS=5 bash scripts/bench-portable.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ranks=${RANKS:-"16 64"}
runs=${RUNS:-5}
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }
jobs=$(nproc 2>/dev/null || echo 2)
for kind in native portable; do
  flag=OFF; [ "$kind" = native ] && flag=ON
  cmake -S . -B "build-$kind" -DCMAKE_BUILD_TYPE=Release -DLV_BUILD_BENCHMARKS=ON -DLV_NATIVE=$flag >/dev/null
  cmake --build "build-$kind" -j"$jobs" --target lora-verify lv_foreign >/dev/null
done
work=${WORK:-/tmp/lv-bench-portable}
mkdir -p "$work"
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
configs=(native portable baseline)
run() {  # config, command args...: prints "elapsed cpu"
  local config=$1; shift
  local bin=build-$config/lora-verify env=()
  [ "$config" = baseline ] && bin=build-portable/lora-verify && env=(LV_CPU_LEVEL=x86-64)
  env "${env[@]}" /usr/bin/time -f "%e %U %S" -o "$work/t" "$bin" "$@" >/dev/null 2>&1 || true
  awk '{printf "%s %.2f\n", $1, $2 + $3}' "$work/t"
}
out=bench/portable.md
{
  echo "# Portable build against native"
  echo
  echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), AVX-512: $(grep -q avx512f /proc/cpuinfo && echo yes || echo no); $(date -u +%Y-%m-%d);"
  echo "median of $runs interleaved runs, page cache warm; load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "native: \`-march=native\` everywhere; portable: the default build, its kernels chosen at run time (here the best"
  echo "level the CPU has); baseline: the same portable binary with LV_CPU_LEVEL=x86-64 (SSE2 kernels only)."
  echo
  echo "| rank | command | native elapsed | portable elapsed | portable / native | native CPU | portable CPU | portable / native (CPU) | baseline x86-64 CPU | baseline / native (CPU) |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
} > "$out"
for r in $ranks; do
  in=$work/flux-r$r.safetensors
  foreign=$work/flux-r$r-foreign.safetensors
  build-portable/lora-verify sample "$in" --rank "$r" --dtype BF16 --seed "$r" --alpha "$(awk -v r="$r" 'BEGIN { print 0.73 * r }')" >/dev/null
  build-portable/bench/lv_foreign "$in" "$foreign"
  cat "$in" "$foreign" >/dev/null
  for c in "verify|$in" "convert|convert $in -o $work/out.safetensors" "compare foreign|compare $in $foreign"; do
    name=${c%%|*}
    read -r -a args <<<"${c#*|}"
    declare -A el=() cpu=()
    for _ in $(seq "$runs"); do
      for config in "${configs[@]}"; do
        read -r e u < <(run "$config" "${args[@]}")
        el[$config]+="$e "
        cpu[$config]+="$u "
      done
    done
    m() { tr ' ' '\n' <<<"$1" | grep . | median; }
    ne=$(m "${el[native]}") pe=$(m "${el[portable]}") nc=$(m "${cpu[native]}") pc=$(m "${cpu[portable]}") bc=$(m "${cpu[baseline]}")
    ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
    echo "| $r | $name | ${ne} s | ${pe} s | $(ratio "$pe" "$ne") | ${nc} s | ${pc} s | $(ratio "$pc" "$nc") | ${bc} s | $(ratio "$bc" "$nc") |" >> "$out"
    unset el cpu
  done
  rm -f "$in" "$foreign" "$work/out.safetensors"
done
cat "$out"
