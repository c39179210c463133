"""sd-scripts: `networks/convert_flux_lora.py` `main` with --src sd-scripts --dst ai-toolkit (its
`convert_sd_scripts_to_ai_toolkit`), run on the file; the written ai-toolkit file (diffusers
module names, scale folded into lora_A/lora_B) is then read as the delta it holds, module by
module, and placed on the FLUX.1 targets."""
import importlib.util
import os
import sys
import tempfile
import types

import torch

from .. import compare, flux, stubs
from ..safetensors_io import load_file

RUNS = ["networks/convert_flux_lora.py main(--src sd-scripts --dst ai-toolkit) -> convert_sd_scripts_to_ai_toolkit"]
STUBS = {
    "library": ("sd-scripts' own library package: only library.utils.setup_logging is imported (its other "
                "imports pull in diffusers, torchvision, cv2)", {}),
    "library.utils": ("setup_logging: the harness captures logging itself", {"setup_logging": lambda *a, **k: None}),
}


class M:
    pass


def setup(app_dir):
    stubs.install(STUBS)
    spec = importlib.util.spec_from_file_location("convert_flux_lora", os.path.join(app_dir, "networks/convert_flux_lora.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    M.mod = mod


def measure(path):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "ai-toolkit.safetensors")
        args = types.SimpleNamespace(src="sd-scripts", dst="ai-toolkit", src_path=path, dst_path=out)
        try:
            M.mod.main(args)
        except Exception as e:  # noqa: BLE001 — the app's own error
            return {"stage": "load", "error": f"{type(e).__name__}: {e}".strip()[:600]}
        sd = load_file(out)
    table = flux.diffusers_modules()
    rows = flux.flux1_linears()
    deltas = {}
    for k, a in sd.items():
        if not k.endswith(".lora_A.weight"):
            continue
        mod = k[: -len(".lora_A.weight")].removeprefix("transformer.")
        b = sd[k.replace(".lora_A.", ".lora_B.")]
        target, rb, re_, swap = table[mod]
        w = compare.project(b.double() @ a.double())
        if swap:
            w = torch.cat([w[w.shape[0] // 2:], w[: w.shape[0] // 2]])
        full = deltas.setdefault(target, {}).setdefault("weight", torch.zeros(rows[target][0], compare._PROBES, dtype=torch.float64))
        full[rb:re_] += w
    return {"stage": "applied", "deltas": deltas}
