#!/usr/bin/env python3
"""InvokeAI adapter for `lora-verify matrix --converter` (protocol: README.md here).

Written against InvokeAI commit 8e71a8a5 (the version profiled in docs/loaders.md), using its
public conversion functions in invokeai.backend.patches.lora_conversions: the FLUX format
detectors `is_state_dict_likely_in_flux_*_format` and `lora_model_from_flux_*_state_dict`,
which return a ModelPatchRaw whose `layers` map "lora_transformer-<BFL name>" to patches.
Not run by this repository's CI (no InvokeAI or torch there).

usage: python3 invokeai_adapter.py IN OUT
"""
import os
import sys

from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _lora_file import BflLora, ExpressError, fail  # noqa: E402


def load_patches(state_dict):
    from invokeai.backend.patches.lora_conversions import flux_aitoolkit_lora_conversion_utils as aitoolkit
    from invokeai.backend.patches.lora_conversions import flux_diffusers_lora_conversion_utils as diffusers
    from invokeai.backend.patches.lora_conversions import flux_kohya_lora_conversion_utils as kohya
    from invokeai.backend.patches.lora_conversions import flux_onetrainer_lora_conversion_utils as onetrainer

    # The order of InvokeAI's FLUX LoRA loader (model_loaders/lora.py) at 8e71a8a5.
    chain = [
        (diffusers.is_state_dict_likely_in_flux_diffusers_format,
         lambda sd: diffusers.lora_model_from_flux_diffusers_state_dict(sd, alpha=None)),
        (kohya.is_state_dict_likely_in_flux_kohya_format, kohya.lora_model_from_flux_kohya_state_dict),
        (onetrainer.is_state_dict_likely_in_flux_onetrainer_format, onetrainer.lora_model_from_flux_onetrainer_state_dict),
        (aitoolkit.is_state_dict_likely_in_flux_aitoolkit_format, aitoolkit.lora_model_from_flux_aitoolkit_state_dict),
    ]
    for detect, load in chain:
        if detect(state_dict):
            return load(state_dict)
    raise ValueError("LoRA model is in unsupported FLUX format")


def add_layer(out, target, layer, begin=0, end=None):
    from invokeai.backend.patches.layers.lora_layer import LoRALayer

    if not isinstance(layer, LoRALayer) or getattr(layer, "mid", None) is not None:
        raise ExpressError(f"{target}: {type(layer).__name__} is not a plain LoRA layer")
    rank = layer.down.shape[0]
    scale = layer.alpha / rank if getattr(layer, "alpha", None) else 1.0
    out.add(target, layer.up, layer.down, scale, begin, end)
    bias = getattr(layer, "bias", None)
    if bias is not None:
        out.add_bias(target, bias.to_dense() if bias.is_sparse else bias, begin)


def main(src, dst):
    from invokeai.backend.patches.layers.merged_layer_patch import MergedLayerPatch

    model = load_patches(load_file(src))  # an exception here is InvokeAI rejecting the file
    out = BflLora()
    for key, patch in model.layers.items():
        prefix, _, target = key.partition("-")
        if prefix != "lora_transformer":
            continue  # text-encoder patches are outside the transformer
        if isinstance(patch, MergedLayerPatch):
            for layer, rng in zip(patch.lora_layers, patch.ranges):
                add_layer(out, target, layer, rng.start, rng.end)
        else:
            add_layer(out, target, patch)
    out.write(dst)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        fail(__doc__, 64)
    try:
        main(sys.argv[1], sys.argv[2])
    except ExpressError as e:
        fail(f"ExpressError: {e}")
