#!/usr/bin/env bash
# End-to-end benchmark: full-size FLUX.1 diffusers LoRAs (all 504 modules, BF16) at the
# given ranks; times convert, verify (convert + check), compare against our conversion
# (bit-exact: the byte shortcut), compare against another tool's conversion (F32, scales
# folded into the ups: the numerical path on every module), and as physical references
# `cp` and `cat > /dev/null` of the same input, `cp` of both files of the foreign compare
# and a fsynced write of the output's size, in the same run; median of RUNS runs; peak
# RSS from /usr/bin/time -v (which counts the pages of the memory-mapped input and output)
# and peak anonymous memory sampled from /proc. Then the real kohya rank-128 key set with
# both text encoders (../shared/fixtures, built with seeded values; converted to diffusers
# with folded scales: the numerical path) against `cp` of it. Large files go to $WORK
# (default /tmp/lv-bench-e2e) and are deleted. Writes a Markdown table to bench/results.md.
#   RANKS="16 64" RUNS=5 bash scripts/bench.sh      (--quick: rank 16, 3 runs, no fixture)
set -euo pipefail
cd "$(dirname "$0")/.."
ranks=${RANKS:-"16 64"}
runs=${RUNS:-5}
fixture=${FIXTURE:-flux_lora_kohya_with_te1_and_te3_format}
if [ "${1:-}" = "--quick" ]; then ranks=16; runs=3; fixture=; fi
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }
bash scripts/install-deps.sh >/dev/null
# Only what is timed: the CLI and the two bench tools that write inputs.
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLV_BUILD_BENCHMARKS=ON >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" --target lora-verify lv_foreign lv_fixture >/dev/null
bin=$PWD/build/lora-verify
work=${WORK:-/tmp/lv-bench-e2e}
mkdir -p "$work"

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
# seconds and peak RSS (MB) of one command
measure() {
  /usr/bin/time -f "%e %M" -o "$work/time.txt" "$@" >/dev/null 2>&1 || true
  cat "$work/time.txt"
}
bench() {  # name, command...: prints "median_s max_rss_mb"
  local t=() m=0
  for _ in $(seq "$runs"); do
    sync
    read -r s kb < <(measure "$@")
    t+=("$s")
    [ "$kb" -gt "$m" ] && m=$kb
  done
  printf '%s %s\n' "$(printf '%s\n' "${t[@]}" | median)" "$((m / 1024))"
}

# Peak anonymous memory (RssAnon: what the process holds itself, without the pages of
# memory-mapped files, which the kernel can drop and re-read), sampled every 10 ms.
peak_anon() {
  "$@" >/dev/null 2>&1 &
  local pid=$! m=0 v
  while kill -0 "$pid" 2>/dev/null; do
    v=$(awk '/^RssAnon/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    if [ -n "$v" ] && [ "$v" -gt "$m" ]; then m=$v; fi
    sleep 0.01
  done
  wait "$pid" || true
  echo $((m / 1024))
}

out=bench/results.md
{
  echo "# End-to-end benchmark results"
  echo
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $(date -u +%Y-%m-%d); median of $runs runs (page cache warm)."
  echo
  echo "| rank | input | output | cat | cp | write output size | convert | convert / cp | verify (convert+check) | compare | peak RSS convert | peak RSS verify | peak anon. convert | peak anon. verify | foreign F32 | cp in + foreign | compare foreign | compare foreign / cp | peak RSS compare foreign |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
} > "$out"
for r in $ranks; do
  in=$work/flux-r$r.safetensors
  conv=$work/flux-r$r-kohya.safetensors
  foreign=$work/flux-r$r-foreign.safetensors
  # alpha 0.73·r: a scale no binary float holds exactly, so the foreign F32 ups are new values.
  "$bin" sample "$in" --rank "$r" --dtype BF16 --seed "$r" --alpha "$(awk -v r="$r" 'BEGIN { print 0.73 * r }')" >/dev/null
  build/bench/lv_foreign "$in" "$foreign"
  cat "$in" > /dev/null
  read -r t_cat _ < <(bench bash -c "cat '$in' > /dev/null")
  read -r t_cp _ < <(bench cp "$in" "$work/copy.safetensors")
  read -r t_conv m_conv < <(bench "$bin" convert "$in" -o "$conv")
  read -r t_ver m_ver < <(bench "$bin" "$in")
  read -r t_cmp _ < <(bench "$bin" compare "$in" "$conv")
  read -r t_cp2 _ < <(bench bash -c "cp '$in' '$work/copy.safetensors' && cp '$foreign' '$work/copy2.safetensors'")
  read -r t_fcmp m_fcmp < <(bench "$bin" compare "$in" "$foreign")
  f_mb=$(( $(stat -c %s "$foreign") / 1048576 ))
  in_mb=$(( $(stat -c %s "$in") / 1048576 ))
  out_mb=$(( $(stat -c %s "$conv") / 1048576 ))
  # The physical floor of writing the output durably: as many bytes as convert writes,
  # through the page cache, fsynced (convert fsyncs too).
  read -r t_dd _ < <(bench dd if=/dev/zero of="$work/dd.bin" bs=1M count="$out_mb" conv=fsync)
  rm -f "$work/dd.bin"
  a_conv=$(peak_anon "$bin" convert "$in" -o "$conv")
  a_ver=$(peak_anon "$bin" "$in")
  ratio=$(awk -v a="$t_conv" -v b="$t_cp" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
  fratio=$(awk -v a="$t_fcmp" -v b="$t_cp2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
  echo "| $r | ${in_mb} MB | ${out_mb} MB | ${t_cat} s | ${t_cp} s | ${t_dd} s | ${t_conv} s | ${ratio}x | ${t_ver} s | ${t_cmp} s | ${m_conv} MB | ${m_ver} MB | ${a_conv} MB | ${a_ver} MB | ${f_mb} MB | ${t_cp2} s | ${t_fcmp} s | ${fratio}x | ${m_fcmp} MB |" >> "$out"
  rm -f "$in" "$conv" "$foreign" "$work/copy.safetensors" "$work/copy2.safetensors"
done
if [ -n "$fixture" ] && [ -f "../shared/fixtures/$fixture.json" ]; then
  fx=$work/$fixture.safetensors
  build/bench/lv_fixture "$fixture" "$fx"
  cat "$fx" > /dev/null
  read -r t_fcp _ < <(bench cp "$fx" "$work/copy.safetensors")
  read -r t_fver m_fver < <(bench "$bin" "$fx")
  a_fver=$(peak_anon "$bin" "$fx")
  fx_mb=$(( $(stat -c %s "$fx") / 1048576 ))
  {
    echo
    echo "| key set (seeded values) | input | cp | lora-verify IN | / cp | peak RSS | peak RSS − input | peak anon. |"
    echo "|---|---|---|---|---|---|---|---|"
    echo "| $fixture | ${fx_mb} MB | ${t_fcp} s | ${t_fver} s | $(awk -v a="$t_fver" -v b="$t_fcp" 'BEGIN { printf "%.1f", a / b }')x | ${m_fver} MB | $((m_fver - fx_mb)) MB | ${a_fver} MB |"
  } >> "$out"
  rm -f "$fx" "$work/copy.safetensors"
fi
cat "$out"
