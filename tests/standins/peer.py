#!/usr/bin/env python3
"""Stand-ins for peer LoRA converters, for `lora-verify matrix --converter` tests.

Each mode reproduces one failure catalogued in docs/formats.md#flux1-peer-failures (written
from that description, not from any peer's code). Standard library only: safetensors
files are read and written by hand with struct and json.

usage: peer.py MODE IN OUT

modes:
  assert-partial   a block with some of its fused parts missing raises AssertionError
                   (the InvokeAI 5.1.1 single-block crash); other files convert correctly
  identity-fill    converts, then fills the rows of every missing part of a fused target
                   with eye(rows, rank) instead of zeros
  no-norm-out-swap converts, then undoes the row-half swap of final_layer.adaLN_modulation.1
  drop-top-level   converts, then drops every module outside the double and single blocks
  hang             never finishes
  no-output        exits 0 without writing OUT
  garbage          writes bytes that are not a safetensors file

The converting modes run `lora-verify convert IN -o TMP --to bfl --style peft` (the
lora-verify on PATH, or $LORA_VERIFY) and damage its output, so every difference from a
correct conversion is the catalogued bug alone.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile
import time

DTYPE_SIZE = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8}
ONE = {"F32": struct.pack("<f", 1.0), "F16": b"\x00\x3c", "BF16": b"\x80\x3f", "F64": struct.pack("<d", 1.0)}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", None)
    body = data[8 + n:]
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        tensors[name] = {"dtype": info["dtype"], "shape": info["shape"], "data": bytearray(body[begin:end])}
    return tensors, meta


def write_safetensors(path, tensors, meta):
    header = {}
    if meta is not None:
        header["__metadata__"] = meta
    offset = 0
    for name in sorted(tensors):
        t = tensors[name]
        header[name] = {"dtype": t["dtype"], "shape": t["shape"], "data_offsets": [offset, offset + len(t["data"])]}
        offset += len(t["data"])
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name in sorted(tensors):
            f.write(tensors[name]["data"])


def convert(src, dst):
    exe = os.environ.get("LORA_VERIFY", "lora-verify")
    r = subprocess.run([exe, "convert", src, "-o", dst, "--to", "bfl", "--style", "peft"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    if r.returncode != 0:
        sys.exit(r.returncode)


def module_of(name):
    # "diffusion_model.single_blocks.0.linear1.lora_B.weight" -> "single_blocks.0.linear1"
    n = name[len("diffusion_model."):] if name.startswith("diffusion_model.") else name
    for suffix in (".lora_A.weight", ".lora_B.weight", ".lora_B.bias", ".lora_magnitude_vector", ".alpha"):
        if n.endswith(suffix):
            return n[: -len(suffix)], suffix
    return n, ""


def part_rows(module, rows):
    """Row ranges of the parts of a fused BFL target (q, k, v[, mlp]), or None."""
    if module.endswith(".qkv"):
        h = rows // 3
        return [(0, h), (h, 2 * h), (2 * h, 3 * h)]
    if module.endswith(".linear1"):
        h = rows // 7
        return [(0, h), (h, 2 * h), (2 * h, 3 * h), (3 * h, 7 * h)]
    return None


def identity_fill(tensors):
    for name, t in tensors.items():
        module, suffix = module_of(name)
        if suffix != ".lora_B.weight" or len(t["shape"]) != 2:
            continue
        rows, rank = t["shape"]
        ranges = part_rows(module, rows)
        if not ranges:
            continue
        size = DTYPE_SIZE[t["dtype"]]
        row_bytes = rank * size
        for begin, end in ranges:
            chunk = t["data"][begin * row_bytes:end * row_bytes]
            if any(chunk):
                continue  # the part is present
            for i in range(begin, end):  # eye(end - begin, rank)
                j = i - begin
                if j < rank:
                    at = i * row_bytes + j * size
                    t["data"][at:at + size] = ONE[t["dtype"]]


def no_norm_out_swap(tensors):
    for name, t in tensors.items():
        module, suffix = module_of(name)
        if module != "final_layer.adaLN_modulation.1" or suffix not in (".lora_B.weight", ".lora_B.bias"):
            continue
        half = len(t["data"]) // 2
        t["data"] = t["data"][half:] + t["data"][:half]


def drop_top_level(tensors):
    for name in list(tensors):
        module, _ = module_of(name)
        if not (module.startswith("double_blocks.") or module.startswith("single_blocks.")):
            del tensors[name]


def partial_blocks(src):
    """Blocks of a diffusers-named file with some, not all, parts of a fused target."""
    tensors, _ = read_safetensors(src)
    groups = {}
    for name in tensors:
        n = name[len("transformer."):] if name.startswith("transformer.") else name
        for block, parts in (("single_transformer_blocks.", ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp")),
                             ("transformer_blocks.", ("attn.to_q", "attn.to_k", "attn.to_v")),
                             ("transformer_blocks.", ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"))):
            if not n.startswith(block):
                continue
            index = n[len(block):].split(".", 1)[0]
            rest = n[len(block) + len(index) + 1:]
            for p in parts:
                if rest.startswith(p + "."):
                    groups.setdefault((block + index, parts), set()).add(p)
    return sorted((key[0], [p in present for p in key[1]]) for key, present in groups.items())


def main():
    if len(sys.argv) != 4:
        sys.stderr.write(__doc__)
        return 64
    mode, src, dst = sys.argv[1:]
    if mode == "hang":
        while True:
            time.sleep(60)
    if mode == "no-output":
        return 0
    if mode == "garbage":
        with open(dst, "wb") as f:
            f.write(b"this is not a safetensors file\n" * 64)
        return 0
    if mode == "assert-partial":
        for block, keys_present in partial_blocks(src):
            assert all(keys_present) or not any(keys_present), "partial block " + block
        convert(src, dst)
        return 0
    damage = {"identity-fill": identity_fill, "no-norm-out-swap": no_norm_out_swap, "drop-top-level": drop_top_level}.get(mode)
    if damage is None:
        sys.stderr.write("peer.py: unknown mode " + mode + "\n")
        return 64
    with tempfile.TemporaryDirectory() as tmp:
        mid = os.path.join(tmp, "converted.safetensors")
        convert(src, mid)
        tensors, meta = read_safetensors(mid)
    damage(tensors)
    write_safetensors(dst, tensors, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
