#!/usr/bin/env bash
# Long fuzzing runs by CPU time: builds the libFuzzer harnesses (clang 14, ASan + UBSan) as
# fuzz-smoke.sh does, then fuzzes each named harness (default: all four) until it has used
# FUZZ_CPU_SECONDS of CPU (default 3600), at most `nproc` at once, at low priority so the
# machine stays usable. Prints per harness: CPU seconds, executions, coverage, features,
# corpus size; fails on any crash, leak, timeout or OOM (the input is in build-fuzz/).
# New inputs go to build-fuzz/corpus-<area>; the committed corpus is only read.
set -euo pipefail
cd "$(dirname "$0")/.."
budget=${FUZZ_CPU_SECONDS:-3600}
areas=("$@")
[ ${#areas[@]} -gt 0 ] || areas=(safetensors header_json pipeline keyset)
CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLV_FUZZ=ON \
  -DLV_BUILD_TESTS=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc 2>/dev/null || echo 2)" --target "${areas[@]/#/fuzz_}" >/dev/null

cpu_of() {  # CPU seconds (user + system) used by a process so far
  awk -v hz="$(getconf CLK_TCK)" '{ print int(($14 + $15) / hz) }' "/proc/$1/stat" 2>/dev/null || echo 0
}

run_one() {
  local area=$1 log=build-fuzz/fuzz_$area.cpu.log
  local opts=(-rss_limit_mb=2048 -timeout=20 -max_len=65536 -artifact_prefix=build-fuzz/ -print_final_stats=1)
  [ -f "fuzz/fuzz_$area.dict" ] && opts+=("-dict=fuzz/fuzz_$area.dict")
  mkdir -p "build-fuzz/corpus-$area"
  nice -n 10 "build-fuzz/fuzz/fuzz_$area" "${opts[@]}" "build-fuzz/corpus-$area" "corpus/fuzz_$area" >"$log" 2>&1 &
  local pid=$! used=0
  while kill -0 "$pid" 2>/dev/null; do
    used=$(cpu_of "$pid")
    if [ "$used" -ge "$budget" ]; then kill -INT "$pid"; break; fi
    sleep 10
  done
  local rc=0
  wait "$pid" || rc=$?
  local last
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  if grep -qE 'ERROR: (AddressSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|runtime error:|==ERROR' "$log"; then
    echo "fuzz_$area: FAILED after ${used} CPU s (see $log)"; tail -30 "$log"; return 1
  fi
  [ "$rc" -eq 0 ] || [ "$rc" -eq 130 ] || [ "$rc" -eq 72 ] || { echo "fuzz_$area: exit $rc (see $log)"; return 1; }
  echo "fuzz_$area: ok, ${used} CPU s; last status: $last"
}

status=0
pids=()
for area in "${areas[@]}"; do
  run_one "$area" &
  pids+=($!)
  while [ "$(jobs -rp | wc -l)" -ge "$(nproc 2>/dev/null || echo 2)" ]; do sleep 5; done
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
exit $status
