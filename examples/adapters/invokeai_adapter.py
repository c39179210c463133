#!/usr/bin/env python3
"""InvokeAI adapter for `lora-verify matrix --converter` (protocol: README.md here).

Runs InvokeAI's own code on IN, as tools/loader-lab measures it: the install probe
(LoRA_LyCORIS_Config_Base._validate_looks_like_lora, _get_base_or_raise), then
LoRALoader._load_model (the FLUX branch with InvokeAI's detector chain and converters). The
layers of the ModelPatchRaw it returns are looked up in the FLUX.1 module tree with the
patcher's own LayerPatcher._get_submodule (a layer whose module is not found is skipped, as the
patcher skips it) and written with the scale the patcher uses (LoRALayerBase.scale()).

usage: LV_INVOKEAI=/path/to/InvokeAI python3 invokeai_adapter.py IN OUT
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _lora_file import BflLora, ExpressError, flux1_shapes, run, setup  # noqa: E402

PREFIX = "lora_transformer-"  # the prefix InvokeAI's FLUX transformer patching uses


def add_layer(out, target, layer, begin=0):
    """One LoRALayer or FullLayer on rows [begin, …) of target, as LoRALayerBase.get_parameters
    computes it: get_weight(…) * scale(), bias * scale()."""
    kind = type(layer).__name__
    scale = layer.scale()
    if kind == "LoRALayer" and layer.mid is None and layer.are_ranks_equal:
        out.add(target, layer.up, layer.down, scale, begin)
    elif kind == "FullLayer":
        out.add_dense(target, layer.weight * scale, begin)
    else:
        raise ExpressError(f"{target}: a {kind} patch" + (" with a mid or unequal ranks" if kind == "LoRALayer" else ""))
    bias = layer.get_bias(None)
    if bias is not None:
        out.add_bias(target, (bias.to_dense() if bias.is_sparse else bias) * scale, begin)


def check_shape(module, layer):
    """A delta whose shape differs from the module's weight: InvokeAI's own get_parameters says
    what happens to it (it raises where it cannot reshape); otherwise it is not expressed."""
    import torch

    kind, want = type(layer).__name__, tuple(module.weight.shape)
    shape = ((layer.up.shape[0], layer.down.shape[1]) if kind == "LoRALayer" else
             tuple(layer.weight.shape) if kind == "FullLayer" else want)
    if tuple(shape) == want:
        return
    layer.get_parameters({n: torch.zeros(p.shape) for n, p in module.named_parameters(recurse=False)}, weight=1.0)
    raise ExpressError(f"a {tuple(shape)} delta on a {want} weight")


def main(runner, src, dst):
    from lab import flux

    _, base, fmt = runner.probe(src)  # NotAMatchError: InvokeAI does not install it as a FLUX LoRA
    fmt_name = fmt.value if fmt is not None else None
    if base != runner.M.BaseModelType.Flux:
        raise ValueError(runner.not_flux(base, fmt_name) if base != runner.M.BaseModelType.Flux2 else
                         f"identified as a FLUX.2 LoRA (flux_format_from_state_dict: {fmt_name}), not FLUX.1")
    model = runner.load(src, base)
    tree = flux.StandIn()
    flattened = not any("." in key for key in model.layers)
    out = BflLora(flux1_shapes())
    for key, layer in model.layers.items():
        if not key.startswith(PREFIX):
            continue  # text-encoder layers: outside the transformer, not compared
        try:
            target, module = runner.M.LayerPatcher._get_submodule(tree, key[len(PREFIX):], layer_key_is_flattened=flattened)
        except AttributeError:
            continue  # the patcher warns "Failed to find module for LoRA layer key" and skips it
        if type(layer).__name__ == "MergedLayerPatch":
            for sub, rng in zip(layer.lora_layers, layer.ranges):
                add_layer(out, target, sub, rng.start)
        else:
            check_shape(module, layer)
            add_layer(out, target, layer)
    out.write(dst)


if __name__ == "__main__":
    run(main, *setup("invokeai", "LV_INVOKEAI", __doc__))
