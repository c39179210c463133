#!/usr/bin/env python3
"""diffusers adapter for `lora-verify matrix --converter` (protocol: README.md here).

Runs diffusers' own code on IN, as tools/loader-lab measures it:
FluxLoraLoaderMixin.load_lora_weights (lora_state_dict with its converters and the file's
metadata, the `transformer.` filter, load_lora_into_transformer, PeftAdapterMixin.load_lora_adapter
and the LoraConfig its _create_lora_config builds: metadata alpha, rsLoRA, rank and alpha
patterns) into a stand-in with FluxTransformer2DModel's module names. PEFT itself is the lab's
emulation (Debian has no peft; see tools/loader-lab/lab/apps/diffusers.py): a key that names no
module of the transformer is not applied. What it applies is written under diffusers names,
scale folded into lora_B.

usage: LV_DIFFUSERS=/path/to/diffusers python3 diffusers_adapter.py IN OUT
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _lora_file import run, setup  # noqa: E402


def main(runner, src, dst):
    import torch
    from safetensors.torch import save_file

    class Transformer(runner.transformer_class()):
        def add_lora(self, module, down, up, scaling, bias):
            self.applied[module] = (down, up, scaling, bias)

    transformer = Transformer()
    runner.load(src, transformer)  # raises where diffusers rejects the file
    out = {}
    for module, (down, up, scaling, bias) in sorted(transformer.applied.items()):
        name = "transformer." + module
        out[name + ".lora_A.weight"] = down.detach().to(torch.float32).contiguous()
        out[name + ".lora_B.weight"] = (up.detach().double() * scaling).to(torch.float32).contiguous()
        if bias is not None:  # PEFT's lora_B.bias, scaled like the weight
            out[name + ".lora_B.bias"] = (bias.detach().double() * scaling).to(torch.float32).contiguous()
    save_file(out, dst)


if __name__ == "__main__":
    run(main, *setup("diffusers", "LV_DIFFUSERS", __doc__))
