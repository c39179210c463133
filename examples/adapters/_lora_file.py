"""Shared by the adapters: collect the patches an app would apply to FLUX.1 and write them
as a BFL-named LoRA file that `lora-verify compare` reads (see README.md, the protocol).

Written for lora-verify's adapter protocol; needs torch and safetensors (the apps have both).
"""
import sys

import torch
from safetensors.torch import save_file


class ExpressError(Exception):
    """A patch the protocol cannot express (dense, LoKr, LoHa, DoRA, a conv mid)."""


def fail(message, code=3):
    sys.stderr.write(message.rstrip("\n") + "\n")
    sys.exit(code)


def fused_rows(target, cols):
    """Rows of a FLUX.1 BFL target whose patches may cover only some rows."""
    if target.endswith(".qkv"):
        return 3 * cols  # q, k, v of width hidden = cols
    if target.endswith(".linear1"):
        return 7 * cols  # q, k, v and the 4·hidden MLP input
    return None


class BflLora:
    """Low-rank patches per BFL target: delta rows [begin, end) += up @ down (scale folded)."""

    def __init__(self):
        self.parts = {}   # target -> [(begin, end, up, down)]
        self.rows = {}    # target -> total rows, when known
        self.biases = {}  # target -> (begin, end, bias delta)

    def add(self, target, up, down, scale=1.0, begin=0, end=None, total_rows=None, row_fn=None):
        up = up.detach().to(torch.float32).reshape(up.shape[0], -1)
        down = down.detach().to(torch.float32).reshape(down.shape[0], -1)
        if up.shape[1] != down.shape[0]:
            raise ExpressError(f"{target}: up {tuple(up.shape)} and down {tuple(down.shape)} ranks differ")
        up = up * float(scale)
        if row_fn is not None:
            up = row_fn(up)  # a row permutation the app applies to the delta (e.g. a half swap)
        end = begin + up.shape[0] if end is None else end
        if end - begin != up.shape[0]:
            raise ExpressError(f"{target}: rows [{begin}, {end}) but up has {up.shape[0]} rows")
        self.parts.setdefault(target, []).append((begin, end, up, down))
        if total_rows:
            self.rows[target] = max(self.rows.get(target, 0), int(total_rows))

    def add_bias(self, target, bias, begin=0):
        bias = bias.detach().to(torch.float32).reshape(-1)
        self.biases[target] = (begin, begin + bias.shape[0], bias)

    def write(self, path):
        out = {}
        for target, parts in sorted(self.parts.items()):
            cols = parts[0][3].shape[1]
            rows = self.rows.get(target) or fused_rows(target, cols) or max(p[1] for p in parts)
            rank = sum(p[3].shape[0] for p in parts)
            a = torch.cat([p[3] for p in parts], 0)
            b = torch.zeros(rows, rank)
            col = 0
            for begin, end, up, down in parts:
                b[begin:end, col:col + down.shape[0]] = up
                col += down.shape[0]
            out[target + ".lora_A.weight"] = a.contiguous()
            out[target + ".lora_B.weight"] = b.contiguous()
        for target, (begin, end, bias) in sorted(self.biases.items()):
            if target + ".lora_B.weight" not in out:
                raise ExpressError(f"{target}: a bias delta without a weight delta")
            full = torch.zeros(out[target + ".lora_B.weight"].shape[0])
            full[begin:end] = bias
            out[target + ".lora_B.bias"] = full
        if not out:
            fail("the app applies no patch to the FLUX transformer from this file", 4)
        save_file(out, path)
