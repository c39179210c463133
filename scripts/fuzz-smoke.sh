#!/usr/bin/env bash
# Builds the libFuzzer harnesses with clang 14 (ASan + UBSan) and fuzzes each one for a
# bounded time (FUZZ_SECONDS, default 60). Fails on any crash, leak, timeout or OOM.
# New inputs go to a scratch corpus; the committed corpus is read-only seed material.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
bash scripts/install-deps.sh
CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLV_FUZZ=ON \
  -DLV_BUILD_TESTS=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc 2>/dev/null || echo 2)" --target fuzz_safetensors fuzz_header_json fuzz_pipeline fuzz_keyset
status=0
for area in safetensors header_json pipeline keyset; do
  fuzzer=build-fuzz/fuzz/fuzz_$area
  scratch=build-fuzz/corpus-$area
  mkdir -p "$scratch"
  opts=()
  [ -f "fuzz/fuzz_$area.dict" ] && opts+=("-dict=fuzz/fuzz_$area.dict")
  log=build-fuzz/fuzz_$area.log
  if "$fuzzer" "${opts[@]}" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 -max_len=65536 \
      -artifact_prefix=build-fuzz/ -print_final_stats=1 "$scratch" "corpus/fuzz_$area" >"$log" 2>&1; then
    execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
    echo "fuzz_$area: ok, ${execs:-?} executions in ${seconds}s ($(( ${execs:-0} / seconds )) exec/s)"
  else
    echo "fuzz_$area: FAILED (see $log)"
    tail -40 "$log"
    status=1
  fi
done
exit $status
