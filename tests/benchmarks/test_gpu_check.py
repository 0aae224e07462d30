"""benchmarks/gpu_check.py --cpu: every section runs or says why not, and its figures add up.

One smoke run in a subprocess (as on the GPU machine: a fresh interpreter, JSON out), then the
JSON is checked against numbers recomputed from its own fields.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = {"forward", "actmax", "pivot_mds", "morph", "bridged"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("gpu_check") / "x.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--cpu",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)  # the script stops itself at 105 s
    assert done.returncode == 0, (f"exit {done.returncode}\n{done.stdout[-3000:]}\n"
                                  f"{done.stderr[-5000:]}")
    return json.loads(out.read_text()), done.stdout


def finite_positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def ok(result: dict, name: str) -> dict:
    sec = result["sections"][name]
    if sec["status"] == "skipped":
        pytest.skip(f"{name}: {sec['reason']}")
    return sec


def test_every_section_ran_or_says_why(smoke):
    result, stdout = smoke
    assert result["mode"] == "cpu-smoke" and result["status"] == "ok"
    assert result["install"] == {"status": "skipped", "reason": "--cpu"}
    assert result["device"]["platform"] == "cpu" and result["environment"]["jax"]
    assert set(result["sections"]) == SECTIONS
    for name, sec in result["sections"].items():
        assert sec["status"] in ("ok", "skipped"), (name, sec.get("error"), sec.get("reason"))
        if sec["status"] == "skipped":
            assert sec["reason"].strip(), name
        else:
            assert sec["device"] == result["device"]["name"]
            assert sec["jax_version"] == result["environment"]["jax"]
            assert finite_positive(sec["wall_s"]) and sec["cut_short"] == bool(sec["cut"])
        assert name in stdout  # the table has a line for it
    assert result["wall_s"] < result["budget_s"] + 60


def test_forward_ratios(smoke):
    result, _ = smoke
    sec = ok(result, "forward")
    torch = sec["torch"]
    assert torch["status"] == "ok" or "torch" in torch["reason"]
    for arch in ("ddevis", "soomro"):
        rows = sec["archs"][arch]["batches"]
        assert "1" in rows, arch  # later batches may be dropped only for the run's budget
        assert all(b in rows or any(f"{arch} batch {b}" in c for c in sec["cut"])
                   for b in ("1", "2")), (arch, sec["cut"])
        for b, r in rows.items():
            s = r["seconds"]
            assert all(finite_positive(v) for v in s.values()), (arch, b, s)
            for path, rate in r["clips_per_s"].items():
                assert rate == pytest.approx(int(b) / s[path])
            assert r["ratios"]["call_over_apply"] == pytest.approx(s["jax_call"] / s["jax_apply"])
            if torch["status"] == "ok":
                assert r["ratios"]["speedup_call_vs_torch"] == pytest.approx(
                    s["torch_call"] / s["jax_call"])
                assert r["ratios"]["speedup_apply_vs_torch"] == pytest.approx(
                    s["torch_apply"] / s["jax_apply"])
            assert all(finite_positive(v) for v in r["ratios"].values())
        if torch["status"] == "ok":  # same weights in both frameworks: same logits
            assert sec["archs"][arch]["parity_max_abs_logit_diff"] < 1e-3


def test_actmax_extrapolations_add_up(smoke):
    result, _ = smoke
    sec = ok(result, "actmax")
    n, batched, loop, extra = sec["starts"], sec["batched"], sec["loop"], sec["paper_extrapolation"]
    assert n == 8 and loop["sample"] == 4 and str(loop["sample"]) in loop["note"]
    assert finite_positive(batched["median_s"]) and finite_positive(loop["sample_step_s"])
    assert loop["scaled_step_s"] == pytest.approx(loop["sample_step_s"] * n / loop["sample"])
    assert extra["count"] == 10_000 * 35 * 20
    assert extra["per_start_step_s"] == pytest.approx(batched["median_s"] / n)
    assert extra["extrapolated_s"] == pytest.approx(extra["per_start_step_s"] * extra["count"])
    assert extra["loop_extrapolated_s"] == pytest.approx(loop["scaled_step_s"] / n * extra["count"])
    assert sec["speedup_batched_vs_loop"] == pytest.approx(
        loop["scaled_step_s"] / batched["median_s"])


def test_pivot_mds_layout_and_peer(smoke):
    result, _ = smoke
    sec = ok(result, "pivot_mds")
    assert sec["layout_shape"] == [sec["n"], 2] and sec["layout_finite"]
    assert (sec["n"], sec["d"], sec["k"]) == (20_000, 256, 50)
    peer = sec["numpy_peer"]
    assert finite_positive(sec["jax_pivot_mds"]["median_s"]) and finite_positive(peer["median_s"])
    scale = sec["n"] / peer["rows"] if peer["scaled"] else 1.0
    assert peer["n_s"] == pytest.approx(peer["median_s"] * scale)
    assert sec["speedup_vs_numpy"] == pytest.approx(peer["n_s"] / sec["jax_pivot_mds"]["median_s"])


def test_morph_frame(smoke):
    result, _ = smoke
    sec = ok(result, "morph")
    frame = sec["frame"]
    assert frame["n"] == 20_000 and frame["images_identical"]
    assert sec["speedup_vs_peer"] == pytest.approx(frame["peer_ms"] / frame["hearsight_ms"])
    if "interpolation" not in sec:
        assert any("device interpolation" in c for c in sec["cut"]), sec["cut"]
        return
    interp = sec["interpolation"]
    assert interp["speedup_device_vs_host"] == pytest.approx(
        interp["host_s"] / interp["device_with_copy_s"])


def test_bridged_ran_or_names_what_is_missing(smoke):
    result, _ = smoke
    sec = result["sections"]["bridged"]
    if sec["status"] == "skipped":
        assert sec["reason"].startswith("not available")
    else:
        assert sec["entry"].startswith("bridged.") and sec["result"] is not None
