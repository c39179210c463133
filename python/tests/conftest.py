"""Fixtures of the lora_verify pytest suite: the CLI of this build, sample LoRAs and the
corpus of the matrix's variants. The suite runs against whatever `import lora_verify` finds:
build/python (ctest python.pytest) or a package pip installed into a fresh venv (ctest
python.installed_package, which sets LV_EXPECT_INSTALLED to the venv)."""
import json
import os
import pathlib
import subprocess

import pytest

CLI = os.environ.get("LV_CLI_PATH", "lora-verify")
SOURCE_DIR = pathlib.Path(os.environ.get("LV_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))


def cli(*args, check=True, env=None):
    r = subprocess.run([CLI, *map(str, args)], stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env)
    if check and r.returncode != 0:
        raise AssertionError(f"lora-verify {' '.join(map(str, args))} exited {r.returncode}: {r.stderr}")
    return r


@pytest.fixture(scope="session")
def samples(tmp_path_factory):
    """A diffusers sample, its conversion by lora-verify, and a broken conversion."""
    d = tmp_path_factory.mktemp("samples")
    src = d / "lora.safetensors"
    cli("sample", src, "--dialect", "diffusers", "--rank", "4")
    good = d / "lora.kohya.safetensors"
    cli("convert", src, "-o", good, "--style", "kohya")
    return {"dir": d, "source": src, "converted": good}


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """`lora-verify corpus DIR`: every built-in matrix variant as a file, and its manifest."""
    d = tmp_path_factory.mktemp("corpus")
    cli("corpus", d)
    manifest = json.loads((d / "manifest.json").read_text())
    assert manifest["count"] == len(manifest["files"]) > 0
    return d, manifest["files"]


def corpus_file(corpus, name):
    """(path, model) of one corpus file, by its file name."""
    d, files = corpus
    entry = next(f for f in files if f["file"] == name)
    return d / entry["file"], entry.get("model")
