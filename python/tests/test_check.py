"""lora_verify.check and lora_verify.convert: one app's verdict from the CLI's profile table,
and the file that app loads from the CLI's `convert --for` pipeline."""
import ast
import concurrent.futures
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

import lora_verify
from conftest import CLI, SOURCE_DIR, cli, corpus_file

REJECTED_BY_INVOKEAI = "diffusers-complete-bf16.safetensors"  # rejects as it is; its form loads
BIAS_FILE = "diffusers-bias-bf16.safetensors"  # InvokeAI drops bias deltas in every form it reads


def cli_loaders(path, model):
    args = ["inspect", path, "--json"] + (["--model", model] if model else [])
    return {row["loader"]: row for row in json.loads(cli(*args).stdout)["loaders"]}


def test_check_agrees_with_the_cli_on_every_corpus_file(corpus):
    d, files = corpus
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        rows = list(pool.map(lambda f: cli_loaders(d / f["file"], f.get("model")), files))
    compared = 0
    for entry, by_app in zip(files, rows):
        assert sorted(by_app) == sorted(lora_verify.APPS), entry["file"]
        manifest = {row["loader"]: row for row in entry["loaders"]}
        for app in lora_verify.APPS:
            r = lora_verify.check(d / entry["file"], app, model=entry.get("model"))
            seen, where = by_app[app]["input"], (entry["file"], app)
            assert (r.app, r.app_display, r.established) == (app, by_app[app]["display"], by_app[app]["established"]), where
            assert (r.outcome, r.message) == (seen["outcome"], seen["message"]), where
            assert list(r.tensors) == seen["dropped"], where
            assert [(l.target, l.weight, l.bias) for l in r.lost] == [(l["target"], l["weight"], l["bias"]) for l in seen["lost"]], where
            assert list(r.unknown) == seen["unknown"], where
            assert r.fix == by_app[app].get("advice"), where
            assert r.loads == (seen["outcome"] == "loads"), where
            # The form convert --for writes, as `lora-verify corpus` lists it.
            assert (r.form or "-") == manifest[app]["form"], where
            assert r.convertible == (manifest[app]["form_outcome"] == "loads"), where
            assert (r.fix_call is None) == (r.loads or "command" not in by_app[app]), where
            compared += 1
    assert compared == len(files) * len(lora_verify.APPS)


def test_check_reads_paths_pathlike_and_bytes(corpus):
    path, model = corpus_file(corpus, REJECTED_BY_INVOKEAI)
    by_path = lora_verify.check(str(path), "invokeai", model=model)
    by_pathlike = lora_verify.check(path, "invokeai", model=model)
    by_bytes = lora_verify.check(path.read_bytes(), "invokeai", model=model)
    assert by_path == by_pathlike
    assert by_path.outcome == by_bytes.outcome == "rejects"
    assert by_bytes.tensors == by_path.tensors and by_bytes.message == by_path.message
    assert by_path.convertible and by_path.form == "peft"
    assert by_path.fix_call == f"lora_verify.convert({str(path)!r}, {REJECTED_BY_INVOKEAI.replace('.safetensors', '.invokeai.safetensors')!r}, for_app='invokeai', model='flux1')"
    assert by_bytes.fix_call.startswith("lora_verify.convert(SOURCE_BYTES, ")
    assert lora_verify.check(path, "comfyui", model=model).loads


def test_check_errors_carry_the_cli_codes(corpus, tmp_path):
    path, _ = corpus_file(corpus, REJECTED_BY_INVOKEAI)
    with pytest.raises(lora_verify.Error) as e:
        lora_verify.check(path, "no-such-app")
    assert e.value.code == 64 and "choose one of invokeai" in e.value.message
    with pytest.raises(lora_verify.Error) as e:
        lora_verify.check(path, "invokeai", model="no-such-model")
    assert e.value.code == 64 and "flux1" in e.value.message
    missing = tmp_path / "missing.safetensors"
    with pytest.raises(lora_verify.Error) as e:
        lora_verify.check(missing, "invokeai")
    r = cli("inspect", missing, check=False)
    assert (e.value.code, "error: " + e.value.message) == (r.returncode, r.stderr.strip()) == (66, r.stderr.strip())
    # A valid safetensors file that holds no LoRA: the CLI's verify refuses it with 65.
    header = json.dumps({"weight": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    not_a_lora = tmp_path / "not-a-lora.safetensors"
    not_a_lora.write_bytes(len(header).to_bytes(8, "little") + header + b"\0\0\0\0")
    with pytest.raises(lora_verify.Error) as e:
        lora_verify.check(not_a_lora, "invokeai")
    r = cli(not_a_lora, check=False)
    assert e.value.code == r.returncode == 65
    with pytest.raises(TypeError):
        lora_verify.check(42, "invokeai")


def test_convert_writes_the_file_the_app_loads_as_the_cli_does(corpus, tmp_path):
    path, model = corpus_file(corpus, REJECTED_BY_INVOKEAI)
    out = tmp_path / "for-invokeai.safetensors"
    result = lora_verify.convert(path, out, for_app="invokeai", model=model)
    assert (result.output, result.app, result.outcome, result.dropped) == (str(out), "invokeai", "loads", ())
    assert result.report["verdict"] == "pass" and result.report["for_loader"] == "invokeai"
    assert lora_verify.check(out, "invokeai").loads
    by_cli = tmp_path / "by-cli.safetensors"
    cli("convert", path, "-o", by_cli, "--for", "invokeai", "--model", model)
    assert out.read_bytes() == by_cli.read_bytes()
    # bytes in, a path out (the header's record of the source names "(source bytes)")
    again = tmp_path / "from-bytes.safetensors"
    assert lora_verify.convert(path.read_bytes(), again, for_app="invokeai", model=model).outcome == "loads"
    assert lora_verify.compare(path, again)["verdict"] == "pass"


def test_convert_refuses_or_drops_what_the_app_cannot_take(corpus, tmp_path):
    path, model = corpus_file(corpus, BIAS_FILE)
    verdict = lora_verify.check(path, "invokeai", model=model)
    assert not verdict.convertible and "drop_unsupported=True" in verdict.fix_call and "--drop-unsupported" in verdict.fix
    out = tmp_path / "out.safetensors"
    with pytest.raises(lora_verify.Error) as e:
        lora_verify.convert(path, out, for_app="invokeai", model=model)
    assert e.value.code == 65 and "--drop-unsupported" in e.value.message
    assert not out.exists()
    result = lora_verify.convert(path, out, for_app="invokeai", drop_unsupported=True, model=model)
    assert result.outcome == "loads" and result.dropped
    assert all(t.endswith("bias") for t in result.dropped)
    assert len(result.dropped) == len(result.report["dropped_for_loader"])
    assert lora_verify.check(out, "invokeai").loads


def test_convert_errors_carry_the_cli_codes(corpus, tmp_path):
    path, model = corpus_file(corpus, REJECTED_BY_INVOKEAI)
    copy = tmp_path / "in.safetensors"
    shutil.copyfile(path, copy)
    before = copy.read_bytes()
    for kwargs, code in (({"for_app": "nope"}, 64), ({"for_app": "comfyui", "threads": 0}, 64)):
        with pytest.raises(lora_verify.Error) as e:
            lora_verify.convert(copy, tmp_path / "x.safetensors", model=model, **kwargs)
        assert e.value.code == code
    with pytest.raises(lora_verify.Error) as e:
        lora_verify.convert(copy, copy, for_app="comfyui", model=model)
    r = cli("convert", copy, "-o", copy, "--for", "comfyui", "--model", model, check=False)
    assert (e.value.code, "error: " + e.value.message) == (r.returncode, r.stderr.strip())
    assert copy.read_bytes() == before
    with pytest.raises(lora_verify.Error) as e:
        lora_verify.convert(copy, tmp_path / "no-such-dir" / "x.safetensors", for_app="comfyui", model=model)
    assert e.value.code == 73


def test_every_fix_call_gives_a_file_the_app_loads(corpus, tmp_path, monkeypatch):
    """The advice as a Python call, run: per app, the first flux1 BF16 corpus files it does
    not load whose form it loads completely (or loads once the named tensors are left out)."""
    d, files = corpus
    monkeypatch.chdir(tmp_path)
    ran = 0
    for app in lora_verify.APPS:
        picked = 0
        for entry in files:
            if entry.get("model") != "flux1" or entry["dtype"] != "BF16" or picked == 2:
                continue
            r = lora_verify.check(d / entry["file"], app, model="flux1")
            if r.loads or r.fix_call is None:
                continue
            drop = "drop_unsupported=True" in r.fix_call
            if not r.convertible and not drop:
                continue  # the form's verdict is unknown: nothing to assert it loads
            result = eval(r.fix_call, {"lora_verify": lora_verify})  # noqa: S307 - our own advice
            assert result.report["verdict"] == "pass", r.fix_call
            after = lora_verify.check(result.output, app, model="flux1")
            assert after.loads, (r.fix_call, after.outcome, after.message)
            assert bool(result.dropped) == drop, r.fix_call
            os.remove(result.output)
            picked += 1
            ran += 1
    assert ran >= 8


INSTALL_START = "<!-- install-snippet -->"


def install_snippet():
    readme = (SOURCE_DIR / "README.md").read_text()
    return readme.split(INSTALL_START, 1)[1].split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_install_step_runs_as_written(corpus, tmp_path):
    """The README's five lines for an app's model-install step, run exactly as printed:
    a file InvokeAI rejects becomes the converted file it loads; one it cannot load
    completely stops the install with the reason; one it loads passes unchanged."""
    block = install_snippet()
    assert len([l for l in block.splitlines() if l.strip()]) == 5, block
    code = compile(block, "README.md", "exec")

    class InstallError(Exception):
        pass

    def install(source):
        target = tmp_path / source.name
        if source != target:
            shutil.copyfile(source, target)
        scope = {"lora_verify": lora_verify, "path": str(target), "InstallError": InstallError}
        exec(code, scope)  # noqa: S102 - the README's text
        return scope["path"]

    converted = install(corpus_file(corpus, REJECTED_BY_INVOKEAI)[0])
    assert converted == str(tmp_path / REJECTED_BY_INVOKEAI.replace(".safetensors", ".invokeai.safetensors"))
    assert lora_verify.check(converted, "invokeai").loads
    assert install(pathlib.Path(converted)) == converted  # already loads: unchanged
    with pytest.raises(InstallError) as e:
        install(corpus_file(corpus, BIAS_FILE)[0])
    assert "InvokeAI rejects" in str(e.value) and "--drop-unsupported" in str(e.value)


def test_cpu_level_and_its_cap(samples):
    levels = ("x86-64", "x86-64-v3", "x86-64-v4", "generic")
    assert lora_verify.cpu_level() in levels
    code = "import lora_verify; print(lora_verify.cpu_level())"
    capped = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, LV_CPU_LEVEL="x86-64"),
                            capture_output=True, text=True, check=True).stdout.strip()
    assert capped in ("x86-64", "generic")


def test_every_cpu_level_gives_the_same_verdicts(samples, tmp_path):
    """The numerical path (an F32 conversion: no bit-exact shortcut) at each level the CPU
    has: the same verdicts, relative errors equal to rounding."""
    f32 = tmp_path / "f32.safetensors"
    cli("convert", samples["source"], "-o", f32, "--style", "comfy", "--dtype", "F32")
    reports = {}
    for level in ("x86-64", "x86-64-v3", "x86-64-v4"):
        r = cli("compare", samples["source"], f32, "--json", "-", env=dict(os.environ, LV_CPU_LEVEL=level))
        reports[level] = json.loads(r.stdout)
    base = reports["x86-64"]
    assert base["verdict"] == "pass"
    for level, rep in reports.items():
        assert rep["verdict"] == base["verdict"], level
        for a, b in zip(base["modules"], rep["modules"]):
            assert (a["target"], a["status"]) == (b["target"], b["status"]), level
            assert abs(a["relative_error"] - b["relative_error"]) <= 1e-9, (level, a, b)


def test_stubs_and_docstrings_match_the_module():
    """_core.pyi names every function of the compiled module with its parameters, and every
    public name of the package is documented."""
    stub = ast.parse((pathlib.Path(lora_verify.__file__).parent / "_core.pyi").read_text())
    stubbed = {n.name: [a.arg for a in n.args.args] for n in stub.body if isinstance(n, ast.FunctionDef)}
    core = lora_verify._core
    compiled = {name: getattr(core, name) for name in dir(core) if callable(getattr(core, name)) and not name.startswith("_")
                and name != "Error"}
    assert sorted(stubbed) == sorted(compiled)
    for name, fn in compiled.items():
        signature = fn.__doc__.splitlines()[0]  # pybind11: "name(arg: type, ...) -> type"
        params = re.findall(r"(\w+): ", signature.split("(", 1)[1].rsplit(")", 1)[0])
        assert params == stubbed[name], (name, signature)
    for name in lora_verify.__all__:
        obj = getattr(lora_verify, name)
        if callable(obj):
            assert obj.__doc__ and len(obj.__doc__) > 40, name
    here = pathlib.Path(lora_verify.__file__).parent
    assert (here / "py.typed").exists()


def test_the_installed_package_is_the_one_tested():
    """Under ctest python.installed_package: the package pip installed into the fresh venv."""
    venv = os.environ.get("LV_EXPECT_INSTALLED")
    if not venv:
        pytest.skip("not the installed-package run (LV_EXPECT_INSTALLED unset)")
    here = pathlib.Path(lora_verify.__file__).resolve()
    assert pathlib.Path(venv).resolve() in here.parents, here
    assert "site-packages" in here.parts
