"""Server side of ``benchmarks/load.py``: a checkpoint to serve, the server process (with its
``--procs`` workers) started and stopped, and its CPU time and memory read with psutil."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def tiny_checkpoint(folder: Path, corpus: str) -> Path:
    """A randomly initialised (seed 0) ``ddevis_cnn`` over 10 digits whose corpus is ``corpus``."""
    from data.features import ddevis_stft
    from models.checkpoint import save_checkpoint
    from models.registry import build_model

    params = ddevis_stft()
    model = build_model("ddevis_cnn", n_classes=10, input_shape=params.shape, seed=0)
    model.eval()
    meta = {"arch": "ddevis_cnn", "arch_kwargs": {"n_classes": 10, "input_shape": list(params.shape)},
            "labels": [str(d) for d in range(10)], "features": params.to_dict(),
            "corpus": corpus, "split": {}, "metrics": {"note": "untrained"}}
    return save_checkpoint(Path(folder) / "ck", model, meta)


def stop_server(proc) -> None:
    """Stop the server and its worker processes (the workers outlive a killed parent)."""
    import psutil

    try:
        workers = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        workers = []
    proc.terminate()
    for w in workers:
        try:
            w.terminate()
        except psutil.NoSuchProcess:
            pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    psutil.wait_procs(workers, timeout=30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Diagnostic only (--no-explain-autostart): the same server with the Explain page's eager
# per-clip computation switched off, to separate the Inspect path from that background work.
_NO_EXPLAIN = ("import sys; from serve.pages.explain import ExplainPage; "
               "ExplainPage.start = lambda self: None; from cli.main import main; "
               "sys.exit(main(sys.argv[1:]))")


def start_server(model: Path, port: int, home: Path, *, timeout: float = 300.0,
                 no_explain: bool = False, procs: int = 1, memprobe: Path | None = None):
    """``hearsight serve`` on 127.0.0.1:``port`` in a child process, once it accepts connections;
    with ``memprobe``, ``benchmarks/memprobe`` logs its memory to that file."""
    probe = [str(ROOT / "benchmarks" / "memprobe")] if memprobe is not None else []
    path = os.pathsep.join(p for p in (*probe, str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, "HEARSIGHT_HOME": str(home)}
    if memprobe is not None:
        env["HS_MEMPROBE"] = str(memprobe)
    launch = ["-c", _NO_EXPLAIN] if no_explain else ["-m", "cli.main"]
    proc = subprocess.Popen([sys.executable, *launch, "serve", "--model", str(model),
                             "--port", str(port), "--address", "127.0.0.1",
                             "--procs", str(procs)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError("server did not start in time")


def _tree(pid: int) -> list:
    """The server process and its worker processes (``--procs``), as psutil processes."""
    import psutil

    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _cpu_s(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) used so far by the server ``pid`` (with its workers) and
    by the clients: this process and its other child processes (``--client-procs``)."""
    import psutil

    server_tree = _tree(pid)
    ids = {p.pid for p in server_tree}
    clients = [p for p in psutil.Process().children(recursive=True) if p.pid not in ids]
    server = clients_s = 0.0
    for p in server_tree + clients:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        if p.pid in ids:
            server += t.user + t.system
        else:
            clients_s += t.user + t.system
    me = os.times()
    return server, me.user + me.system + clients_s


def _rss_mib(pid: int) -> float:
    """Resident memory of the server and its workers together (MiB)."""
    import psutil

    total = 0
    for p in _tree(pid):
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def soak_png(samples: list, path: Path, *, title: str) -> None:
    """The RSS curve as a small line chart (Pillow)."""
    from PIL import Image, ImageDraw

    w, h, pad = 640, 320, 48
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    ts, ms = np.array([s[0] for s in samples]), np.array([s[1] for s in samples])
    lo, hi = float(ms.min()) * 0.98, float(ms.max()) * 1.02 + 1e-9
    pts = [(pad + (w - 2 * pad) * t / max(ts.max(), 1e-9),
            h - pad - (h - 2 * pad) * (m - lo) / (hi - lo)) for t, m in zip(ts, ms)]
    d.rectangle([pad, pad, w - pad, h - pad], outline="black")
    d.line(pts, fill="navy", width=2)
    for frac in (0.0, 0.5, 1.0):
        y = h - pad - (h - 2 * pad) * frac
        d.text((4, y - 6), f"{lo + frac * (hi - lo):.0f}", fill="black")
    d.text((pad, h - pad + 8), "0 s", fill="black")
    d.text((w - pad - 60, h - pad + 8), f"{ts.max():.0f} s", fill="black")
    d.text((pad, 12), title, fill="black")
    img.save(path)


def memprobe_summary(path: Path, warmup_fraction: float = 0.25) -> dict | None:
    """The memprobe's rows (``benchmarks/memprobe``) and their values at the first sample, just
    after warm-up (the sample at ``warmup_fraction`` of the run) and at the last sample."""
    import json

    try:
        rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line]
    except OSError:
        return None
    if not rows:
        return None
    keys = [k for k in ("rss", "in_use", "free", "mmapped", "py_blocks", "gc_objects", "cpu_main",
                        "cpu_xla", "cpu_other") if k in rows[0]]
    pick = lambda r: {k: float(r[k]) for k in keys}
    return {"rows": rows, "first": pick(rows[0]),
            "after_warmup": pick(rows[min(len(rows) - 1, int(len(rows) * warmup_fraction))]),
            "last": pick(rows[-1])}
