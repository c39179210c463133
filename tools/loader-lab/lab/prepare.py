"""Builds the measured inputs with lora-verify: the corpus's FLUX.1 F32 variants, samples in
every dialect (pruned to block 0 of each kind, with and without the top-level modules), each
one's reference (`convert --style bfl`) and every `convert --for APP` output.

usage: python3 -m lab.prepare LORA_VERIFY WORKDIR APP [APP ...]
Writes WORKDIR/jobs-APP.json and WORKDIR/inputs.json (every file with its origin and, for the
--for outputs, convert's exit code and message)."""
import json
import os
import re
import subprocess
import sys

from . import safetensors_io

DIALECTS = ["diffusers", "diffusers-old", "fal", "onetrainer", "kohya", "comfy", "ai-toolkit", "bfl",
            "onetrainer-bfl", "xlabs"]
OPTIONS = {"plain": [], "no-proj-mlp": ["--no-proj-mlp"], "bias": ["--bias"], "alpha": ["--alpha", "8"]}
# Block modules kept: the attention projections, the text MLP's input (its OneTrainer name is one
# a loader fails on) and the single blocks' linear1/linear2. The modulation and other MLP modules
# are block modules of the same kind (no loader treats them apart) and cost most of the dense
# work; they are left out to keep a full measurement short.
_HEAVY = re.compile(r"(_mod[._]lin|img_mlp|txt_mlp[._]2|modulation[._]lin|norm1[._]linear|norm1_context|ff[._]net|"
                    r"ff_context[._]net[._]2|[._]norm[._]linear)")
_BLOCK = re.compile(r"(double_blocks|single_blocks|transformer_blocks|single_transformer_blocks)[._](\d+)[._]")


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p.returncode, (p.stderr.strip().splitlines() or [""])[-1][:400]


def prune(path, blocks_only):
    """Keep block 0 of every block kind (and, unless blocks_only, every non-block tensor)."""
    sd = safetensors_io.load_file(path)
    meta = safetensors_io.read_metadata(path)
    keep = {}
    for k, v in sd.items():
        m = _BLOCK.search(k)
        if m and (int(m.group(2)) != 0 or _HEAVY.search(k)):
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


def corpus(lv, out):
    rc, msg = run([lv, "corpus", out])
    if rc != 0:
        sys.exit(f"lora-verify corpus failed: {msg}")
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    made = []
    for f in manifest["files"]:
        path = os.path.join(out, f["file"])
        if f["model"] == "flux1" and f["dtype"] == "F32":
            prune(path, False)  # block 0 of each kind: the same structure, a quarter of the work
            made.append({"name": f["file"][: -len(".safetensors")], "path": path, "origin": "corpus",
                         "dialect": f["dialect"], "structure": f["structure"]})
        else:
            os.remove(path)  # other dtypes repeat the F32 names; other families are measured apart
    return made


def main():
    lv, work, apps = sys.argv[1], sys.argv[2], sys.argv[3:]
    dirs = {k: os.path.join(work, k) for k in ("corpus", "samples", "refs", "for")}
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)
    inputs = corpus(lv, dirs["corpus"]) + samples(lv, dirs["samples"])
    measured = [i for i in inputs if "path" in i]
    for i in measured:
        ref = os.path.join(dirs["refs"], i["name"] + ".safetensors")
        rc, msg = run([lv, "convert", i["path"], "--style", "bfl", "-o", ref, "--quiet"])
        i["ref"] = ref if rc in (0, 2) and os.path.exists(ref) else None
        if not i["ref"]:
            i["ref_error"] = f"exit {rc}: {msg}"
    jobs = {a: [dict(name=i["name"], path=i["path"], ref=i["ref"]) for i in measured] for a in apps}
    outputs = []
    for app in apps:
        for i in measured:
            out = os.path.join(dirs["for"], f"{i['name']}.for-{app}.safetensors")
            rc, msg = run([lv, "convert", i["path"], "-o", out, "--for", app, "--quiet"])
            rec = {"name": f"{i['name']}.for-{app}", "source": i["name"], "app": app, "exit": rc, "message": msg}
            if os.path.exists(out) and rc in (0, 2):
                rec["path"] = out
                jobs[app].append(dict(name=rec["name"], path=out, ref=i["ref"]))
            outputs.append(rec)
            if rc == 65:  # refused: the command the refusal advises (--drop-unsupported) is measured too
                out = out.replace(".safetensors", "-drop.safetensors")
                rc, msg = run([lv, "convert", i["path"], "-o", out, "--for", app, "--drop-unsupported", "--quiet"])
                rec = {"name": f"{i['name']}.for-{app}-drop", "source": i["name"], "app": app, "exit": rc,
                       "message": msg, "options": ["--drop-unsupported"]}
                if os.path.exists(out) and rc in (0, 2):
                    rec["path"] = out
                    jobs[app].append(dict(name=rec["name"], path=out, ref=i["ref"]))
                outputs.append(rec)
    for app in apps:
        with open(os.path.join(work, f"jobs-{app}.json"), "w") as f:
            json.dump(jobs[app], f, indent=1)
    with open(os.path.join(work, "inputs.json"), "w") as f:
        json.dump({"inputs": inputs, "for_outputs": outputs}, f, indent=1)
    print(f"{len(measured)} inputs, {sum(1 for o in outputs if 'path' in o)} --for outputs", file=sys.stderr)


if __name__ == "__main__":
    main()
