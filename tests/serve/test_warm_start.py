"""A fresh server warms what a first upload needs before anyone clicks (issue 21, item 6)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = r"""
import json, sys, time
sys.path.insert(0, {repo!r})
from serve.app import Shared
shared = Shared({ckpt!r})
loaded = {{m: m in sys.modules for m in ("librosa.core.audio", "scipy.signal",
                                         "bokeh.plotting", "viz.plots")}}
from serve.pages.tabs import build_session
session, _ = build_session(shared, example=False)
from data.audio import to_wav_bytes
import numpy as np
tone = (0.3 * np.sin(2 * np.pi * 300 * np.arange(4000) / 8000)).astype(np.float32)
ok = session.load_bytes(to_wav_bytes(tone, 8000), "first.wav")
print(json.dumps({{"loaded": loaded, "ok": ok, "clip": session.clip.name}}))
"""


def test_the_resampler_and_the_plotting_are_loaded_before_the_first_upload(tiny_checkpoint):
    # In a fresh interpreter (this one has them all imported already): after the server's
    # shared state is built, the modules a first upload used to import at the user's click
    # (librosa's resampler with scipy.signal, bokeh's plotting) are already there.
    code = PROBE.format(repo=str(REPO), ckpt=str(tiny_checkpoint))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["loaded"] == {"librosa.core.audio": True, "scipy.signal": True,
                                "bokeh.plotting": True, "viz.plots": True}
    assert result["ok"] is True and result["clip"] == "first.wav"  # the warm-up left no trace
