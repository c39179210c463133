"""lora_verify: compare, verify and inspect from Python give the CLI's reports and errors."""
import json
import os
import pathlib
import struct
import subprocess
import sys

import pytest

import lora_verify
from conftest import CLI, SOURCE_DIR, cli


def test_compare_paths_gives_the_cli_report(samples):
    report = lora_verify.compare(str(samples["source"]), samples["converted"])  # str and PathLike
    assert report["verdict"] == "pass", report["summary_line"]
    assert report["schema"] == "lora-verify.report/1"
    r = cli("compare", samples["source"], samples["converted"], "--json", "-")
    assert json.loads(r.stdout) == report


def test_compare_accepts_bytes(samples):
    src = samples["source"].read_bytes()
    conv = samples["converted"].read_bytes()
    report = lora_verify.compare(src, conv)
    assert report["verdict"] == "pass"
    assert report["input"] == "(source bytes)"
    assert lora_verify.compare(samples["source"], conv)["verdict"] == "pass"


def test_compare_fails_a_wrong_conversion(samples, tmp_path):
    # The converted file with one up-projection's first value changed.
    data = bytearray(samples["converted"].read_bytes())
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    name = next(k for k in sorted(header) if k.endswith("lora_up.weight"))
    begin, _ = header[name]["data_offsets"]
    at = 8 + n + begin
    big = {"F32": struct.pack("<f", 1000.0), "F16": struct.pack("<e", 1000.0), "BF16": struct.pack("<f", 1000.0)[2:]}
    value = big[header[name]["dtype"]]
    data[at:at + len(value)] = value
    report = lora_verify.compare(samples["source"], bytes(data))
    assert report["verdict"] == "fail"
    assert any(m["status"] == "different" for m in report["modules"])


def test_verify_gives_the_cli_report(samples):
    report = lora_verify.verify(samples["source"])
    assert report["verdict"] == "pass"
    r = cli("verify", samples["source"], "--json", "-")
    assert json.loads(r.stdout) == report
    assert lora_verify.verify(samples["source"].read_bytes())["verdict"] == "pass"


def test_inspect(samples):
    info = lora_verify.inspect(samples["source"])
    assert info["valid"] is True
    assert info["dialect"] == "diffusers"
    r = cli("inspect", samples["source"], "--json")
    assert json.loads(r.stdout) == info


def test_errors_carry_the_cli_message_and_exit_code(samples, tmp_path):
    missing = tmp_path / "missing.safetensors"
    with pytest.raises(lora_verify.Error) as e:
        lora_verify.verify(missing)
    assert e.value.code == 66
    r = cli("verify", missing, check=False)
    assert r.returncode == 66
    assert r.stderr.strip() == "error: " + str(e.value)
    with pytest.raises(lora_verify.Error) as e:
        lora_verify.compare(b"not a safetensors file", samples["source"])
    assert e.value.code == 65
    assert "(source bytes)" in str(e.value)
    assert e.value.message == str(e.value)
    with pytest.raises(TypeError):
        lora_verify.inspect(42)


def test_error_is_an_exception_class():
    assert issubclass(lora_verify.Error, Exception)
    assert lora_verify.__version__


README_START = "<!-- pytest-snippet -->"


def test_the_readme_snippet_runs_as_written(tmp_path, samples):
    """The README's five-line pytest, run exactly as printed against a stand-in app."""
    readme = (SOURCE_DIR / "README.md").read_text()
    block = readme.split(README_START, 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert len([l for l in block.splitlines() if l.strip()]) == 5, block
    (tmp_path / "test_readme_snippet.py").write_text(block)
    # The app under test: its loader converts with lora-verify's CLI and returns the bytes.
    (tmp_path / "my_app.py").write_text(
        "import subprocess, tempfile, os\n"
        "def convert_lora(path):\n"
        "    with tempfile.TemporaryDirectory() as d:\n"
        "        out = os.path.join(d, 'out.safetensors')\n"
        f"        subprocess.run([{CLI!r}, 'convert', path, '-o', out], check=True, stdout=subprocess.DEVNULL)\n"
        "        return open(out, 'rb').read()\n")
    (tmp_path / "lora.safetensors").write_bytes(samples["source"].read_bytes())
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(lora_verify.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), package_parent]))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_readme_snippet.py"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 passed" in r.stdout
