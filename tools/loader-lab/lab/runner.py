"""Runs one application's measurement over a list of files (one process per application).

usage: python3 -m lab.runner APP --app-dir DIR --jobs JOBS.json --out OUT.json
JOBS.json: [{"name": ..., "path": ..., "ref": reference file}, ...]. OUT.json: the records.
"""
import argparse
import importlib
import json
import logging
import os
import subprocess
import sys
import time
import traceback

from . import safetensors_io

safetensors_io.install()

import torch  # noqa: E402

torch.set_num_threads(int(os.environ.get("LV_LAB_THREADS", "1")))

from . import compare, flux, flux2  # noqa: E402


class Capture(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records = []

    def emit(self, record):
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001
            msg = str(record.msg)
        self.records.append({"level": record.levelname.lower(), "message": msg[:400]})


def error_text(exc):
    text = f"{type(exc).__name__}: {exc}".strip()
    return text[:600]


def app_commit(app_dir):
    marker = os.path.join(app_dir, ".commit")
    if os.path.exists(marker):
        with open(marker) as f:
            return f.read().strip()
    try:
        return subprocess.check_output(["git", "-C", app_dir, "rev-parse", "HEAD"], text=True).strip()
    except Exception:  # noqa: BLE001
        return "unknown"


def _module(name):
    for suffix in (".lora_down", ".lora_up", ".lora_A", ".lora_B", ".lora.down", ".lora.up", ".alpha", ".dora_scale"):
        if suffix in name:
            return name.split(suffix)[0]
    return name.rpartition(".")[0]


def te_status(passthrough, res):
    """Pass-through (text-encoder) tensors of the source, each applied or not by the app: the app
    names the source modules it patched ("text_encoder_sources"), or the text-encoder modules it
    patched ("text_encoder_modules", matched on the name's tail)."""
    sources = set(res.get("text_encoder_sources", []))
    norm = {m.replace(".", "_").replace("-", "_") for m in res.get("text_encoder_modules", [])}
    out = {}
    for name in passthrough:
        module = _module(name)
        key = module.replace(".", "_")
        hit = module in sources or any(key == m or key.endswith("_" + m) for m in norm)
        out[name] = "applied" if hit else "missing"
    return out


def outcome_of(rec):
    if rec["stage"] != "applied":
        return "rejects"
    bad = [p for p in rec["parts"] if p["status"] != "exact"]
    bad_te = [k for k, v in rec["text_encoders"].items() if v != "applied"]
    return "drops" if bad or bad_te else "loads"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("app")
    ap.add_argument("--app-dir", required=True)
    ap.add_argument("--jobs", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    capture = Capture()
    logging.getLogger().addHandler(capture)
    logging.getLogger().setLevel(logging.DEBUG)
    app = importlib.import_module(f"lab.apps.{args.app}")
    app.setup(os.path.abspath(args.app_dir))
    jobs = json.load(open(args.jobs))
    records = []
    if os.path.exists(args.out):  # resume: keep what an earlier, interrupted run measured
        with open(args.out) as f:
            records = [r for r in json.load(f)["records"] if r["outcome"] != "harness-error"]
    done = {r["name"] for r in records}
    t0 = time.time()
    for job in jobs:
        if job["name"] in done:
            continue
        capture.records.clear()
        start = time.time()
        ref, passthrough = compare.reference(job["ref"]) if job.get("ref") else ({}, [])
        family = job.get("family", "flux1")
        try:
            res = app.measure(job["path"]) if family == "flux1" else app.measure(job["path"], family=family)
        except Exception as e:  # noqa: BLE001 — a bug in the harness, not the app: record it loudly
            res = {"stage": "harness-error", "error": error_text(e), "trace": traceback.format_exc()[-1500:]}
        rec = {"name": job["name"], "stage": res["stage"], "error": res.get("error")}
        if family != "flux1":
            rec["family"] = family
        for k in ("detected", "variant"):
            if k in res:
                rec[k] = res[k]
        if "format" in res:
            rec["format"] = res["format"]
        if res["stage"] == "applied":
            parts = flux.parts if family == "flux1" else (lambda t, rows: flux2.parts(t, rows, family))
            tol = compare.tolerance(job["path"])
            rec["parts"] = compare.classify(res["deltas"], ref, parts, tol)
            if tol != compare.REL_TOL:
                rec["tolerance"] = tol
            rec["text_encoders"] = te_status(passthrough, res)
        rec["outcome"] = outcome_of(rec) if res["stage"] != "harness-error" else "harness-error"
        if res.get("trace"):
            rec["trace"] = res["trace"]
        rec["messages"] = [r for r in capture.records if r["level"] in ("warning", "error", "info")][:40]
        rec["seconds"] = round(time.time() - start, 3)
        records.append(rec)
        print(f"{args.app}: {job['name']}: {rec['outcome']} {rec.get('error') or ''}"[:220], file=sys.stderr)
        write(args, app, records, t0)
    write(args, app, records, t0)


def write(args, app, records, t0):
    out = {"app": args.app, "commit": app_commit(args.app_dir), "stubs": {k: v[0] for k, v in app.STUBS.items()},
           "empty_packages": getattr(app, "EMPTY_PACKAGES", {}),
           "runs": app.RUNS, "seconds": round(sum(r["seconds"] for r in records), 1),
           "records": records}
    with open(args.out + ".tmp", "w") as f:
        json.dump(out, f, indent=1)
    os.replace(args.out + ".tmp", args.out)


if __name__ == "__main__":
    main()
