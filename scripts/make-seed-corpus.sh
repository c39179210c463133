#!/usr/bin/env bash
# Regenerates the seed corpora in corpus/: tiny generated LoRAs of every dialect, and
# hand-made malformed containers for each rule of docs/safetensors.md. Needs build/lora-verify.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./build/lora-verify
[ -x "$bin" ] || bash scripts/build.sh
mkdir -p corpus/fuzz_safetensors corpus/fuzz_pipeline corpus/fuzz_header_json corpus/fuzz_keyset
i=0
for d in diffusers diffusers-old fal onetrainer kohya comfy ai-toolkit bfl onetrainer-bfl xlabs; do
  # The second seed adds what the dialect can hold (sample refuses the rest).
  case $d in
    diffusers|fal|onetrainer) more="--no-proj-mlp --bias --alpha 3" ;;
    kohya|comfy|ai-toolkit|bfl) more="--bias --alpha 3" ;;
    diffusers-old) more="--no-proj-mlp" ;;
    onetrainer-bfl) more="--no-proj-mlp --alpha 3" ;;
    *) more="" ;;
  esac
  for extra in "" "$more"; do
    i=$((i + 1))
    # shellcheck disable=SC2086
    "$bin" sample "corpus/fuzz_pipeline/seed-$d-$i.safetensors" --tiny --rank 1 --dtype F16 --seed $i --dialect "$d" $extra >/dev/null
  done
done
# FLUX.2 (tiny layout of the FLUX.2 tables) in every dialect it is written in.
for d in diffusers fal kohya comfy ai-toolkit bfl; do
  i=$((i + 1))
  "$bin" sample "corpus/fuzz_pipeline/seed-flux2-$d-$i.safetensors" --model flux2-tiny --rank 1 --dtype F16 --seed $i \
    --dialect "$d" >/dev/null
done
python3 - <<'PY'
import json, os, struct
out_st = "corpus/fuzz_safetensors"
out_h = "corpus/fuzz_header_json"
def st(header, data=b"", n=None, pad=True):
    h = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h) if n is None else n) + h + data
ok = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
cases = {
    "valid-one-tensor": st(ok, b"\0" * 8),
    "valid-metadata": st({"__metadata__": {"k": "v"}, **ok}, b"\0" * 8),
    "valid-scalar-and-empty": st({"s": {"dtype": "BF16", "shape": [], "data_offsets": [0, 2]},
                                  "z": {"dtype": "F32", "shape": [0, 3], "data_offsets": [2, 2]}}, b"\0\0"),
    "bad-header-length-wraps": st(ok, b"\0" * 8, n=2**64 - 1),
    "bad-header-over-limit": st(ok, b"\0" * 8, n=100_000_001),
    "bad-shape-product-wraps": st({"a": {"dtype": "F32", "shape": [2**32, 2**32], "data_offsets": [0, 0]}}),
    "bad-big-tensor-tiny-data": st({"a": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 4]}}, b"\0" * 4),
    "bad-gap": st({"a": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}}, b"\0\0"),
    "bad-overlap": st({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
                       "b": {"dtype": "U8", "shape": [2], "data_offsets": [1, 3]}}, b"\0" * 3),
    "bad-alias": st({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
                     "b": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}, b"\0" * 2),
    "bad-end-before-begin": st({"a": {"dtype": "U8", "shape": [0], "data_offsets": [4, 0]}}),
    "bad-trailing": st(ok, b"\0" * 9),
    "bad-truncated": st(ok, b"\0" * 7),
    "bad-bom": st(b"\xef\xbb\xbf" + json.dumps(ok).encode(), b"\0" * 8),
    "bad-nul": st(json.dumps(ok).encode() + b"\0", b"\0" * 8, pad=False),
    "bad-nul-padded": st(json.dumps(ok).encode() + b"\0" * 7, b"\0" * 8, pad=False),
    "bad-deep": st(b'{"a":' + b"[" * 200 + b"]" * 200 + b"}"),
    "bad-duplicate": st(b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', b"\0"),
    "bad-negative": st(b'{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}', b"\0"),
    "bad-fraction": st(b'{"a":{"dtype":"U8","shape":[1.0],"data_offsets":[0,1]}}', b"\0"),
    "bad-exponent": st(b'{"a":{"dtype":"U8","shape":[1e0],"data_offsets":[0,1]}}', b"\0"),
    "bad-too-big": st(b'{"a":{"dtype":"U8","shape":[18446744073709551616],"data_offsets":[0,1]}}', b"\0"),
    "bad-unknown-dtype": st({"a": {"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4),
    "bad-missing-field": st({"a": {"dtype": "F32", "shape": [1]}}, b"\0" * 4),
    "bad-three-offsets": st({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 4]}}, b"\0" * 4),
    "bad-metadata-tensor": st({"__metadata__": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4),
    "bad-metadata-number": st({"__metadata__": {"k": 1}}),
    "bad-overlong-utf8": st(b'{"\xc0\xaf":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', b"\0"),
    "bad-surrogate": st(b'{"\xed\xa0\x80":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', b"\0"),
    "bad-f4-odd-bits": st({"a": {"dtype": "F4", "shape": [3], "data_offsets": [0, 1]}}, b"\0"),
    "path-like-name": st({"../../x": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}, b"\0"),
    "short": b"\x01\x00",
}
for name, data in cases.items():
    with open(os.path.join(out_st, name), "wb") as f:
        f.write(data)
    with open(os.path.join(out_h, name), "wb") as f:
        f.write(data[8:8 + max(0, min(len(data) - 8, 4096))])
PY
# Keyset seeds: a few byte patterns (the harness consumes them as choices).
for n in 1 2 3 4 5 6 7 8; do
  head -c $((64 * n)) /dev/urandom > "corpus/fuzz_keyset/seed-$n"
done
cp corpus/fuzz_pipeline/seed-diffusers-1.safetensors corpus/fuzz_pipeline/seed-kohya-9.safetensors corpus/fuzz_safetensors/
echo "seed corpus: $(find corpus -type f | wc -l) files, $(du -sh corpus | cut -f1)"
