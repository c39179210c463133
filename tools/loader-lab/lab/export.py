"""Turns one application's run (runner.py's output) into the committed measurement:
data/loaders/<profile>-<commit12>.json. Each measured file is recorded with what is needed to
rebuild it (tensor names, dtypes, shapes, metadata; the values are the test's own) and what the
application did: loads / drops / rejects, its exact error, and every target part it did not
apply exactly (missing, or wrong with its relative error).

FLUX.2 runs (records naming their family) go to data/loaders/<profile>-<commit12>-flux2.json;
each file's record names its family (and, where the app said, the model it detected or the
variant its probe found).

usage: python3 -m lab.export RESULT.json INPUTS.json PROFILE OUT_DIR"""
import json
import os
import sys

from . import safetensors_io

SCHEMA = "lora-verify.loader-measurement/1"


def spec(path):
    """The file's metadata, [name, dtype, shape] of every tensor, and the value of every scalar
    .alpha (a loader's scale depends on it; the test rebuilds the other values itself)."""
    header, _ = safetensors_io._read(path)
    meta = header.pop("__metadata__", None) or {}
    alphas = {}
    if any(k.endswith(".alpha") for k in header):
        tensors = safetensors_io.load_file(path)
        alphas = {k: float(v.reshape(-1)[0]) for k, v in sorted(tensors.items())
                  if k.endswith(".alpha") and v.numel() == 1}
    return meta, [[k, v["dtype"], v["shape"]] for k, v in sorted(header.items())], alphas


def main():
    result_path, inputs_path, profile, out_dir = sys.argv[1:5]
    res = json.load(open(result_path))
    inputs = json.load(open(inputs_path))
    origin = {i["name"]: i for i in inputs["inputs"] if "path" in i}
    for o in inputs["for_outputs"]:
        if "path" in o:
            origin[o["name"]] = dict(o, origin="for")
    files = []
    for rec in res["records"]:
        src = origin[rec["name"]]
        meta, tensors, alphas = spec(src["path"])
        entry = {"name": rec["name"], "origin": src.get("origin"), "metadata": meta, "tensors": tensors,
                 "stage": rec["stage"], "outcome": rec["outcome"]}
        if alphas:
            entry["alphas"] = alphas
        if src.get("origin") == "for":
            entry["source"] = src["source"]
            entry["convert"] = ["--for", src["app"], *src.get("options", [])]
        if rec.get("error"):
            entry["error"] = rec["error"]
        if rec.get("format"):
            entry["format"] = rec["format"]
        for k in ("family", "detected", "variant", "tolerance"):
            if k in rec:
                entry[k] = rec[k]
        if "parts" in rec:
            entry["parts_exact"] = sum(1 for p in rec["parts"] if p["status"] == "exact")
            entry["not_applied"] = [{k: p[k] for k in ("target", "piece", "rows", "status") if k in p}
                                    | ({"rel_error": round(p["rel_error"], 6)} if p.get("rel_error") not in (None, 1.0) else {})
                                    for p in rec["parts"] if p["status"] != "exact"]
            entry["text_encoders_not_applied"] = sorted(k for k, v in rec["text_encoders"].items() if v != "applied")
            entry["text_encoders_applied"] = sorted(k for k, v in rec["text_encoders"].items() if v == "applied")
        warnings = [m["message"] for m in rec.get("messages", []) if m["level"] in ("warning", "error")]
        if warnings:
            entry["warnings"] = warnings[:8]
        files.append(entry)
    refused = [{"name": o["name"], "source": o["source"], "exit": o["exit"], "message": o["message"],
                "convert": ["--for", o["app"], *o.get("options", [])]}
               for o in inputs["for_outputs"] if o["app"] == profile and "path" not in o]
    out = {"schema": SCHEMA, "profile": profile, "app": res["app"], "commit": res["commit"],
           "measured_with": "tools/loader-lab (run.sh)", "runs": res["runs"], "stubs": res["stubs"],
           "empty_packages": res.get("empty_packages", {}), "seconds": res["seconds"],
           "files": files, "refused_for_outputs": refused}
    os.makedirs(out_dir, exist_ok=True)
    flux2 = any("family" in r for r in res["records"])
    path = os.path.join(out_dir, f"{profile}-{res['commit'][:12]}{'-flux2' if flux2 else ''}.json")
    with open(path + ".tmp", "w") as f:
        json.dump(out, f, indent=0, separators=(",", ":"))
        f.write("\n")
    os.replace(path + ".tmp", path)
    print(path)


if __name__ == "__main__":
    main()
