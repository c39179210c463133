"""Builds the measured inputs with lora-verify: the corpus's FLUX.1 F32 variants, samples in
every dialect (pruned to block 0 of each kind, with and without the top-level modules), each
one's reference (`convert --style bfl`) and every `convert --for APP` output.

With --family flux2: the corpus's FLUX.2 variants of every family (dev, klein 9B, klein 4B; the
corpus writes them in BF16 only) and samples of each family (F32) in every dialect lora-verify
writes for FLUX.2, pruned the same way; references in F32; `--for` outputs, and where `--for`
refuses an unestablished verdict, the `--allow-unknown` output it advises.

usage: python3 -m lab.prepare LORA_VERIFY WORKDIR APP [APP ...] [--family flux2]
Writes WORKDIR/jobs-APP.json and WORKDIR/inputs.json (every file with its origin and, for the
--for outputs, convert's exit code and message); with --family flux2 jobs-APP-flux2.json and
inputs-flux2.json."""
import json
import os
import re
import subprocess
import sys

from . import flux2, safetensors_io

DIALECTS = ["diffusers", "diffusers-old", "fal", "onetrainer", "kohya", "comfy", "ai-toolkit", "bfl",
            "onetrainer-bfl", "xlabs"]
OPTIONS = {"plain": [], "no-proj-mlp": ["--no-proj-mlp"], "bias": ["--bias"], "alpha": ["--alpha", "8"]}
# Block modules kept: the attention projections, the text MLP's input (its OneTrainer name is one
# a loader fails on) and the single blocks' linear1/linear2. The modulation and other MLP modules
# are block modules of the same kind (no loader treats them apart) and cost most of the dense
# work; they are left out to keep a full measurement short.
_HEAVY = re.compile(r"(_mod[._]lin|img_mlp|txt_mlp[._]2|modulation[._]lin|norm1[._]linear|norm1_context|ff[._]net|"
                    r"ff_context[._]net[._]2|[._]norm[._]linear)")
# FLUX.2: the image MLP's input (ff.linear_in; InvokeAI's FLUX.2 detection reads it) stays, the
# other MLP modules go.
_HEAVY2 = re.compile(r"(img_mlp[._]2|txt_mlp|ff[._]linear_out|ff_context[._]linear)")
FLUX2_DIALECTS = ["diffusers", "fal", "kohya", "comfy", "ai-toolkit", "bfl"]
FLUX2_OPTIONS = {"plain": [], "alpha": ["--alpha", "8"]}
_BLOCK = re.compile(r"(double_blocks|single_blocks|transformer_blocks|single_transformer_blocks)[._](\d+)[._]")


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p.returncode, (p.stderr.strip().splitlines() or [""])[-1][:400]


def prune(path, blocks_only, heavy=_HEAVY):
    """Keep block 0 of every block kind (and, unless blocks_only, every non-block tensor)."""
    sd = safetensors_io.load_file(path)
    meta = safetensors_io.read_metadata(path)
    keep = {}
    for k, v in sd.items():
        m = _BLOCK.search(k)
        if m and (int(m.group(2)) != 0 or heavy.search(k)):
            continue
        if m or not blocks_only:
            keep[k] = v
    safetensors_io.save_file(keep, path, meta or None)


def samples(lv, out):
    made = []
    for d in DIALECTS:
        for opt, args in OPTIONS.items():
            for scope in ("full", "blocks"):
                name = f"sample-{d}-{opt}-{scope}"
                path = os.path.join(out, name + ".safetensors")
                rc, msg = run([lv, "sample", path, "--dialect", d, "--rank", "2", "--dtype", "F32", "--quiet", *args])
                if rc != 0 or not os.path.exists(path):
                    made.append({"name": name, "skipped": f"sample exit {rc}: {msg}"})
                    continue
                prune(path, scope == "blocks")
                made.append({"name": name, "path": path, "origin": "sample", "dialect": d,
                             "options": args, "scope": scope})
    return made


def corpus(lv, out, family="flux1"):
    """The corpus's variants of one family, pruned: FLUX.1 F32 (other dtypes repeat the F32 names),
    or every FLUX.2 variant (the corpus writes FLUX.2 in BF16 only)."""
    rc, msg = run([lv, "corpus", out])
    if rc != 0:
        sys.exit(f"lora-verify corpus failed: {msg}")
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    flux1 = family == "flux1"
    made = []
    for f in manifest["files"]:
        path = os.path.join(out, f["file"])
        if (f["model"] == "flux1" and f["dtype"] == "F32") if flux1 else f["model"] in flux2.FAMILIES:
            prune(path, False, _HEAVY if flux1 else _HEAVY2)  # block 0 of each kind: the same structure, less work
            made.append({"name": f["file"][: -len(".safetensors")], "path": path, "origin": "corpus",
                         "dialect": f["dialect"], "structure": f["structure"]} | ({} if flux1 else {"family": f["model"]}))
        else:
            os.remove(path)  # other families are measured apart
    return made


def check_shapes(path, family):
    """lora-verify's FLUX.2 tables and the stand-in agree: every BFL-named factor of a full
    sample has the stand-in's width (A's columns) and height (B's rows)."""
    linears = flux2.bfl_linears(family)
    for k, v in safetensors_io.load_file(path).items():
        module, _, role = k.removeprefix("diffusion_model.").partition(".lora_")
        if module not in linears:
            sys.exit(f"{path}: {k}: no module {module} in the {family} stand-in")
        rows, cols = linears[module]
        if (role == "A.weight" and v.shape[1] != cols) or (role == "B.weight" and v.shape[0] != rows):
            sys.exit(f"{path}: {k} {list(v.shape)} does not fit the {family} stand-in's {module} ({rows}, {cols})")


def samples_flux2(lv, out):
    made = []
    for family in flux2.FAMILIES:
        full = os.path.join(out, f"check-{family}.safetensors")
        rc, msg = run([lv, "sample", full, "--model", family, "--dialect", "ai-toolkit", "--rank", "2", "--dtype", "F32", "--quiet"])
        if rc != 0:
            sys.exit(f"lora-verify sample --model {family} failed: {msg}")
        check_shapes(full, family)
        os.remove(full)
        for d in FLUX2_DIALECTS:
            for opt, args in FLUX2_OPTIONS.items():
                for scope in ("full", "blocks"):
                    name = f"sample-{family}-{d}-{opt}-{scope}"
                    path = os.path.join(out, name + ".safetensors")
                    rc, msg = run([lv, "sample", path, "--model", family, "--dialect", d, "--rank", "2", "--dtype", "F32",
                                   "--quiet", *args])
                    if rc != 0 or not os.path.exists(path):
                        made.append({"name": name, "skipped": f"sample exit {rc}: {msg}"})
                        continue
                    prune(path, scope == "blocks", _HEAVY2)
                    made.append({"name": name, "path": path, "origin": "sample", "dialect": d, "family": family,
                                 "options": args, "scope": scope})
    return made


def job(name, path, i):
    out = dict(name=name, path=path, ref=i["ref"])
    if "family" in i:
        out["family"] = i["family"]
    return out


def for_output(lv, i, app, out, options, jobs, outputs):
    """`convert --for APP` (with `options`) of input i; measured when it is written."""
    rc, msg = run([lv, "convert", i["path"], "-o", out, "--for", app, *options, "--quiet"])
    tail = "".join("-" + o.removeprefix("--").split("-")[0] for o in options)  # -drop, -allow
    rec = {"name": f"{i['name']}.for-{app}{tail}", "source": i["name"], "app": app, "exit": rc, "message": msg}
    if options:
        rec["options"] = options
    if os.path.exists(out) and rc in (0, 2):
        rec["path"] = out
        jobs[app].append(job(rec["name"], out, i))
    outputs.append(rec)
    return rc, msg


def main():
    args = sys.argv[1:]
    family = "flux1"
    if "--family" in args:
        at = args.index("--family")
        family = args[at + 1]
        del args[at:at + 2]
    if family not in ("flux1", "flux2"):
        sys.exit(f"--family {family}: flux1 or flux2")
    lv, work, apps = args[0], args[1], args[2:]
    suffix = "" if family == "flux1" else "-" + family
    dirs = {k: os.path.join(work, k + suffix) for k in ("corpus", "samples", "refs", "for")}
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)
    if family == "flux1":
        inputs = corpus(lv, dirs["corpus"]) + samples(lv, dirs["samples"])
    else:
        inputs = corpus(lv, dirs["corpus"], "flux2") + samples_flux2(lv, dirs["samples"])
    measured = [i for i in inputs if "path" in i]
    for i in measured:
        ref = os.path.join(dirs["refs"], i["name"] + ".safetensors")
        dtype = [] if family == "flux1" else ["--dtype", "F32"]  # BF16 corpus files: the scale folded exactly
        rc, msg = run([lv, "convert", i["path"], "--style", "bfl", *dtype, "-o", ref, "--quiet"])
        i["ref"] = ref if rc in (0, 2) and os.path.exists(ref) else None
        if not i["ref"]:
            i["ref_error"] = f"exit {rc}: {msg}"
    jobs = {a: [job(i["name"], i["path"], i) for i in measured] for a in apps}
    outputs = []
    for app in apps:
        for i in measured:
            out = os.path.join(dirs["for"], f"{i['name']}.for-{app}.safetensors")
            rc, msg = for_output(lv, i, app, out, [], jobs, outputs)
            if rc == 65:  # refused: the command the refusal advises (--drop-unsupported) is measured too
                for_output(lv, i, app, out.replace(".safetensors", "-drop.safetensors"), ["--drop-unsupported"], jobs,
                           outputs)
            if rc == 65 and family != "flux1" and "--allow-unknown" in msg:
                for_output(lv, i, app, out.replace(".safetensors", "-allow.safetensors"), ["--allow-unknown"], jobs,
                           outputs)
    for app in apps:
        with open(os.path.join(work, f"jobs-{app}{suffix}.json"), "w") as f:
            json.dump(jobs[app], f, indent=1)
    with open(os.path.join(work, f"inputs{suffix}.json"), "w") as f:
        json.dump({"inputs": inputs, "for_outputs": outputs}, f, indent=1)
    print(f"{len(measured)} inputs, {sum(1 for o in outputs if 'path' in o)} --for outputs", file=sys.stderr)


if __name__ == "__main__":
    main()
