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


class StandIn(torch.nn.Module):
    """The FLUX.1 module tree with parameters on the meta device (shapes only). `materialize`
    gives chosen modules real zero weights, so what a loader adds to them is its delta."""

    def __init__(self):
        super().__init__()
        for name, (o, i) in flux1_linears().items():
            self._put(name, torch.nn.Linear(i, o, bias=True, device="meta"))
        for name, shape in flux1_norms().items():
            mod_name, _, pname = name.rpartition(".")
            mod = torch.nn.Module()
            mod.register_parameter(pname, torch.nn.Parameter(torch.empty(shape, device="meta")))
            self._put(mod_name, mod)

    def _put(self, dotted, module):
        parent = self
        names = dotted.split(".")
        for n in names[:-1]:
            if not hasattr(parent, n):
                parent.add_module(n, torch.nn.Module())
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
        return True

    def deltas(self, project):
        """{module: {"weight": project(weight), "bias": bias}} for materialized modules with a
        nonzero parameter (weights pass through `project`, see compare.py)."""
        out = {}
        for name, mod in self.named_modules():
            for pname, p in mod.named_parameters(recurse=False):
                if p.device.type == "meta":
                    continue
                v = p.detach()
                v = v.clone().double() if pname == "bias" or v.dim() == 1 else project(v)
                if bool(torch.any(v != 0)):
                    out.setdefault(name, {})[pname if pname == "bias" else "weight"] = v
        return out
