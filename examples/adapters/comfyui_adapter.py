#!/usr/bin/env python3
"""ComfyUI adapter for `lora-verify matrix --converter` (protocol: README.md here).

Runs ComfyUI's own code on IN, as tools/loader-lab measures it: the FLUX.1 model is the lab's
stand-in module tree (real shapes, no weights) that ComfyUI's model_config_from_unet detects as
FLUX.1, and comfy.sd.load_lora_for_models (its key maps, comfy.lora_convert.convert_lora,
comfy.lora.load_lora, ModelPatcher.add_patches) builds the patches. Each patch the model holds
is written as comfy.lora.calculate_weight applies it: the offset's rows, the function on the
delta's rows (the norm_out half swap), strength * alpha / rank, `.diff_b` bias deltas; a patch
whose shape does not fit is skipped, as ComfyUI logs and skips it.

usage: LV_COMFYUI=/path/to/ComfyUI python3 comfyui_adapter.py IN OUT
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _lora_file import BflLora, ExpressError, flux1_shapes, run, setup  # noqa: E402

PREFIX = "diffusion_model."


def add_patch(out, name, shape, patch):
    """One (strength, value, strength_model, offset, function) entry of ModelPatcher.patches."""
    import comfy.weight_adapter

    strength, value, strength_model, offset, function = patch
    target, _, param = name.rpartition(".")
    begin, rows = 0, shape[0]
    if offset is not None:
        if offset[0] != 0:
            raise ExpressError(f"{name}: a patch on a slice along dimension {offset[0]}")
        begin, rows = offset[1], offset[2]
    numel = rows * (shape[1] if len(shape) > 1 else 1)
    if strength_model != 1.0:
        raise ExpressError(f"{name}: strength_model {strength_model}")
    if isinstance(value, comfy.weight_adapter.WeightAdapterBase):
        if value.name != "lora" or param != "weight":
            raise ExpressError(f"{name}: a {value.name} patch")
        up, down, alpha, mid, dora_scale, reshape = value.weights
        if mid is not None or dora_scale is not None or reshape is not None:
            raise ExpressError(f"{name}: a LoRA with a mid, DoRA scale or reshape")
        if up.shape[0] * down[0].numel() != numel:
            return  # calculate_weight: the reshape fails, ComfyUI logs "ERROR lora …" and leaves the weight
        scale = strength * (alpha / down.shape[0] if alpha is not None else 1.0)
        out.add(target, up, down, scale, begin, function)
    elif isinstance(value, tuple) and len(value) == 2 and value[0] == "diff":
        diff = value[1][0]
        if len(value[1]) > 1 and value[1][1].get("pad_weight"):
            raise ExpressError(f"{name}: a diff that pads the weight")
        if diff.numel() != numel:
            return  # "WARNING SHAPE MISMATCH … WEIGHT NOT MERGED"
        if param == "bias":
            out.add_bias(target, diff * strength, begin, function)
        elif param == "weight":
            out.add_dense(target, diff * strength, begin, function)
        else:
            raise ExpressError(f"{name}: a delta on a {param}")
    else:
        raise ExpressError(f"{name}: a {value[0] if isinstance(value, tuple) else type(value).__name__} patch")


def main(runner, src, dst):
    standin, patcher, clip = runner.model()
    _, model, _ = runner.load(src, patcher, clip)  # raises where ComfyUI rejects the file
    out = BflLora(flux1_shapes())
    for key, patches in sorted(model.patches.items()):
        if not key.startswith(PREFIX):
            continue
        name = key[len(PREFIX):]
        shape = tuple(standin.get_parameter(name).shape)
        for patch in patches:
            add_patch(out, name, shape, patch)
    out.write(dst)


if __name__ == "__main__":
    run(main, *setup("comfyui", "LV_COMFYUI", __doc__))
