"""numba's cache is written under $HEARSIGHT_HOME, never into the installed source tree."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import numpy as np
from viz.embeddings import aggregate
agg = aggregate(np.array([0.1, 0.9], np.float32), np.array([0.2, 0.8], np.float32),
                width=4, height=4, x_range=(0, 1), y_range=(0, 1))
print(int(np.asarray(agg).sum()))
"""


def _run(home: Path, **extra) -> str:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(HEARSIGHT_HOME=str(home), PYTHONPATH=str(ROOT), **extra)
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def test_numba_writes_its_cache_in_hearsight_home(tmp_path):
    assert _run(tmp_path / "home") == "2"  # both points counted
    written = sorted(p.suffix for p in (tmp_path / "home" / "numba").rglob("*.nb*"))
    assert ".nbi" in written and ".nbc" in written, written


def test_an_operators_numba_cache_dir_is_respected(tmp_path):
    assert _run(tmp_path / "home", NUMBA_CACHE_DIR=str(tmp_path / "mine")) == "2"
    assert list((tmp_path / "mine").rglob("*.nbi"))
    assert not (tmp_path / "home" / "numba").exists()
