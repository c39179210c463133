#!/usr/bin/env bash
# Line coverage of src/ reached by replaying the committed fuzz corpora (clang source-based
# coverage): builds the replay harnesses instrumented, runs every corpus file once, and
# prints llvm-cov's summary for src/. Output: build-cov/coverage.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh >/dev/null
CC=clang-14 CXX=clang++-14 cmake -S . -B build-cov -DCMAKE_BUILD_TYPE=Debug -DLV_BUILD_TESTS=OFF \
  -DCMAKE_CXX_FLAGS="-fprofile-instr-generate -fcoverage-mapping -O1" >/dev/null
cmake --build build-cov -j"$(nproc 2>/dev/null || echo 2)" --target fuzz_safetensors fuzz_header_json fuzz_pipeline fuzz_keyset >/dev/null
rm -f build-cov/*.profraw
objects=()
for area in safetensors header_json pipeline keyset; do
  LLVM_PROFILE_FILE="build-cov/$area.profraw" "build-cov/fuzz/fuzz_$area" "corpus/fuzz_$area" >/dev/null 2>&1
  objects+=(-object "build-cov/fuzz/fuzz_$area")
done
llvm-profdata-14 merge -sparse build-cov/*.profraw -o build-cov/all.profdata
llvm-cov-14 report -instr-profile=build-cov/all.profdata "${objects[@]:1}" "$PWD/src" | tee build-cov/coverage.txt | tail -1
