"""Compare the deltas an application applies with the source's (the reference: the source as
`lora-verify convert --style bfl` writes it, scale folded into lora_B), part by part.

Deltas are compared through a fixed random projection (delta @ X, X of 16 columns, float64):
two deltas that differ by more than rounding differ in the projection as well, without
building the reference's dense matrices."""
import torch

from . import flux, safetensors_io
from .safetensors_io import load_file

REL_TOL = 1e-4  # F32 sources; anything above is a different delta, not rounding
# 16-bit sources (the corpus writes FLUX.2 in BF16 only): an app that scales the factors in the
# file's dtype (diffusers' kohya converter folds alpha/rank into A and B) rounds each element by
# up to 2^-8 (BF16); a missing scale, a swap or a dropped part is off by far more.
REL_TOL_16BIT = 1e-2
_PROBES = 16
_X = {}


def _probe(cols):
    if cols not in _X:
        g = torch.Generator().manual_seed(cols)
        _X[cols] = torch.randn(cols, _PROBES, generator=g, dtype=torch.float64)
    return _X[cols]


def project(dense):
    dense = dense.reshape(dense.shape[0], -1)
    x = _probe(dense.shape[1])
    if dense.dtype != torch.float64:
        x = x.to(dense.dtype)
    return (dense @ x).double()


def reference(path):
    """{target: {"weight": projected delta, "bias": bias delta}} and the pass-through names."""
    sd = load_file(path)
    out, passthrough = {}, []
    for k in sd:
        if k.endswith(".lora_A.weight"):
            t = k[: -len(".lora_A.weight")]
            a, b = sd[k].double(), sd[t + ".lora_B.weight"].double()
            out.setdefault(t, {})["weight"] = b @ (a @ _probe(a.shape[1]))
        elif k.endswith(".lora_B.bias"):
            out.setdefault(k[: -len(".lora_B.bias")], {})["bias"] = sd[k].double()
        elif k.endswith(".diff"):
            out.setdefault(k[: -len(".diff")], {})["weight"] = project(sd[k])
        elif not k.endswith(".lora_B.weight"):
            passthrough.append(k)
    return out, passthrough


def tolerance(path):
    """REL_TOL_16BIT when some factor of the file is BF16 or F16, else REL_TOL."""
    header, _ = safetensors_io._read(path)
    wide = {v["dtype"] for k, v in header.items() if k != "__metadata__" and not k.endswith(".alpha")}
    return REL_TOL_16BIT if wide & {"BF16", "F16"} else REL_TOL


def _status(app, ref, tol):
    ref_n = float(ref.norm())
    app_n = float(app.norm())
    if ref_n == 0 and app_n == 0:
        return None, 0.0
    if ref_n == 0:
        return "wrong", None
    if app_n == 0:
        return "missing", 1.0
    err = float((app - ref).norm()) / ref_n
    return ("exact" if err <= tol else "wrong"), err


def _rows(t, piece, a, r, rows, parts, tol):
    for b, e in parts(t, a.shape[0]):
        st, err = _status(a[b:e], r[b:e], tol)
        if st:
            rows.append({"target": t, "piece": piece, "rows": [b, e], "status": st, "rel_error": err})


def classify(app_deltas, ref, parts=flux.parts, tol=REL_TOL):
    """Per target and part: exact / missing / wrong (relative error), weight and bias.
    app_deltas: {target: {"weight": projected delta (rows x 16), "bias": tensor}}; parts(target,
    rows): the row ranges compared apart (flux.parts for FLUX.1)."""
    rows = []
    for t in sorted(set(ref) | set(app_deltas)):
        r, a = ref.get(t, {}), app_deltas.get(t, {})
        for piece in ("weight", "bias"):
            rv, av = r.get(piece), a.get(piece)
            if rv is None and av is None:
                continue
            if rv is not None and av is not None and rv.shape != av.shape:
                rows.append({"target": t, "piece": piece, "status": "wrong",
                             "error": f"shape {list(av.shape)} != {list(rv.shape)}"})
                continue
            like = rv if rv is not None else av
            rv = rv if rv is not None else torch.zeros_like(like, dtype=torch.float64)
            av = av.double() if av is not None else torch.zeros_like(like, dtype=torch.float64)
            _rows(t, piece, av, rv, rows, parts, tol)
    return rows
