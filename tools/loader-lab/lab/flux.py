"""Stand-in FLUX module shapes (no weights): the BFL module tree of FLUX.1 [dev], each Linear
as (out, in), and the row ranges of the parts of fused targets."""
import torch

HIDDEN, MLP, DOUBLE, SINGLE = 3072, 12288, 19, 38


def flux1_linears():
    h, m = HIDDEN, MLP
    out = {
        "img_in": (h, 64), "txt_in": (h, 4096),
        "time_in.in_layer": (h, 256), "time_in.out_layer": (h, h),
        "vector_in.in_layer": (h, 768), "vector_in.out_layer": (h, h),
        "guidance_in.in_layer": (h, 256), "guidance_in.out_layer": (h, h),
        "final_layer.linear": (64, h), "final_layer.adaLN_modulation.1": (2 * h, h),
    }
    for i in range(DOUBLE):
        for s in ("img", "txt"):
            p = f"double_blocks.{i}.{s}_"
            out.update({p + "mod.lin": (6 * h, h), p + "attn.qkv": (3 * h, h), p + "attn.proj": (h, h),
                        p + "mlp.0": (m, h), p + "mlp.2": (h, m)})
    for i in range(SINGLE):
        p = f"single_blocks.{i}."
        out.update({p + "linear1": (3 * h + m, h), p + "linear2": (h, h + m), p + "modulation.lin": (3 * h, h)})
    return out


def flux1_norms():
    out = {}
    for i in range(DOUBLE):
        for s in ("img", "txt"):
            for n in ("query_norm", "key_norm"):
                out[f"double_blocks.{i}.{s}_attn.norm.{n}.scale"] = (128,)
    for i in range(SINGLE):
        for n in ("query_norm", "key_norm"):
            out[f"single_blocks.{i}.norm.{n}.scale"] = (128,)
    return out


def parts(target, rows):
    """Row ranges [begin, end) of the parts of a target (q, k, v, mlp of fused targets)."""
    h = HIDDEN
    if target.endswith("attn.qkv"):
        return [(0, h), (h, 2 * h), (2 * h, 3 * h)]
    if target.endswith(".linear1"):
        return [(0, h), (h, 2 * h), (2 * h, 3 * h), (3 * h, rows)]
    return [(0, rows)]


class _Container(torch.nn.Module):
    """An inner node of the tree; indexable like the ModuleList it stands for."""

    def __getitem__(self, idx):
        return getattr(self, str(idx))


class StandIn(torch.nn.Module):
    """The FLUX.1 module tree (or another one: `linears`, `norms`, `bias`) with parameters on the
    meta device (shapes only). `materialize` gives chosen modules real zero weights, so what a
    loader adds to them is its delta."""

    def __init__(self, linears=None, norms=None, bias=True):
        super().__init__()
        for name, (o, i) in (flux1_linears() if linears is None else linears).items():
            self._put(name, torch.nn.Linear(i, o, bias=bias, device="meta"))
        for name, shape in (flux1_norms() if norms is None else norms).items():
            mod_name, _, pname = name.rpartition(".")
            mod = _Container()
            mod.register_parameter(pname, torch.nn.Parameter(torch.empty(shape, device="meta")))
            self._put(mod_name, mod)

    def _put(self, dotted, module):
        parent = self
        names = dotted.split(".")
        for n in names[:-1]:
            if not hasattr(parent, n):
                parent.add_module(n, _Container())
            parent = getattr(parent, n)
        parent.add_module(names[-1], module)

    def materialize(self, name):
        try:
            mod = self.get_submodule(name)
        except AttributeError:
            return False
        for pname, p in list(mod.named_parameters(recurse=False)):
            if p.device.type == "meta":
                setattr(mod, pname, torch.nn.Parameter(torch.zeros(p.shape, dtype=torch.float32)))
        self.__dict__.setdefault("_live", set()).add(name)
        return True

    def release(self, project, everything=False):
        """Projects every materialized parameter (as `deltas` does), keeps the projection and puts
        the parameter back on the meta device: large trees are patched module by module without
        holding every dense weight at once (`everything`: every module, not only those `materialize`
        gave weights). `deltas` adds what was released."""
        released = self.__dict__.setdefault("_released", {})
        live = self.__dict__.setdefault("_live", set())
        modules = self.named_modules() if everything else [(n, self.get_submodule(n)) for n in sorted(live)]
        for name, mod in modules:
            for pname, p in list(mod.named_parameters(recurse=False)):
                if p.device.type == "meta":
                    continue
                v = p.detach()
                v = v.clone().double() if pname == "bias" or v.dim() == 1 else project(v)
                key = pname if pname == "bias" else "weight"
                slot = released.setdefault(name, {})
                slot[key] = slot[key] + v if key in slot else v
                setattr(mod, pname, torch.nn.Parameter(torch.empty(p.shape, device="meta")))
        live.clear()

    def deltas(self, project):
        """{module: {"weight": project(weight), "bias": bias}} for materialized (or released)
        modules with a nonzero parameter (weights pass through `project`, see compare.py)."""
        self.release(project, everything=True)
        out = {}
        for name, pieces in self.__dict__.get("_released", {}).items():
            for key, v in pieces.items():
                if bool(torch.any(v != 0)):
                    out.setdefault(name, {})[key] = v
        return out


def diffusers_modules():
    """FLUX.1 diffusers module name -> (BFL target, row begin, row end, swap halves)."""
    h, m = HIDDEN, MLP
    out = {
        "x_embedder": ("img_in", 0, h, False), "context_embedder": ("txt_in", 0, h, False),
        "time_text_embed.timestep_embedder.linear_1": ("time_in.in_layer", 0, h, False),
        "time_text_embed.timestep_embedder.linear_2": ("time_in.out_layer", 0, h, False),
        "time_text_embed.text_embedder.linear_1": ("vector_in.in_layer", 0, h, False),
        "time_text_embed.text_embedder.linear_2": ("vector_in.out_layer", 0, h, False),
        "time_text_embed.guidance_embedder.linear_1": ("guidance_in.in_layer", 0, h, False),
        "time_text_embed.guidance_embedder.linear_2": ("guidance_in.out_layer", 0, h, False),
        "norm_out.linear": ("final_layer.adaLN_modulation.1", 0, 2 * h, True),
        "proj_out": ("final_layer.linear", 0, 64, False),
    }
    for i in range(DOUBLE):
        d, b = f"transformer_blocks.{i}.", f"double_blocks.{i}."
        out.update({
            d + "norm1.linear": (b + "img_mod.lin", 0, 6 * h, False),
            d + "norm1_context.linear": (b + "txt_mod.lin", 0, 6 * h, False),
            d + "attn.to_q": (b + "img_attn.qkv", 0, h, False), d + "attn.to_k": (b + "img_attn.qkv", h, 2 * h, False),
            d + "attn.to_v": (b + "img_attn.qkv", 2 * h, 3 * h, False),
            d + "attn.add_q_proj": (b + "txt_attn.qkv", 0, h, False),
            d + "attn.add_k_proj": (b + "txt_attn.qkv", h, 2 * h, False),
            d + "attn.add_v_proj": (b + "txt_attn.qkv", 2 * h, 3 * h, False),
            d + "attn.to_out.0": (b + "img_attn.proj", 0, h, False), d + "attn.to_add_out": (b + "txt_attn.proj", 0, h, False),
            d + "ff.net.0.proj": (b + "img_mlp.0", 0, m, False), d + "ff.net.2": (b + "img_mlp.2", 0, h, False),
            d + "ff_context.net.0.proj": (b + "txt_mlp.0", 0, m, False), d + "ff_context.net.2": (b + "txt_mlp.2", 0, h, False),
        })
    for i in range(SINGLE):
        s, b = f"single_transformer_blocks.{i}.", f"single_blocks.{i}."
        out.update({
            s + "attn.to_q": (b + "linear1", 0, h, False), s + "attn.to_k": (b + "linear1", h, 2 * h, False),
            s + "attn.to_v": (b + "linear1", 2 * h, 3 * h, False), s + "proj_mlp": (b + "linear1", 3 * h, 3 * h + m, False),
            s + "proj_out": (b + "linear2", 0, h, False), s + "norm.linear": (b + "modulation.lin", 0, 3 * h, False),
        })
    return out


def diffusers_shapes():
    """diffusers module -> (out, in), from the BFL shapes and the row ranges."""
    lin = flux1_linears()
    return {name: (e - b, lin[t][1]) for name, (t, b, e, _) in diffusers_modules().items()}
