"""InvokeAI: the install probe (the FLUX LoRA config's checks: `_validate_looks_like_lora`,
`_get_base_or_raise`, which call `flux_format_from_state_dict` with the file's metadata), then
the loader (`LoRALoader._load_model`, the FLUX branch with its detector chain and converters),
then the patcher (`LayerPatcher.apply_smart_model_patch`, direct patching) on a stand-in FLUX.1
module tree. Text-encoder layers count as applied when the loader builds a patch for them.

FLUX.2 files: the same probe (its base is FLUX.2 only when `_is_flux2_lora` says so; the variant is
`_get_flux2_lora_variant`'s, as the FLUX.2 LoRA config records it), the loader's FLUX.2 branch,
then what the FLUX.2 denoise invocation does with the loaded patch: `convert_bfl_lora_patch_to_diffusers`
and `LayerPatcher.apply_smart_model_patch` on a stand-in with Flux2Transformer2DModel's module
names and the file's family's shapes (lab/flux2.py). A file the probe takes for a FLUX.1 LoRA is
recorded as rejected at the probe: the FLUX.2 graphs take only LoRAs of base flux2. Layers are
patched one at a time (the patch's other keys kept in view for its flattened-key test) so that
no more than one dense weight is held."""
import os
import sys
import types
from pathlib import Path

from .. import compare, flux, flux2, stubs

RUNS = [
    "invokeai.backend.model_manager.configs.lora: LoRA_LyCORIS_Config_Base._validate_looks_like_lora, _get_base_or_raise (install probe)",
    "invokeai.backend.patches.lora_conversions.formats.flux_format_from_state_dict (the probe's format, recorded)",
    "invokeai.backend.model_manager.load.model_loaders.lora.LoRALoader._load_model (FLUX branch, LyCORIS format)",
    "invokeai.backend.patches.layer_patcher.LayerPatcher.apply_smart_model_patch (direct patching, weight 1.0)",
    "FLUX.2: configs.lora._get_flux2_lora_variant (the probe's variant), the loader's FLUX.2 branch, "
    "flux_bfl_peft_lora_conversion_utils.convert_bfl_lora_patch_to_diffusers (as the FLUX.2 denoise invocation calls it)",
]


class _Config(types.SimpleNamespace):
    def __getattr__(self, name):
        return None


_CFG = _Config(log_level="debug", log_handlers=[], log_format="plain", unsafe_disable_picklescan=False)


class _Registry:
    @staticmethod
    def register(**kwargs):
        return lambda cls: cls


_NOT_USED = "imported by the loading modules; not called on the paths measured"
STUBS = {
    "invokeai.app.services.config": ("the app's settings (pydantic-settings): get_config() returns log settings only", {"get_config": lambda: _CFG}),
    "invokeai.app.services.config.config_default": ("as above", {"get_config": lambda: _CFG}),
    "invokeai.backend.model_manager.load.model_loader_registry": ("the loader registry: register() leaves classes as they are", {"ModelLoaderRegistry": _Registry}),
    "invokeai.backend.model_manager.load.load_default": ("ModelLoader base class (model cache, RAM/VRAM); LoRALoader._load_model is called on a bare instance", {}),
    "invokeai.backend.model_manager.load.model_cache.model_cache": ("the model cache and its lock; " + _NOT_USED, {}),
    "invokeai.backend.model_manager.configs.factory": ("the config union of every model type; " + _NOT_USED, {}),
    "invokeai.backend.quantization": ("GGUF/SDNQ quantization (needs a newer torch); files here are plain safetensors", {}),
    "invokeai.backend.util.fp8": ("FP8 dtype table (torch 1.13 has no float8 dtypes): no stand-in weight is FP8", {"FP8_STORAGE_DTYPES": (), "FP8_COMPUTE_DTYPE_ATTR": "_fp8_compute_dtype", "set_fp8_compute_dtype": lambda *a, **k: None}),
    "invokeai.backend.pid": ("a VAE decoder network (needs a newer torch); " + _NOT_USED, {}),
    "pydantic": ("config classes are not instantiated: the probe's classmethods run on the class", {}),
    "pydantic_core": (_NOT_USED, {}), "onnxruntime": (_NOT_USED, {}), "diffusers": (_NOT_USED, {}),
    "transformers": (_NOT_USED, {}), "accelerate": (_NOT_USED, {}), "blake3": ("model hashing; " + _NOT_USED, {}),
    "tqdm": (_NOT_USED, {}), "gguf": (_NOT_USED, {}), "picklescan": ("scans .ckpt files; files here are safetensors", {}),
    "einops": (_NOT_USED, {}), "torchvision": (_NOT_USED, {}), "deprecated": (_NOT_USED, {}), "spandrel": (_NOT_USED, {}),
    "cv2": (_NOT_USED, {}), "onnx": (_NOT_USED, {}), "compel": (_NOT_USED, {}),
}
EMPTY_PACKAGES = {"invokeai.backend.model_manager.load": "the package init imports every model loader (video, PID, …); its submodules load from the app"}

M = types.SimpleNamespace()


def setup(app_dir):
    sys.path.insert(0, app_dir)
    stubs.install(STUBS)
    import invokeai.backend.model_manager  # noqa: F401

    stubs.empty_package("invokeai.backend.model_manager.load", os.path.join(app_dir, "invokeai/backend/model_manager/load"))
    from invokeai.backend.model_manager.configs import lora as cfg
    from invokeai.backend.model_manager.configs.identification_utils import NotAMatchError
    from invokeai.backend.model_manager.load.model_loaders.lora import LoRALoader
    from invokeai.backend.model_manager.model_on_disk import ModelOnDisk
    from invokeai.backend.model_manager.taxonomy import BaseModelType, ModelFormat
    from invokeai.backend.patches.layer_patcher import LayerPatcher
    from invokeai.backend.patches.lora_conversions.flux_bfl_peft_lora_conversion_utils import (
        convert_bfl_lora_patch_to_diffusers,
    )
    from invokeai.backend.patches.model_patch_raw import ModelPatchRaw
    from invokeai.backend.patches.lora_conversions.formats import flux_format_from_state_dict
    from invokeai.backend.util.original_weights_storage import OriginalWeightsStorage

    M.__dict__.update(locals())


def probe(path):
    mod = M.ModelOnDisk(Path(path))
    base_cls = M.cfg.LoRA_LyCORIS_Config_Base
    fmt = M.flux_format_from_state_dict(mod.load_state_dict(), mod.metadata())
    base_cls._validate_looks_like_lora(mod)
    base = base_cls._get_base_or_raise(mod)
    return mod, base, fmt


def not_flux(base, fmt_name):
    return f"identified as a {base.value} LoRA, not FLUX (flux_format_from_state_dict: {fmt_name})"


def load(path, base):
    """LoRALoader._load_model (FLUX branch, LyCORIS format) for the base the probe found: the
    ModelPatchRaw whose layers the patcher applies. Raises what the loader raises."""
    import torch

    loader = M.LoRALoader.__new__(M.LoRALoader)
    loader._model_base = base
    loader._torch_dtype = torch.float32
    config = types.SimpleNamespace(path=path, format=M.ModelFormat.LyCORIS, base=base)
    return loader._load_model(config)


def _patch_flux2(model, family):
    """The loaded patch as the FLUX.2 denoise invocation applies it, on the diffusers stand-in."""
    import torch

    patch = M.convert_bfl_lora_patch_to_diffusers(model)
    standin = flux2.diffusers_standin(family)
    prefix = "lora_transformer-"
    dotted = {"harness.dotted": None} if any("." in k for k in patch.layers) else {}
    for key, layer in patch.layers.items():
        if key.startswith(prefix):
            standin.materialize(key[len(prefix):])
        M.LayerPatcher.apply_smart_model_patch(
            model=standin, prefix=prefix, patch=M.ModelPatchRaw(layers={key: layer, **dotted}), patch_weight=1.0,
            original_weights=M.OriginalWeightsStorage(), original_modules={}, dtype=torch.float32,
            force_direct_patching=True, force_sidecar_patching=False)
        standin.release(compare.project)
    return flux2.to_bfl(standin.deltas(compare.project), family)


def measure_flux2(path, family):
    import torch

    try:
        mod, base, fmt = probe(path)
    except Exception as e:  # NotAMatchError: no FLUX LoRA config matches
        return {"stage": "probe", "error": f"{type(e).__name__}: {e}"}
    fmt_name = fmt.value if fmt is not None else None
    if base != M.BaseModelType.Flux2:
        return {"stage": "probe", "format": fmt_name,
                "error": f"identified as a {base.value} LoRA, not flux2 (flux_format_from_state_dict: {fmt_name}); "
                         "the FLUX.2 graphs take only LoRAs of base flux2"}
    variant = M.cfg._get_flux2_lora_variant(mod.load_state_dict())
    variant = variant.value if variant is not None else None
    loader = M.LoRALoader.__new__(M.LoRALoader)
    loader._model_base = base
    loader._torch_dtype = torch.float32
    config = types.SimpleNamespace(path=path, format=M.ModelFormat.LyCORIS, base=base)
    try:
        model = loader._load_model(config)
    except Exception as e:  # noqa: BLE001 — the app's own error
        return {"stage": "load", "format": fmt_name, "variant": variant, "error": f"{type(e).__name__}: {e}".strip()}
    try:
        deltas = _patch_flux2(model, family)
    except Exception as e:  # noqa: BLE001
        return {"stage": "patch", "format": fmt_name, "variant": variant, "error": f"{type(e).__name__}: {e}".strip()}
    return {"stage": "applied", "format": fmt_name, "variant": variant, "deltas": deltas, "text_encoder_modules": []}


def measure(path, family="flux1"):
    import torch

    if family != "flux1":
        return measure_flux2(path, family)
    try:
        mod, base, fmt = probe(path)
    except Exception as e:  # NotAMatchError: no FLUX LoRA config matches
        return {"stage": "probe", "error": f"{type(e).__name__}: {e}"}
    fmt_name = fmt.value if fmt is not None else None
    if base not in (M.BaseModelType.Flux, M.BaseModelType.Flux2):
        return {"stage": "probe", "format": fmt_name, "error": not_flux(base, fmt_name)}
    try:
        model = load(path, base)
    except Exception as e:  # noqa: BLE001 — the app's own error
        return {"stage": "load", "format": fmt_name, "error": f"{type(e).__name__}: {e}".strip()}
    if base == M.BaseModelType.Flux2:
        return {"stage": "load-only", "format": fmt_name, "layers": sorted(model.layers)}
    standin = flux.StandIn()
    prefix = "lora_transformer-"
    te = [k for k in model.layers if not k.startswith(prefix)]
    for key in model.layers:
        if key.startswith(prefix):
            standin.materialize(key[len(prefix):])
    try:
        M.LayerPatcher.apply_smart_model_patch(
            model=standin, prefix=prefix, patch=model, patch_weight=1.0,
            original_weights=M.OriginalWeightsStorage(), original_modules={}, dtype=torch.float32,
            force_direct_patching=True, force_sidecar_patching=False)
    except Exception as e:  # noqa: BLE001
        return {"stage": "patch", "format": fmt_name, "error": f"{type(e).__name__}: {e}".strip()}
    deltas = standin.deltas(compare.project)
    return {"stage": "applied", "format": fmt_name, "deltas": deltas,
            "text_encoder_modules": [k.split("-", 1)[1] if "-" in k else k for k in te]}
