"""Compares a measurement with what a lora-verify binary predicts, without building the C++ test:
every recorded file is rebuilt from its record (names, dtypes, shapes, metadata, .alpha values;
other values seeded, as tests/test_loader_measurements.cpp does), `lora-verify inspect FILE
--json` is run on it, and the profile's verdict (outcome, message, targets left out) is set
against what the application did. The family lora-verify detects is checked against the record's.

usage: python3 -m lab.check_cli LORA_VERIFY DATA.json [DATA.json ...] [--verbose]
Prints every disagreement and a tally per profile and dialect; exit 0 (1 when a file could not
be rebuilt or inspected)."""
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import zlib

import torch

from . import safetensors_io

_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def rebuild(entry, path):
    g = torch.Generator().manual_seed(zlib.crc32(entry["name"].encode()))
    alphas = entry.get("alphas", {})
    tensors = {}
    for name, dtype, shape in entry["tensors"]:
        if name.endswith(".alpha"):
            t = torch.full(shape, alphas.get(name, 4.0), dtype=torch.float64)
        else:
            t = torch.randn(shape, generator=g, dtype=torch.float64) * 0.05
        tensors[name] = t.to(_DTYPES[dtype])
    safetensors_io.save_file(tensors, path, entry.get("metadata") or None)


def quote_matches(quote, measured):
    """The profile's message (`<...>` placeholders, before " — " and " (triggered by") against
    the app's error, as the C++ test matches them."""
    quote = quote.split(" (triggered by ")[0].split(" — ")[0]
    if len(measured) >= 590:
        head = quote.split("<")[0]
        return measured.startswith(head)
    pattern = "".join("[\\s\\S]*" if part.startswith("<") else re.escape(part)
                      for part in re.split(r"(<[^>]*>)", quote))
    return re.fullmatch(pattern, measured) is not None


def inspect(lv, path):
    p = subprocess.run([lv, "inspect", path, "--json"], capture_output=True, text=True)
    if p.returncode not in (0, 2):
        raise RuntimeError(f"inspect exit {p.returncode}: {p.stderr.strip()[-300:]}")
    return json.loads(p.stdout)


def measured_outcome(entry):
    """The test's reading: a `drops` record with nothing left out of what the file holds loads."""
    outcome = entry["outcome"]
    targets = {n["target"] for n in entry.get("not_applied", [])}
    if outcome == "drops" and not targets and not entry.get("text_encoders_not_applied"):
        return "loads", targets
    return outcome, targets


def judge(entry, info, profile):
    """'' when the prediction agrees, else why not; 'unknown' when the profile does not say."""
    loader = next(x for x in info["loaders"] if x["loader"] == profile)["input"]
    predicted = loader["outcome"]
    measured, targets = measured_outcome(entry)
    if predicted == "unknown":
        return "unknown", loader
    if predicted != measured:
        return f"predicted {predicted} ({loader['message'][:160]}), measured {measured} {entry.get('error', '')[:200]}", loader
    if measured == "rejects" and not quote_matches(loader["message"], entry["error"]):
        return f"rejects, predicted \"{loader['message'][:160]}\", measured \"{entry['error'][:200]}\"", loader
    if measured == "drops":
        lost = {t["target"] for t in loader.get("lost", []) if t.get("weight", 0) > 0 or t.get("bias", 0) > 0}
        if lost != targets:
            return f"drops other targets: measured-only {sorted(targets - lost)}, predicted-only {sorted(lost - targets)}", loader
    return "", loader


def main():
    args = [a for a in sys.argv[1:] if a != "--verbose"]
    verbose = "--verbose" in sys.argv
    lv, data = args[0], args[1:]
    tally = collections.defaultdict(collections.Counter)
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for path in data:
            j = json.load(open(path))
            profile = j["profile"]
            for entry in j["files"]:
                if entry["outcome"] == "harness-error":
                    continue
                f = os.path.join(tmp, "rebuilt.safetensors")
                try:
                    rebuild(entry, f)
                    info = inspect(lv, f)
                except Exception as e:  # noqa: BLE001
                    print(f"{profile} / {entry['name']}: cannot check: {e}")
                    failed += 1
                    continue
                family = (info.get("model") or {}).get("family")
                if entry.get("family", "flux1") != family:
                    print(f"{profile} / {entry['name']}: lora-verify detects {family}, the record is {entry.get('family', 'flux1')}")
                why, loader = judge(entry, info, profile)
                cell = tally[(profile, info.get("dialect"))]
                cell["agree" if not why else "unknown" if why == "unknown" else "wrong"] += 1
                if why and (why != "unknown" or verbose):
                    print(f"{profile} / {entry['name']}: {why}")
    print("agreement (profile x dialect: agree / wrong / unknown)")
    total = collections.Counter()
    for key, c in sorted(tally.items(), key=lambda kv: str(kv[0])):
        print(f"  {key[0]} x {key[1]}: {c['agree']} / {c['wrong']} / {c['unknown']}")
        total.update(c)
    print(f"{sum(total.values())} files: {total['agree']} agree, {total['wrong']} wrong, {total['unknown']} unknown")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
