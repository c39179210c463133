#!/usr/bin/env bash
# The main job on a bundled default: install what is missing, build, generate a sample
# FLUX.1 diffusers LoRA (seeded; single blocks without proj_mlp, the classic crash case)
# and run lora-verify on it, printing its equivalence report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# Only the CLI: the tests, fuzz replays and benchmarks are scripts/test.sh's business.
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" --target lora-verify
mkdir -p build/sample
sample=build/sample/sample-flux-lora.safetensors
./build/lora-verify sample "$sample" --rank 8 --dtype BF16 --seed 7 --no-proj-mlp
./build/lora-verify "$sample" --json build/sample/report.json --markdown build/sample/report.md
