"""ComfyUI: `comfy.sd.load_lora_for_models` (key maps for the model and the text encoders,
`comfy.lora_convert.convert_lora`, `comfy.lora.load_lora`, `ModelPatcher.add_patches`), then
`ModelPatcher.patch_weight_to_device` (which runs `comfy.lora.calculate_weight`) for every
patched weight of a stand-in FLUX.1 model. The model config comes from ComfyUI's own detection
(`comfy.model_detection.model_config_from_unet`) on the stand-in's state dict.

FLUX.2 files: ComfyUI has to load a FLUX.2 model before any LoRA applies. The harness runs the
steps of `comfy.sd.load_diffusion_model_state_dict` on the BFL stand-in of the file's family
(detection, `get_model` on the meta device, `load_model_weights`): when that fails the file is
recorded as rejected at stage "model" with ComfyUI's error, since no FLUX.2 model exists for the
LoRA to patch; otherwise the LoRA path above runs on that stand-in."""
import sys

import torch

from .. import compare, flux, flux2, stubs

RUNS = [
    "comfy.model_detection.model_config_from_unet (on the stand-in's state dict)",
    "comfy.sd.load_lora_for_models (model_lora_keys_unet, model_lora_keys_clip, lora_convert.convert_lora, lora.load_lora, add_patches)",
    "comfy.model_patcher.ModelPatcher.patch_weight_to_device (lora.calculate_weight)",
    "FLUX.2: the steps of comfy.sd.load_diffusion_model_state_dict on the family's stand-in (model_detection."
    "model_config_from_unet, model_config.get_model on the meta device, BaseModel.load_model_weights)",
]
_NOT_USED = "imported by comfy.sd's model modules; not called on the paths measured"
STUBS = {
    "einops": (_NOT_USED, {}), "torchvision": (_NOT_USED, {}), "tqdm": (_NOT_USED, {}),
    "transformers": ("tokenizers and text-encoder classes; the text encoders here are stand-in modules", {}),
    "tokenizers": (_NOT_USED, {}),
}
CLIP_LAYERS, T5_BLOCKS = 12, 24


class _TextEncoders(torch.nn.Module):
    """CLIP-L and T5-XXL linear weights (meta), under the names ComfyUI's FLUX CLIP object uses."""

    def __init__(self):
        super().__init__()
        names = {}
        for i in range(CLIP_LAYERS):
            p = f"clip_l.transformer.text_model.encoder.layers.{i}."
            for m, shape in (("self_attn.q_proj", (768, 768)), ("self_attn.k_proj", (768, 768)),
                             ("self_attn.v_proj", (768, 768)), ("self_attn.out_proj", (768, 768)),
                             ("mlp.fc1", (3072, 768)), ("mlp.fc2", (768, 3072))):
                names[p + m] = shape
        for i in range(T5_BLOCKS):
            p = f"t5xxl.transformer.encoder.block.{i}.layer."
            for m, shape in (("0.SelfAttention.q", (4096, 4096)), ("0.SelfAttention.k", (4096, 4096)),
                             ("0.SelfAttention.v", (4096, 4096)), ("0.SelfAttention.o", (4096, 4096)),
                             ("1.DenseReluDense.wi_0", (10240, 4096)), ("1.DenseReluDense.wi_1", (10240, 4096)),
                             ("1.DenseReluDense.wo", (4096, 10240))):
                names[p + m] = shape
        for name, (o, i) in names.items():
            flux.StandIn._put(self, name, torch.nn.Linear(i, o, bias=False, device="meta"))


class M:
    pass


def setup(app_dir):
    sys.path.insert(0, app_dir)
    stubs.install(STUBS)
    argv, sys.argv = sys.argv, [sys.argv[0], "--cpu"]
    import comfy.options

    comfy.options.enable_args_parsing()
    import comfy.lora
    import comfy.model_base
    import comfy.model_detection
    import comfy.model_patcher
    import comfy.sd
    import comfy.utils

    sys.argv = argv
    M.comfy = comfy


def model():
    """The stand-in FLUX.1 model as ComfyUI holds it (detected by its own model_config_from_unet),
    and a CLIP object over stand-in text encoders: (stand-in tree, ModelPatcher, CLIP)."""
    comfy = M.comfy
    standin = flux.StandIn()
    sd = {"diffusion_model." + k: v for k, v in standin.state_dict().items()}
    config = comfy.model_detection.model_config_from_unet(sd, "diffusion_model.")
    if config is None or type(config).__name__ != "Flux":
        raise RuntimeError(f"ComfyUI does not detect the stand-in as FLUX.1 dev ({type(config).__name__})")
    model = comfy.model_base.Flux.__new__(comfy.model_base.Flux)
    torch.nn.Module.__init__(model)
    model.model_config = config
    model.diffusion_model = standin
    cpu = torch.device("cpu")
    patcher = comfy.model_patcher.ModelPatcher(model, load_device=cpu, offload_device=cpu)
    clip = comfy.sd.CLIP(no_init=True)
    clip.cond_stage_model = _TextEncoders()
    clip.patcher = comfy.model_patcher.ModelPatcher(clip.cond_stage_model, load_device=cpu, offload_device=cpu)
    clip.tokenizer, clip.layer_idx, clip.tokenizer_options = None, None, {}
    clip.use_clip_schedule, clip.apply_hooks_to_conds = False, None
    return standin, patcher, clip


def _te_sources(lora, clip_patches):
    comfy = M.comfy
    key_map = comfy.lora.model_lora_keys_clip(M.clip_model, {})
    return sorted({src for src, dst in key_map.items() if (dst[0] if isinstance(dst, tuple) else dst) in clip_patches})


def load(path, patcher, clip):
    """comfy.sd.load_lora_for_models on the file: (its state dict, the patched ModelPatcher and
    CLIP). Raises what ComfyUI raises."""
    comfy = M.comfy
    lora = comfy.utils.load_torch_file(path, safe_load=True)
    new_model, new_clip = comfy.sd.load_lora_for_models(patcher, clip, lora, 1.0, 1.0)
    return lora, new_model, new_clip


_FLUX2_MODEL = {}


def flux2_model(family):
    """What ComfyUI makes of a FLUX.2 checkpoint of the family: (detected config class, the
    error of loading the stand-in's weights or None, the model)."""
    if family not in _FLUX2_MODEL:
        comfy = M.comfy
        sd = {"model.diffusion_model." + k: v for k, v in flux2.bfl_standin(family).state_dict().items()}
        prefix = comfy.model_detection.unet_prefix_from_state_dict(sd)
        sd = comfy.utils.state_dict_prefix_replace(sd, {prefix: ""}, filter_keys=True)
        config = comfy.model_detection.model_config_from_unet(sd, "")
        detected = type(config).__name__ if config is not None else None
        error, model = None, None
        if config is None:
            error = "model_config_from_unet: no model detected (ComfyUI loads no model from these weights)"
        else:
            try:
                model = config.get_model(sd, "", device=torch.device("meta"))
                model.load_model_weights(sd, "")
            except Exception as e:  # noqa: BLE001 — the app's own error
                error = f"{type(e).__name__}: {e}".strip()[:600]
        _FLUX2_MODEL[family] = (detected, error, model)
    return _FLUX2_MODEL[family]


def measure(path, family="flux1"):
    comfy = M.comfy
    if family != "flux1":
        detected, error, _ = flux2_model(family)
        if error:
            return {"stage": "model", "detected": detected, "error": error}
        return {"stage": "harness-error", "detected": detected,
                "error": f"ComfyUI loads the {family} stand-in as {detected}: its LoRA path is not wired here"}
    standin, patcher, clip = model()
    M.clip_model = clip.cond_stage_model
    try:
        lora, new_model, new_clip = load(path, patcher, clip)
    except Exception as e:  # noqa: BLE001 — the app's own error
        return {"stage": "load", "error": f"{type(e).__name__}: {e}".strip()}
    try:
        for key in list(new_model.patches):
            module = key[len("diffusion_model."):].rpartition(".")[0]
            standin.materialize(module)
            new_model.patch_weight_to_device(key)
    except Exception as e:  # noqa: BLE001
        return {"stage": "patch", "error": f"{type(e).__name__}: {e}".strip()}
    return {"stage": "applied", "deltas": standin.deltas(compare.project),
            "text_encoder_sources": _te_sources(lora, set(new_clip.patcher.patches))}
