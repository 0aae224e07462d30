"""The load benchmark drives a real server from client processes and records its timeline."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # starts a server and two client processes (~40 s)
def test_two_sessions_from_two_client_processes(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import load
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    result = load.main(["--ramp", "2", "--interactions", "2", "--soak-seconds", "0",
                        "--arrive-over", "2", "--client-procs", "2", "--out", str(tmp_path),
                        "--name", "smoke"])
    level = result["levels"][0]
    assert level["errors"] == 0 and level["interactions"] == 4 and result["client_procs"] == 2
    tl = level["timeline"]
    lats = [lat for _, lat in tl["picks"]]
    assert len(lats) == 4 and level["p50_s"] == pytest.approx(np.percentile(lats, 50), abs=1e-3)
    assert len(tl["connect"]) == 2 and 0.7 <= tl["connect"][1] - tl["connect"][0] <= 1.6
    assert all(t >= tl["connect"][0] for t, _ in tl["picks"])  # one clock for every process
    assert level["client_cpu_s"] > 0.5 and (tmp_path / "smoke.json").exists()
