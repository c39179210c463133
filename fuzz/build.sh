#!/usr/bin/env bash
# OSS-Fuzz / ClusterFuzzLite style build: uses $CXX, $CXXFLAGS, $LIB_FUZZING_ENGINE and
# writes fuzz_<area> binaries with their .dict and .options files (and seed corpora as
# fuzz_<area>_seed_corpus.zip when zip exists) to $OUT.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
: "${CXX:=clang++}" "${CXXFLAGS:=-fsanitize=address,undefined -fsanitize=fuzzer-no-link}" "${OUT:=$src/build-ossfuzz}"
: "${LIB_FUZZING_ENGINE:=-fsanitize=fuzzer}"
mkdir -p "$OUT/obj"
flags=(-std=c++20 -DLV_FUZZING=1 -DLV_VERSION=\"fuzz\" -I"$src/src" -I/usr/include/eigen3)
objs=()
for f in "$src"/src/{safetensors,flux,lora,verify,report}/*.cpp; do
  o="$OUT/obj/$(basename "$(dirname "$f")")_$(basename "$f" .cpp).o"
  # shellcheck disable=SC2086
  $CXX $CXXFLAGS "${flags[@]}" -c "$f" -o "$o"
  objs+=("$o")
done
for h in "$src"/fuzz/fuzz_*.cpp; do
  name=$(basename "$h" .cpp)
  # shellcheck disable=SC2086
  $CXX $CXXFLAGS "${flags[@]}" "$h" "${objs[@]}" $LIB_FUZZING_ENGINE -lpthread -o "$OUT/$name"
  cp "$src/fuzz/$name.dict" "$src/fuzz/$name.options" "$OUT/" 2>/dev/null || true
  if command -v zip >/dev/null && [ -d "$src/corpus/$name" ]; then
    (cd "$src/corpus/$name" && zip -qr "$OUT/${name}_seed_corpus.zip" .)
  fi
done
echo "built $(ls "$OUT"/fuzz_* | grep -vc '\.') fuzzers into $OUT"
