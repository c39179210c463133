#!/usr/bin/env python3
"""diffusers adapter for `lora-verify matrix --converter` (protocol: README.md here).

Written against diffusers commit 58eb52c0 (the version profiled in docs/loaders.md), using
the public `FluxLoraLoaderMixin.lora_state_dict` (through FluxPipeline), which converts any
supported FLUX LoRA to diffusers/PEFT names. `load_lora_adapter` then keeps only the keys
under `transformer.`; so does this adapter. The result is written in diffusers names, with
the alphas diffusers would use as `.alpha` tensors. Not run by this repository's CI (no
diffusers or torch there).

usage: python3 diffusers_adapter.py IN OUT
"""
import sys

import torch
from safetensors.torch import save_file


def main(src, dst):
    from diffusers import FluxPipeline

    result = FluxPipeline.lora_state_dict(src, return_alphas=True)  # raises where diffusers rejects
    state_dict, alphas = result[0], result[1]
    out = {k: v.detach().contiguous() for k, v in state_dict.items() if k.startswith("transformer.")}
    for key, alpha in (alphas or {}).items():
        name = key if key.endswith(".alpha") else key + ".alpha"
        if not name.startswith("transformer."):
            continue
        out[name] = torch.tensor(float(alpha))
    if not out:
        sys.stderr.write("No LoRA keys associated to FluxTransformer2DModel found with the prefix='transformer'\n")
        sys.exit(4)
    save_file(out, dst)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__)
        sys.exit(64)
    main(sys.argv[1], sys.argv[2])
