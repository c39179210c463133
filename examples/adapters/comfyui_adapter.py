#!/usr/bin/env python3
"""ComfyUI adapter for `lora-verify matrix --converter` (protocol: README.md here).

Written against ComfyUI commit a125cd84 (the version profiled in docs/loaders.md), using its
public loading functions: comfy.sd.load_diffusion_model (the FLUX.1 model, for its key map
and weight shapes), comfy.lora.model_lora_keys_unet (LoRA key -> model weight, with the
split offsets of fused weights and the norm_out half swap) and comfy.lora.load_lora (the
patches ComfyUI applies). Run it from the ComfyUI folder (or with it on PYTHONPATH), with
COMFYUI_FLUX_MODEL naming the FLUX.1 diffusion model file. Not run by this repository's CI
(no ComfyUI, torch or FLUX.1 weights there).

usage: COMFYUI_FLUX_MODEL=/models/flux1-dev.safetensors python3 comfyui_adapter.py IN OUT
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _lora_file import BflLora, ExpressError, fail  # noqa: E402


def lora_weights(patch):
    """(up, down, alpha, mid, dora_scale) of a LoRA patch, old tuple form or weight adapter."""
    weights = getattr(patch, "weights", None)
    name = getattr(patch, "name", None)
    if weights is None and isinstance(patch, tuple) and len(patch) == 2:
        name, weights = patch
    if name != "lora" or weights is None:
        raise ExpressError(f"{name or type(patch).__name__} patch is not a plain LoRA")
    return weights[0], weights[1], weights[2], weights[3], weights[4] if len(weights) > 4 else None


def main(src, dst):
    import comfy.lora
    import comfy.sd
    import comfy.utils

    model_path = os.environ.get("COMFYUI_FLUX_MODEL")
    if not model_path:
        fail("COMFYUI_FLUX_MODEL must name the FLUX.1 diffusion model file", 64)
    patcher = comfy.sd.load_diffusion_model(model_path)
    shapes = {k: tuple(v.shape) for k, v in patcher.model.state_dict().items()}
    key_map = comfy.lora.model_lora_keys_unet(patcher.model, {})
    patches = comfy.lora.load_lora(comfy.utils.load_torch_file(src, safe_load=True), key_map)
    out = BflLora()
    for key, patch in patches.items():
        offset, row_fn = None, None
        if isinstance(key, tuple):
            key, offset = key[0], key[1]
            if len(offset) > 3 and offset[3] is not None:
                row_fn = offset[3]  # applied by ComfyUI to the delta's rows (the norm_out swap)
        if not key.startswith("diffusion_model."):
            continue
        name = key[len("diffusion_model."):]
        target, _, param = name.rpartition(".")
        if param != "weight":
            raise ExpressError(f"{name}: a patch on a {param} is not expressible")
        up, down, alpha, mid, dora = lora_weights(patch)
        if mid is not None or dora is not None:
            raise ExpressError(f"{target}: LoCon mid or DoRA scale")
        rank = down.shape[0]
        scale = float(alpha) / rank if alpha is not None else 1.0
        begin = 0
        if offset is not None:
            if offset[0] != 0:
                raise ExpressError(f"{target}: a split along dimension {offset[0]}")
            begin = offset[1]
        out.add(target, up, down, scale, begin, None, shapes[key][0], row_fn)
    out.write(dst)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        fail(__doc__, 64)
    try:
        main(sys.argv[1], sys.argv[2])
    except ExpressError as e:
        fail(f"ExpressError: {e}")
