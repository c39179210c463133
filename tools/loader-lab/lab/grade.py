"""Grades the adapters of examples/adapters against what the apps did: runs
`lora-verify matrix --converter APP-app=ADAPTER` over the measured files and compares every cell
with the measurement of that file and app (runner output or committed data/loaders file).

usage: python3 -m lab.grade LORA_VERIFY --inputs INPUTS.json --measured APP=FILE [...]
                            --out GRADE.json [--work DIR] [--jobs N] [--for-outputs] [--only REGEX]

The adapters read the app checkouts from LV_INVOKEAI, LV_COMFYUI, LV_DIFFUSERS. A cell agrees when:
  measured rejects            -> the adapter failed with exit 1 and the app's exception (same text;
                                 where it is another one, the adapter is rerun with other Python hash
                                 seeds: an app that iterates a set raises what it meets first);
  measured loads/drops, every transformer part exact -> equivalent;
  otherwise                   -> not equivalent, as many modules as the measurement has targets
                                 with a part not applied exactly, the named ones among them.
A `convert --for APP` output is measured against its source: the targets where the file itself
differs from the source (what --drop-unsupported left out; `lora-verify compare`) are not expected
in its cell, which compares with the file. Text-encoder tensors are pass-through in lora-verify (never compared), so a file the app drops
only text-encoder tensors of is graded on its transformer. A failed cell with exit 3 (ExpressError)
is a protocol limit, not an agreement. Writes GRADE.json (each cell, its grade and why) and
prints the agreement table. The matrix runs the adapters with PYTHONHASHSEED=0."""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
ADAPTERS = os.path.join(REPO, "examples", "adapters")
APPS = {"invokeai": "LV_INVOKEAI", "comfyui": "LV_COMFYUI", "diffusers": "LV_DIFFUSERS"}
SCHEMA = "lora-verify.adapter-grade/1"
PROTOCOL_LIMIT = "exit code 3: ExpressError"


def measured(path):
    """{file name: {outcome, error, targets (with a part not applied exactly), te_missing}} and the
    app's commit, from a runner output or a committed data/loaders file."""
    data = json.load(open(path))
    out = {}
    for rec in data.get("records") or data.get("files"):
        parts = rec.get("not_applied") if "not_applied" in rec else [p for p in rec.get("parts", []) if p["status"] != "exact"]
        te = rec.get("text_encoders_not_applied")
        if te is None:
            te = [k for k, v in rec.get("text_encoders", {}).items() if v != "applied"]
        out[rec["name"]] = {"outcome": rec["outcome"], "error": rec.get("error"),
                            "targets": sorted({p["target"] for p in parts}), "te_missing": len(te)}
    return out, data["commit"]


def norm(text):
    return " ".join((text or "").split())


def same_error(got, want):
    """The cell's reason quotes the app's exception (lora-verify cuts a long line with '…', the
    runner keeps 600 characters)."""
    got, want = norm(got), norm(want)
    if got.endswith("…") and want.startswith(got[:-1].rstrip()):
        return True
    return got == want or (len(want) >= 590 and got.startswith(want))


def reproduce(app, path, want, seeds):
    """Reruns the adapter on `path` with PYTHONHASHSEED 1..seeds until it raises `want`: an app
    whose exception depends on the order of a Python set (diffusers' OneTrainer conversion
    iterates a set of module names) raises another one under another hash seed. Returns
    {"hash_seed", "error"} or None."""
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(1, seeds + 1):
            env = dict(os.environ, PYTHONHASHSEED=str(seed))
            p = subprocess.run([sys.executable, f"{ADAPTERS}/{app}_adapter.py", path, os.path.join(tmp, "out.safetensors")],
                               capture_output=True, text=True, env=env)
            lines = [line for line in p.stderr.splitlines() if line.strip()]
            if p.returncode == 1 and lines and same_error(lines[-1], want):
                return {"hash_seed": seed, "error": lines[-1]}
    return None


_COUNT = re.compile(r"not equivalent: (\d+) of \d+ modules")
_WORST = re.compile(r"([\w.]+) \((?:missing|different|invalid|extra)[^)]*\)")


def grade(cell, m):
    """(grade, why) of one cell against its measurement."""
    outcome, reason = cell["outcome"], cell.get("reason", "")
    if reason.startswith(PROTOCOL_LIMIT):
        return "protocol-limit", reason[len("exit code 3: "):]
    if m["outcome"] == "rejects":
        prefix = "exit code 1: "
        if outcome == "failed" and reason.startswith(prefix):
            if same_error(reason[len(prefix):], m["error"]):
                return "agree", "rejected with the app's exception"
            if cell.get("reproduced"):
                return "agree", (f"rejected; the app's exception depends on Python's hash seed: the measured one "
                                 f"with PYTHONHASHSEED={cell['reproduced']['hash_seed']}")
            return "disagree", f"rejected with another error: measured {norm(m['error'])!r}"
        return "disagree", f"measured rejects ({norm(m['error'])}), the adapter's cell is {outcome}"
    targets = sorted(set(m["targets"]) - set(cell.get("file_lacks", [])))
    if not targets:
        if outcome == "equivalent":
            why = "every part applied exactly"
            if cell.get("file_lacks"):
                why = (f"every part the file holds applied exactly (the {len(cell['file_lacks'])} targets it misses "
                       "against the source are what the file itself lacks)")
            if m["te_missing"]:
                why += f" (the app leaves {m['te_missing']} text-encoder tensors: pass-through, not compared)"
            return "agree", why
        return "disagree", f"measured {m['outcome']} with every transformer part exact, the cell is {outcome}"
    if outcome != "not equivalent":
        return "disagree", f"measured {m['outcome']} on {len(targets)} targets, the cell is {outcome}"
    count = _COUNT.search(reason)
    named = _WORST.findall(reason.split("; worst: ", 1)[-1]) if "; worst: " in reason else []
    if count and int(count.group(1)) == len(targets) and set(named) <= set(targets):
        return "agree", f"the same {len(targets)} targets not applied exactly"
    return "disagree", f"measured targets {targets}; the cell says {reason!r}"


def matrix(lv, apps, files, out_dir, jobs):
    """One `lora-verify matrix` run: a column per app's adapter, a row per file. Returns
    (compatibility.json, the command as run, seconds)."""
    cmd = [lv, "matrix", "--no-builtin", "--styles", "none", "--jobs", str(jobs), "--out", out_dir]
    for app in apps:
        cmd += ["--converter", f"{app}-app={sys.executable} {ADAPTERS}/{app}_adapter.py {{in}} {{out}}"]
    start = time.time()
    p = subprocess.run(cmd + files, capture_output=True, text=True, env=dict(os.environ, PYTHONHASHSEED="0"))
    if p.returncode not in (0, 1):
        sys.exit(f"lora-verify matrix exit {p.returncode}: {p.stderr.strip()[-800:]}")
    return json.load(open(os.path.join(out_dir, "compatibility.json"))), cmd, round(time.time() - start, 1)


def rows_of(inputs, only, for_app=None):
    """{name, path, dialect, origin, source (the input a --for output was converted from)} of the
    measured inputs, or of one app's --for outputs."""
    items = [i for i in inputs["inputs"] if "path" in i]
    by_name = {i["name"]: i for i in items}
    if for_app:
        items = [dict(o, dialect=by_name[o["source"]].get("dialect", "?"), origin="for", source=by_name[o["source"]]["path"])
                 for o in inputs["for_outputs"] if o["app"] == for_app and "path" in o]
    return [{"name": i["name"], "path": os.path.abspath(i["path"]), "dialect": i.get("dialect", "?"),
             "origin": i.get("origin", "?"), "source": i.get("source")}
            for i in items if not only or re.search(only, i["name"])]


def file_lacks(lv, row):
    """Targets where a --for output itself differs from its source (what `--drop-unsupported` left
    out): the measurement holds the app's deltas to the source, the matrix the adapter's to the file."""
    if not row["source"]:
        return []
    p = subprocess.run([lv, "compare", row["source"], row["path"], "--json", "-", "--quiet"], capture_output=True, text=True)
    return sorted(m["target"] for m in json.loads(p.stdout)["modules"] if m["status"] != "equivalent")


def grade_run(lv, result, rows, truth, seeds):
    cells = []
    by_path = {r["path"]: r for r in rows}
    for matrix_row in result["rows"]:
        row = by_path[matrix_row["variant"]]
        for matrix_cell in matrix_row["cells"]:
            app = matrix_cell["column"][: -len("-app")]
            m = truth[app].get(row["name"])
            if m is None or m["outcome"] == "harness-error":
                continue  # not measured for this app (another app's --for output)
            cell = {"outcome": matrix_cell["outcome"], "reason": matrix_cell.get("reason", ""), "hash_seed": 0}
            if m["targets"] and row["source"]:
                cell["file_lacks"] = file_lacks(lv, row)
            g, why = grade(cell, m)
            if g == "disagree" and m["outcome"] == "rejects" and cell["reason"].startswith("exit code 1: "):
                cell["reproduced"] = reproduce(app, row["path"], m["error"], seeds)
                g, why = grade(cell, m)
            cells.append({"file": row["name"], "dialect": row["dialect"], "origin": row["origin"], "app": app,
                          "measured": m, "cell": cell, "grade": g, "why": why})
    return cells


def table(cells):
    t = {}
    for c in cells:
        row = t.setdefault(c["app"], {}).setdefault(c["dialect"], {"agree": 0, "disagree": 0, "protocol-limit": 0})
        row[c["grade"]] += 1
    return t


def report(t, cells):
    for app, dialects in sorted(t.items()):
        total = {k: sum(d[k] for d in dialects.values()) for k in ("agree", "disagree", "protocol-limit")}
        print(f"{app}: {total['agree']} agree, {total['disagree']} disagree, {total['protocol-limit']} protocol limit")
        for dialect, n in sorted(dialects.items()):
            print(f"  {dialect:15} {n['agree']:4} {n['disagree']:4} {n['protocol-limit']:4}")
    for c in cells:
        if c["grade"] != "agree":
            print(f"{c['grade']}: {c['app']} / {c['file']}: {c['why']}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lora_verify")
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--measured", action="append", required=True, help="APP=FILE (runner output or data/loaders file)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", default="/tmp/lv-grade")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--for-outputs", action="store_true", help="also each app's `convert --for APP` outputs")
    ap.add_argument("--only", help="only files whose name matches this regular expression")
    ap.add_argument("--seeds", type=int, default=64, help="hash seeds to try on a rejection with another exception")
    args = ap.parse_args()
    truth, commits, sources = {}, {}, {}
    for spec in args.measured:
        app, _, path = spec.partition("=")
        if app not in APPS or not os.environ.get(APPS[app]):
            sys.exit(f"--measured {spec}: the app must be one of {sorted(APPS)} with {APPS.get(app, 'its variable')} set")
        truth[app], commits[app] = measured(path)
        sources[app] = os.path.basename(path)
    apps = sorted(truth)
    inputs = json.load(open(args.inputs))
    runs = [(apps, rows_of(inputs, args.only))]
    if args.for_outputs:
        runs += [([app], rows_of(inputs, args.only, app)) for app in apps]
    cells, commands, seconds = [], [], 0.0
    for i, (cols, rows) in enumerate(runs):
        result, cmd, secs = matrix(args.lora_verify, cols, [r["path"] for r in rows], os.path.join(args.work, f"run{i}"), args.jobs)
        cells += grade_run(args.lora_verify, result, rows, truth, args.seeds)
        commands.append({"columns": cols, "files": len(rows), "cells": len(rows) * len(cols), "seconds": secs,
                         "command": [os.path.basename(cmd[0])] + [a.replace(REPO + "/", "") for a in cmd[1:]]})
        seconds += secs
    version = subprocess.run([args.lora_verify, "--version"], capture_output=True, text=True).stdout.strip()
    out = {"schema": SCHEMA, "lora_verify": version, "python": sys.executable,
           "apps": {a: {"commit": commits[a], "measurement": sources[a], "adapter": f"examples/adapters/{a}_adapter.py"}
                    for a in apps},
           "runs": commands, "seconds": round(seconds, 1), "table": table(cells), "cells": cells}
    with open(args.out + ".tmp", "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    os.replace(args.out + ".tmp", args.out)
    report(out["table"], cells)
    print(f"{len(cells)} cells graded in {seconds:.0f} s; wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
