"""diffusers: `FluxLoraLoaderMixin.load_lora_weights` (its `lora_state_dict`: format detection and
conversion; the `transformer.` filter; `load_lora_into_transformer` -> `PeftAdapterMixin.load_lora_adapter`,
with `_create_lora_config` / `get_peft_kwargs`) called on a stand-in pipeline whose transformer
has FluxTransformer2DModel's module names and FLUX.1 shapes (meta). FLUX.2 files go through
`Flux2LoraLoaderMixin.load_lora_weights` (its `lora_state_dict` with the kohya and non-diffusers
FLUX.2 converters, then the same `load_lora_adapter`) on a transformer with
Flux2Transformer2DModel's module names and the file's family's shapes (lab/flux2.py).

PEFT is not in Debian: `peft` is the one emulated dependency. `inject_adapter_in_model` and
`set_peft_model_state_dict` are replaced by the harness's own reading of PEFT's LoRA semantics
(delta = scaling * lora_B @ lora_A, scaling = lora_alpha / r or lora_alpha / sqrt(r) with
use_rslora, rank_pattern / alpha_pattern per module, lora_B.bias scaled likewise when
lora_bias; keys naming no module of the model are "unexpected" and not applied; no module at
all: PEFT's ValueError). Deltas are kept as their factors and projected as B @ (A @ X). The LoraConfig diffusers builds is recorded as it was built. The
text encoder is not modelled: its LoRA keys count as applied when diffusers passes `text_encoder.`
LoRA keys to `load_lora_into_text_encoder` that its own conversions (convert_state_dict_to_diffusers,
convert_state_dict_to_peft) turn into lora_A/lora_B of CLIP's projection modules."""
import math
import re
import sys
import types

import torch

from .. import compare, flux, flux2, stubs

RUNS = [
    "diffusers.loaders.lora_pipeline.FluxLoraLoaderMixin.load_lora_weights (lora_state_dict, _maybe_expand_*, load_lora_into_transformer)",
    "FLUX.2: diffusers.loaders.lora_pipeline.Flux2LoraLoaderMixin.load_lora_weights (lora_state_dict, load_lora_into_transformer)",
    "diffusers.loaders.peft.PeftAdapterMixin.load_lora_adapter (prefix filter, convert_unet_state_dict_to_peft, _create_lora_config)",
    "emulated: peft.inject_adapter_in_model / set_peft_model_state_dict (see the module docstring)",
]
_NOT_USED = "imported by diffusers' package modules; not called on the paths measured"


class _Peft:
    """What the emulated PEFT received: the LoraConfig kwargs and the adapter's state dict."""
    last = None


class LoraConfig:
    def __init__(self, **kwargs):
        self.kwargs = kwargs
        for k, v in kwargs.items():
            setattr(self, k, v)


def inject_adapter_in_model(config, model, adapter_name=None, state_dict=None, **kwargs):
    names = {n for n, _ in model.named_modules()}
    targets = set(config.kwargs.get("target_modules") or [])
    if targets and not any(t in names or any(n.endswith("." + t) for n in names) for t in targets):
        raise ValueError(f"Target modules {sorted(targets)} not found in the base model. "
                         "Please check the target modules and try again.")
    _Peft.last = (config, adapter_name)
    model.peft_config = {adapter_name: config}


def _pattern(patterns, module):
    for p, v in (patterns or {}).items():
        if p.startswith("^") and re.match(p + "$", module):
            return v
        if not p.startswith("^") and (module == p or module.endswith("." + p)):
            return v
    return None


def set_peft_model_state_dict(model, state_dict, adapter_name=None, **kwargs):
    config = _Peft.last[0].kwargs
    names = dict(model.named_modules())
    unexpected, modules = [], {}
    for key, value in state_dict.items():
        mod, _, suffix = key.partition(".lora_")
        if mod not in names or not isinstance(names[mod], torch.nn.Linear):
            unexpected.append(key)
            continue
        modules.setdefault(mod, {})["lora_" + suffix] = value
    for mod, tensors in modules.items():
        a, b = tensors.get("lora_A.weight"), tensors.get("lora_B.weight")
        if a is None or b is None:
            continue
        r = _pattern(config.get("rank_pattern"), mod) or config["r"]
        alpha = _pattern(config.get("alpha_pattern"), mod) or config["lora_alpha"]
        scaling = alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r
        model.add_lora(mod, a, b, scaling,
                       tensors["lora_B.bias"] if config.get("lora_bias") and "lora_B.bias" in tensors else None)
        for k in ("lora_B.bias",):
            if k in tensors and not config.get("lora_bias"):
                unexpected.append(f"{mod}.{k}")
    return types.SimpleNamespace(unexpected_keys=unexpected, missing_keys=[])


class _BaseTunerLayer:
    pass


STUBS = {
    "peft": ("not in Debian: emulated (LoraConfig, inject_adapter_in_model, set_peft_model_state_dict; see above)",
             {"LoraConfig": LoraConfig, "inject_adapter_in_model": inject_adapter_in_model,
              "set_peft_model_state_dict": set_peft_model_state_dict, "__version__": "0.17.0"}),
    "peft.tuners.tuners_utils": ("BaseTunerLayer: no module of the stand-in is one", {"BaseTunerLayer": _BaseTunerLayer}),
    "diffusers.dependency_versions_check": ("import-time version check of requests/filelock/numpy", {}),
    "diffusers.quantizers": ("quantization backends (need a newer torch); " + _NOT_USED, {}),
    "diffusers.models.modeling_utils": ("ModelMixin; the transformer here is a stand-in module", {}),
    "diffusers.hooks": ("offloading / context-parallel hooks (need a newer torch): none is installed", {}),
    "diffusers.hooks.group_offloading": ("as above", {"_maybe_remove_and_reapply_group_offloading": lambda *a, **k: None}),
    "huggingface_hub": ("hub client; files here are local", {}),
    "huggingface_hub.utils": ("hub helpers: validate_hf_hub_args leaves functions as they are", {"validate_hf_hub_args": lambda f: f}),
    "huggingface_hub.constants": ("hub paths", {"HF_HOME": "/nonexistent/hf-home", "HF_HUB_OFFLINE": True}),
    "tqdm": (_NOT_USED, {}),
}


class M:
    pass


def setup(app_dir):
    sys.path.insert(0, app_dir + "/src")
    stubs.install(STUBS)
    stubs.torch_backends("xpu", "mps")
    import diffusers.utils
    from diffusers.loaders import lora_pipeline, peft

    diffusers.utils.USE_PEFT_BACKEND = True  # the backend is the emulated peft above
    M.lora_pipeline, M.peft, M.utils = lora_pipeline, peft, diffusers.utils


def transformer_class(shapes=None, bias=True, project=False):
    """A FluxTransformer2DModel stand-in (its module names, FLUX.1 shapes on the meta device, or
    `shapes`; the PeftAdapterMixin of diffusers); `add_lora` receives what the emulated PEFT
    applies. `project`: keep each delta as its projection (compare.py) instead of dense."""
    base = M.peft.PeftAdapterMixin

    class Transformer(torch.nn.Module, base):
        _hf_peft_config_loaded = False
        _prepare_lora_hotswap_kwargs = None

        def __init__(self):
            torch.nn.Module.__init__(self)
            for name, (o, i) in (flux.diffusers_shapes() if shapes is None else shapes).items():
                flux.StandIn._put(self, name, torch.nn.Linear(i, o, bias=bias, device="meta"))
            self.applied = {}

        def add_lora(self, module, down, up, scaling, bias):
            """What PEFT applies to `module`: delta scaling * up @ down, bias delta scaling * bias."""
            b = bias.double() * scaling if bias is not None else None
            if project:
                self.applied[module] = ((up.double() @ (down.double() @ compare._probe(down.shape[1]))) * scaling, b)
            else:
                self.applied[module] = ((up.double() @ down.double()) * scaling, b)

    return Transformer


def _bfl_deltas(applied):
    out = {}
    rows = flux.flux1_linears()
    table = flux.diffusers_modules()
    for mod, (pw, b) in applied.items():
        target, rb, re_, swap = table[mod]
        full_w = out.setdefault(target, {}).setdefault("weight", torch.zeros(rows[target][0], compare._PROBES, dtype=torch.float64))
        if swap:
            half = pw.shape[0] // 2
            pw = torch.cat([pw[half:], pw[:half]])
        full_w[rb:re_] += pw
        if b is not None:
            full_b = out[target].setdefault("bias", torch.zeros(rows[target][0], dtype=torch.float64))
            bb = torch.cat([b[b.shape[0] // 2:], b[: b.shape[0] // 2]]) if swap else b
            full_b[rb:re_] += bb
    return out


def _call(mixin, pipe, path):
    """load_lora_weights as the pipeline calls it; the app's error is the result."""
    try:
        load = mixin.load_lora_weights
        load.__wrapped__(pipe, path) if hasattr(load, "__wrapped__") else load(pipe, path)
    except Exception as e:  # noqa: BLE001 — the app's own error
        import traceback
        return {"stage": "load", "error": f"{type(e).__name__}: {e}".strip()[:600], "trace": traceback.format_exc()[-1200:]}
    return None


def measure_flux2(path, family):
    transformer = transformer_class(flux2.diffusers_shapes(family), bias=False, project=True)()
    pipe = types.SimpleNamespace(transformer=transformer, transformer_name="transformer", hf_device_map={})
    mixin = M.lora_pipeline.Flux2LoraLoaderMixin
    for name in ("lora_state_dict", "load_lora_into_transformer"):
        setattr(pipe, name, getattr(mixin, name))
    failed = _call(mixin, pipe, path)
    if failed:
        return failed
    deltas = {mod: {"weight": pw} | ({"bias": b} if b is not None else {}) for mod, (pw, b) in transformer.applied.items()}
    return {"stage": "applied", "deltas": flux2.to_bfl(deltas, family)}


def load(path, transformer):
    """FluxLoraLoaderMixin.load_lora_weights on the file, into `transformer` (see
    transformer_class). Returns the text-encoder modules PEFT would patch; raises what diffusers
    raises."""
    te = {}

    def load_te(state_dict, **kwargs):
        # _load_lora_into_text_encoder's own key conversions; PEFT then patches CLIP's projections
        sd = {k[len("text_encoder."):]: v for k, v in state_dict.items() if k.startswith("text_encoder.")}
        sd = M.utils.convert_state_dict_to_peft(M.utils.convert_state_dict_to_diffusers(sd)) if sd else {}
        te.update({k: v for k, v in sd.items() if ".lora_A." in k and
                   k.split(".lora_A.")[0].endswith((".q_proj", ".k_proj", ".v_proj", ".out_proj", ".fc1", ".fc2"))})

    pipe = types.SimpleNamespace(transformer=transformer, text_encoder=None, transformer_name="transformer",
                                 text_encoder_name="text_encoder", lora_scale=1.0, hf_device_map={})
    mixin = M.lora_pipeline.FluxLoraLoaderMixin
    for name in ("lora_state_dict", "_maybe_expand_transformer_param_shape_or_error_", "_maybe_expand_lora_state_dict",
                 "load_lora_into_transformer", "_load_norm_into_transformer", "_control_lora_supported_norm_keys"):
        setattr(pipe, name, getattr(mixin, name))
    pipe.load_lora_into_text_encoder = load_te
    load_weights = getattr(mixin.load_lora_weights, "__wrapped__", None)
    load_weights(pipe, path) if load_weights else mixin.load_lora_weights(pipe, path)
    return sorted({k.split(".lora_A.")[0] for k in te})


def measure(path, family="flux1"):
    if family != "flux1":
        return measure_flux2(path, family)
    transformer = transformer_class(project=True)()
    try:
        te_modules = load(path, transformer)
    except Exception as e:  # noqa: BLE001 — the app's own error
        import traceback
        return {"stage": "load", "error": f"{type(e).__name__}: {e}".strip()[:600], "trace": traceback.format_exc()[-1200:]}
    deltas = _bfl_deltas(transformer.applied)
    return {"stage": "applied", "deltas": deltas, "text_encoder_modules": te_modules}
