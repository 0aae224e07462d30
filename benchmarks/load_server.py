"""Server side of ``benchmarks/load.py``: a checkpoint to serve, the server process (with its
``--procs`` workers) started and stopped, and its CPU time and memory read with psutil."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

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
               "ExplainPage.start = lambda self: None; from serve.cli import main; "
               "sys.exit(main(sys.argv[1:]))")


def start_server(model: Path, port: int, home: Path, *, timeout: float = 300.0,
                 no_explain: bool = False, procs: int = 1):
    """``hearsight serve`` on 127.0.0.1:``port`` in a child process, once it accepts connections."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, "HEARSIGHT_HOME": str(home)}
    launch = ["-c", _NO_EXPLAIN] if no_explain else ["-m", "serve.cli"]
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
    by this process."""
    import psutil

    server = 0.0
    for p in _tree(pid):
        try:
            t = p.cpu_times()
            server += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    me = os.times()
    return server, me.user + me.system


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
