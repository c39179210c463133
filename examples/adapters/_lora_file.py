"""Shared by the adapters (protocol: README.md here): the app set-up through lora-verify's
loader lab (tools/loader-lab), and the output file — the patches an app applies to FLUX.1,
written under BFL names that `lora-verify compare` reads.

Exit codes: 1 the app raised (its exception is the last line of stderr), 3 a patch the
protocol cannot express (ExpressError), 64 usage or an unset app checkout variable.
"""
import importlib
import os
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
LAB = os.path.normpath(os.path.join(HERE, "..", "..", "tools", "loader-lab"))


class ExpressError(Exception):
    """A patch the protocol cannot express (LoKr, LoHa, DoRA, a LoCon mid, a split that is not along rows)."""


def fail(message, code):
    sys.stderr.write(message.rstrip("\n") + "\n")
    sys.exit(code)


def setup(app, env, usage):
    """Checks the command line, imports the lab's runner for `app` (its stubs for what the app's
    loading code imports but does not call) and imports the app from the checkout $env names.
    Returns (the runner module, IN, OUT)."""
    if len(sys.argv) != 3:
        fail(usage, 64)
    app_dir = os.environ.get(env)
    if not app_dir:
        fail(f"{env} is not set: it names the {app} checkout this adapter runs (see README.md)", 64)
    if not os.path.isdir(app_dir):
        fail(f"{env}={app_dir}: not a directory", 64)
    sys.path.insert(0, LAB)
    from lab import safetensors_io

    safetensors_io.install()  # Debian has no python3-safetensors; a no-op where it is installed
    import torch

    torch.set_num_threads(1)
    runner = importlib.import_module(f"lab.apps.{app}")
    runner.setup(os.path.abspath(app_dir))
    return runner, sys.argv[1], sys.argv[2]


def run(main, *args):
    """main(*args); an ExpressError ends with exit 3, anything the app raised with exit 1, its
    exception on one line last on stderr (the matrix cell's reason)."""
    try:
        main(*args)
    except ExpressError as e:
        fail(f"ExpressError: {e}", 3)
    except Exception as e:  # noqa: BLE001 — the app's own exception: the file is rejected
        traceback.print_exc()
        fail(" ".join(f"{type(e).__name__}: {e}".split()), 1)


def flux1_shapes():
    """BFL target -> (rows, cols) of FLUX.1 [dev] (the lab's stand-in tree)."""
    from lab import flux

    return flux.flux1_linears()


class BflLora:
    """Deltas per BFL target, each on rows [begin, end): low-rank (up @ down, scale folded),
    dense, and bias. Parts on the same rows add up, as the apps add them to the weight."""

    def __init__(self, shapes):
        self.shapes = shapes  # target -> (rows, cols)
        self.low_rank, self.dense, self.bias = {}, {}, {}

    def _rows(self, target, begin, n):
        if target not in self.shapes:
            raise ExpressError(f"{target}: not a FLUX.1 linear")
        rows = self.shapes[target][0]
        if begin < 0 or begin + n > rows:
            raise ExpressError(f"{target}: rows [{begin}, {begin + n}) outside its {rows} rows")

    def add(self, target, up, down, scale=1.0, begin=0, row_fn=None):
        """up @ down * scale on rows [begin, begin + up rows); row_fn: a row permutation the app
        applies to the delta (ComfyUI's norm_out half swap), applied to up's rows."""
        import torch

        up = up.detach().to(torch.float32).reshape(up.shape[0], -1) * float(scale)
        down = down.detach().to(torch.float32).reshape(down.shape[0], -1)
        if up.shape[1] != down.shape[0]:
            raise ExpressError(f"{target}: up {tuple(up.shape)} and down {tuple(down.shape)} ranks differ")
        up = row_fn(up) if row_fn is not None else up
        self._rows(target, begin, up.shape[0])
        self.low_rank.setdefault(target, []).append((begin, up, down))

    def add_dense(self, target, delta, begin=0, row_fn=None):
        import torch

        delta = delta.detach().to(torch.float32).reshape(delta.shape[0], -1)
        delta = row_fn(delta) if row_fn is not None else delta
        self._rows(target, begin, delta.shape[0])
        self.dense.setdefault(target, []).append((begin, delta))

    def add_bias(self, target, bias, begin=0, row_fn=None):
        """A bias delta on rows [begin, begin + len): each split part (q, k, v) on its own rows."""
        import torch

        bias = bias.detach().to(torch.float32).reshape(-1)
        bias = row_fn(bias) if row_fn is not None else bias
        self._rows(target, begin, bias.shape[0])
        self.bias.setdefault(target, []).append((begin, bias))

    def tensors(self):
        import torch

        out = {}
        for target in sorted(set(self.low_rank) | set(self.dense)):
            rows, cols = self.shapes[target]
            parts = self.low_rank.get(target, [])
            if target in self.dense:  # any dense part: the whole delta is written dense
                full = torch.zeros(rows, cols)
                for begin, up, down in parts:
                    full[begin:begin + up.shape[0]] += up @ down
                for begin, delta in self.dense[target]:
                    full[begin:begin + delta.shape[0]] += delta
                out[target + ".diff"] = full
                continue
            rank = sum(down.shape[0] for _, _, down in parts)
            b, col = torch.zeros(rows, rank), 0
            for begin, up, down in parts:
                b[begin:begin + up.shape[0], col:col + down.shape[0]] = up
                col += down.shape[0]
            out[target + ".lora_A.weight"] = torch.cat([down for _, _, down in parts]).contiguous()
            out[target + ".lora_B.weight"] = b
        for target, parts in sorted(self.bias.items()):
            full = torch.zeros(self.shapes[target][0])
            for begin, bias in parts:
                full[begin:begin + bias.shape[0]] += bias
            out[target + ".diff_b"] = full  # diff_b: never scaled, with or without factors
        return out

    def write(self, path):
        """The file (empty when the app applies nothing: every module then reads as missing)."""
        from safetensors.torch import save_file

        save_file(self.tensors(), path)
