"""The FLUX.2 stand-ins and the harness's own comparison helpers (no app checkout needed; torch
is: ctest skips this suite without Debian's python3-torch)."""
import os
import sys

import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from lab import check_cli, compare, flux, flux2, safetensors_io  # noqa: E402

# Linear modules per family, BFL / diffusers naming (docs/formats.md#flux2-sizes).
COUNTS = {"flux2-dev": (171, 203), "flux2-klein-9b": (121, 153), "flux2-klein-4b": (89, 109)}


@pytest.mark.parametrize("family", sorted(flux2.FAMILIES))
def test_linear_counts(family):
    assert (len(flux2.bfl_linears(family)), len(flux2.diffusers_shapes(family))) == COUNTS[family]


@pytest.mark.parametrize("family", sorted(flux2.FAMILIES))
def test_diffusers_modules_tile_every_bfl_target(family):
    linears = flux2.bfl_linears(family)
    rows = {}
    for name, (target, begin, end, _) in flux2.diffusers_modules(family).items():
        assert flux2.diffusers_shapes(family)[name] == (end - begin, linears[target][1])
        rows.setdefault(target, []).append((begin, end))
    assert set(rows) == set(linears)
    for target, ranges in rows.items():
        covered = 0
        for begin, end in sorted(ranges):
            assert begin == covered, f"{target}: gap or overlap at {begin}"
            covered = end
        assert covered == linears[target][0], target


def test_family_shapes():
    # linear1 rows and linear2 columns (docs/formats.md#flux2-sizes); only dev has guidance_in.
    for family, (l1, l2) in {"flux2-dev": (55296, 24576), "flux2-klein-9b": (36864, 16384),
                             "flux2-klein-4b": (27648, 12288)}.items():
        lin = flux2.bfl_linears(family)
        assert lin["single_blocks.0.linear1"][0] == l1 and lin["single_blocks.0.linear2"][1] == l2
        assert ("guidance_in.in_layer" in lin) == (family == "flux2-dev")


def test_parts_split_only_the_attention_qkv():
    assert flux2.parts("double_blocks.0.img_attn.qkv", 12288, "flux2-klein-9b") == [(0, 4096), (4096, 8192), (8192, 12288)]
    assert flux2.parts("single_blocks.0.linear1", 36864, "flux2-klein-9b") == [(0, 36864)]


def test_to_bfl_places_parts_and_swaps_norm_out_back():
    family = "flux2-klein-4b"
    h = flux2.FAMILIES[family]["hidden"]
    k = torch.arange(h * 2, dtype=torch.float64).reshape(h, 2)
    norm = torch.cat([torch.ones(h, 2), 2 * torch.ones(h, 2)]).double()
    out = flux2.to_bfl({"transformer_blocks.0.attn.to_k": {"weight": k}, "norm_out.linear": {"weight": norm}}, family)
    qkv = out["double_blocks.0.img_attn.qkv"]["weight"]
    assert torch.equal(qkv[h:2 * h], k) and not qkv[:h].any() and not qkv[2 * h:].any()
    final = out["final_layer.adaLN_modulation.1"]["weight"]
    assert torch.equal(final[:h], 2 * torch.ones(h, 2, dtype=torch.float64)) and torch.equal(final[h:], torch.ones(h, 2, dtype=torch.float64))


def test_released_modules_add_up():
    standin = flux2.diffusers_standin("flux2-klein-4b")
    name = "transformer_blocks.0.attn.to_out.0"
    for value in (1.0, 2.0):  # patched, released, patched again
        standin.materialize(name)
        standin.get_submodule(name).weight.data[0, 0] = value
        standin.release(compare.project)
    assert standin.get_submodule(name).weight.device.type == "meta"
    got = standin.deltas(compare.project)[name]["weight"]
    assert torch.allclose(got[0], 3.0 * compare._probe(3072)[0])
    assert not flux.StandIn().deltas(compare.project)  # nothing patched, nothing reported


def test_tolerance_follows_the_factor_dtype(tmp_path):
    a = torch.ones(2, 4)
    for dtype, tol in ((torch.float32, compare.REL_TOL), (torch.bfloat16, compare.REL_TOL_16BIT)):
        path = str(tmp_path / "f.safetensors")
        safetensors_io.save_file({"m.lora_A.weight": a.to(dtype), "m.alpha": torch.tensor(1.0)}, path)
        assert compare.tolerance(path) == tol


def test_quote_matching_is_the_tests():
    q = "ValueError: Unsupported lora format: dict_keys([<keys>]) — why (triggered by x)"
    assert check_cli.quote_matches(q, "ValueError: Unsupported lora format: dict_keys(['proj.alpha', 'qkv.alpha'])")
    assert not check_cli.quote_matches(q, "ValueError: Unsupported lora format")
    long_error = "KeyError: " + "k" * 600
    assert check_cli.quote_matches("KeyError: <key> — why", long_error)
