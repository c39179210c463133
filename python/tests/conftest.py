"""Fixtures of the lora_verify pytest suite: the CLI of this build and sample LoRAs."""
import os
import pathlib
import subprocess

import pytest

CLI = os.environ.get("LV_CLI_PATH", "lora-verify")
SOURCE_DIR = pathlib.Path(os.environ.get("LV_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))


def cli(*args, check=True):
    r = subprocess.run([CLI, *map(str, args)], stdin=subprocess.DEVNULL, capture_output=True, text=True)
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
