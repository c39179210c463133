"""Stand-in FLUX.2 module shapes (no weights), per family: the BFL module tree (what ComfyUI and
the reference files name) and the diffusers Flux2Transformer2DModel names (what diffusers and
InvokeAI patch), each diffusers module with its BFL target and rows.

The hyper-parameters are the confirmed ones of the FLUX.2 families (BFL flux2 `Flux2Params`,
diffusers' `get_flux2_transformer_config`, ai-toolkit's `Klein9BParams`/`Klein4BParams`: hidden
size, block counts, context width, guidance embedder; mlp ratio 3, 128 input channels, no bias
anywhere). They are written here, not read from lora-verify, so that a wrong lora-verify table
shows up as a mismatch (prepare.py checks lora-verify's samples against these shapes)."""
import torch

from . import flux

FAMILIES = {
    "flux2-dev": {"hidden": 6144, "double": 8, "single": 48, "context": 15360, "guidance": True},
    "flux2-klein-9b": {"hidden": 4096, "double": 8, "single": 24, "context": 12288, "guidance": False},
    "flux2-klein-4b": {"hidden": 3072, "double": 5, "single": 20, "context": 7680, "guidance": False},
}
IN_CHANNELS, TIME_CHANNELS, HEAD_DIM = 128, 256, 128


def _dims(family):
    f = FAMILIES[family]
    return f["hidden"], 3 * f["hidden"], f


def bfl_linears(family):
    """BFL module -> (out, in) of every Linear of the family."""
    h, m, f = _dims(family)
    out = {
        "img_in": (h, IN_CHANNELS), "txt_in": (h, f["context"]),
        "time_in.in_layer": (h, TIME_CHANNELS), "time_in.out_layer": (h, h),
        "double_stream_modulation_img.lin": (6 * h, h), "double_stream_modulation_txt.lin": (6 * h, h),
        "single_stream_modulation.lin": (3 * h, h),
        "final_layer.linear": (IN_CHANNELS, h), "final_layer.adaLN_modulation.1": (2 * h, h),
    }
    if f["guidance"]:
        out.update({"guidance_in.in_layer": (h, TIME_CHANNELS), "guidance_in.out_layer": (h, h)})
    for i in range(f["double"]):
        for s in ("img", "txt"):
            p = f"double_blocks.{i}.{s}_"
            out.update({p + "attn.qkv": (3 * h, h), p + "attn.proj": (h, h), p + "mlp.0": (2 * m, h), p + "mlp.2": (h, m)})
    for i in range(f["single"]):
        p = f"single_blocks.{i}."
        out.update({p + "linear1": (3 * h + 2 * m, h), p + "linear2": (h, h + m)})
    return out


def bfl_norms(family):
    f = FAMILIES[family]
    out = {}
    for i in range(f["double"]):
        for s in ("img", "txt"):
            for n in ("query_norm", "key_norm"):
                out[f"double_blocks.{i}.{s}_attn.norm.{n}.scale"] = (HEAD_DIM,)
    for i in range(f["single"]):
        for n in ("query_norm", "key_norm"):
            out[f"single_blocks.{i}.norm.{n}.scale"] = (HEAD_DIM,)
    return out


def parts(target, rows, family):
    """Row ranges [begin, end) of a target's parts: q, k, v of the attention qkv; else the whole
    (linear1 is one module in both namings)."""
    h = FAMILIES[family]["hidden"]
    if target.endswith("attn.qkv"):
        return [(0, h), (h, 2 * h), (2 * h, 3 * h)]
    return [(0, rows)]


def diffusers_modules(family):
    """Flux2Transformer2DModel module -> (BFL target, row begin, row end, halves swapped)."""
    h, m, f = _dims(family)
    out = {
        "x_embedder": ("img_in", 0, h, False), "context_embedder": ("txt_in", 0, h, False),
        "time_guidance_embed.timestep_embedder.linear_1": ("time_in.in_layer", 0, h, False),
        "time_guidance_embed.timestep_embedder.linear_2": ("time_in.out_layer", 0, h, False),
        "double_stream_modulation_img.linear": ("double_stream_modulation_img.lin", 0, 6 * h, False),
        "double_stream_modulation_txt.linear": ("double_stream_modulation_txt.lin", 0, 6 * h, False),
        "single_stream_modulation.linear": ("single_stream_modulation.lin", 0, 3 * h, False),
        "norm_out.linear": ("final_layer.adaLN_modulation.1", 0, 2 * h, True),
        "proj_out": ("final_layer.linear", 0, IN_CHANNELS, False),
    }
    if f["guidance"]:
        out.update({"time_guidance_embed.guidance_embedder.linear_1": ("guidance_in.in_layer", 0, h, False),
                    "time_guidance_embed.guidance_embedder.linear_2": ("guidance_in.out_layer", 0, h, False)})
    for i in range(f["double"]):
        d, b = f"transformer_blocks.{i}.", f"double_blocks.{i}."
        out.update({
            d + "attn.to_q": (b + "img_attn.qkv", 0, h, False), d + "attn.to_k": (b + "img_attn.qkv", h, 2 * h, False),
            d + "attn.to_v": (b + "img_attn.qkv", 2 * h, 3 * h, False),
            d + "attn.add_q_proj": (b + "txt_attn.qkv", 0, h, False),
            d + "attn.add_k_proj": (b + "txt_attn.qkv", h, 2 * h, False),
            d + "attn.add_v_proj": (b + "txt_attn.qkv", 2 * h, 3 * h, False),
            d + "attn.to_out.0": (b + "img_attn.proj", 0, h, False), d + "attn.to_add_out": (b + "txt_attn.proj", 0, h, False),
            d + "ff.linear_in": (b + "img_mlp.0", 0, 2 * m, False), d + "ff.linear_out": (b + "img_mlp.2", 0, h, False),
            d + "ff_context.linear_in": (b + "txt_mlp.0", 0, 2 * m, False),
            d + "ff_context.linear_out": (b + "txt_mlp.2", 0, h, False),
        })
    for i in range(f["single"]):
        s, b = f"single_transformer_blocks.{i}.", f"single_blocks.{i}."
        out.update({s + "attn.to_qkv_mlp_proj": (b + "linear1", 0, 3 * h + 2 * m, False),
                    s + "attn.to_out": (b + "linear2", 0, h, False)})
    return out


def diffusers_shapes(family):
    lin = bfl_linears(family)
    return {name: (e - b, lin[t][1]) for name, (t, b, e, _) in diffusers_modules(family).items()}


def diffusers_norms(family):
    """The attention RMSNorm scales of Flux2Transformer2DModel (not Linear)."""
    f = FAMILIES[family]
    out = {}
    for i in range(f["double"]):
        for n in ("norm_q", "norm_k", "norm_added_q", "norm_added_k"):
            out[f"transformer_blocks.{i}.attn.{n}.weight"] = (HEAD_DIM,)
    for i in range(f["single"]):
        for n in ("norm_q", "norm_k"):
            out[f"single_transformer_blocks.{i}.attn.{n}.weight"] = (HEAD_DIM,)
    return out


def bfl_standin(family):
    return flux.StandIn(bfl_linears(family), bfl_norms(family), bias=False)


def diffusers_standin(family):
    return flux.StandIn(diffusers_shapes(family), diffusers_norms(family), bias=False)


def to_bfl(deltas, family):
    """{diffusers module: {"weight": projected delta, "bias": bias}} -> the same per BFL target
    (parts placed on their rows, norm_out's halves swapped back)."""
    rows = bfl_linears(family)
    table = diffusers_modules(family)
    out = {}
    for mod, pieces in deltas.items():
        if mod not in table:
            out[mod] = pieces  # not a Linear of the model (a norm scale): compared under its own name
            continue
        target, rb, re_, swap = table[mod]
        for piece, v in pieces.items():
            shape = (rows[target][0], v.shape[1]) if piece == "weight" else (rows[target][0],)
            full = out.setdefault(target, {}).setdefault(piece, torch.zeros(shape, dtype=torch.float64))
            if swap:
                half = v.shape[0] // 2
                v = torch.cat([v[half:], v[:half]])
            full[rb:re_] += v
    return out
