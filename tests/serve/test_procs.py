"""``hearsight serve --procs N``: N forked workers share the port, each with its own model."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

import serve.app as app

ROOT = Path(__file__).resolve().parents[2]


def test_procs_out_of_range_is_refused_before_loading(tmp_path):
    with pytest.raises(ValueError, match="--procs must be 1..64"):
        app.serve(tmp_path / "no-model", procs=0, start=False)


def test_a_bad_model_folder_fails_before_forking(tmp_path):
    from models.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="metadata.json is missing"):
        app.serve(tmp_path, procs=2, start=False)


def test_per_process_state_is_made_once_per_process(monkeypatch):
    made = []

    class Fake:
        def __init__(self, *args, **kwargs):
            made.append((args, kwargs))

    monkeypatch.setattr(app, "Shared", Fake)
    lazy = app.PerProcess("model", separate=None)
    first = lazy.get()
    assert lazy.get() is first and len(made) == 1  # same process: made once
    monkeypatch.setattr(os, "getpid", lambda: -1)  # as seen from a forked worker
    assert lazy.get() is not first and len(made) == 2
    assert made[1] == (("model",), {"separate": None})


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=120) as page:
        return page.read().decode()


def test_two_workers_serve_pages_concurrently(tiny_checkpoint, tmp_path, free_port):
    port = free_port()
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT),
           "HEARSIGHT_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--model",
                             str(tiny_checkpoint), "--port", str(port), "--procs", "2"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    workers = []
    try:
        t0 = time.time()
        while time.time() - t0 < 120:
            assert proc.poll() is None, proc.stdout.read()
            workers = psutil.Process(proc.pid).children()
            with socket.socket() as s:
                if len(workers) == 2 and s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.5)
        assert len(workers) == 2
        cpu0 = [w.cpu_times().user for w in workers]
        # Six page loads at once: a worker busy building a session leaves the next
        # connection to the other, so both load the model and build pages.
        with ThreadPoolExecutor(6) as pool:
            pages = list(pool.map(_get, [f"http://127.0.0.1:{port}/"] * 6))
        assert all("hearsight" in p and "bokeh" in p.lower() for p in pages)
        busy = [w.cpu_times().user - c for w, c in zip(workers, cpu0)]
        assert min(busy) > 0.5, f"CPU seconds per worker during the page loads: {busy}"
    finally:
        proc.terminate()
        for w in workers:
            w.terminate()
        proc.wait(timeout=30)
        psutil.wait_procs(workers, timeout=30)
        proc.stdout.close()
