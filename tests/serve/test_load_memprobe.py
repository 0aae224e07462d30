"""The load benchmark's memory probe sees memory a server process allocates and keeps."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")
def test_memprobe_logs_memory_a_serve_process_allocates(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from load_server import memprobe_summary
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    log = tmp_path / "probe.jsonl"
    # The probe acts only in a process whose command line names cli.main: here the
    # child's argv. It holds 64 MiB from 0.6 s on, and nothing before.
    code = ("import time; time.sleep(0.6); block = bytearray(64 * 2**20); "
            "block[::4096] = b'x' * len(block[::4096]); time.sleep(0.5); "
            "t = time.thread_time()\nwhile time.thread_time() - t < 0.5: pass\n"
            "time.sleep(0.5)")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "benchmarks" / "memprobe"),
           "HS_MEMPROBE": str(log), "HS_MEMPROBE_EVERY": "0.2"}
    subprocess.run([sys.executable, "-c", code, "cli.main"], env=env, check=True, timeout=60)
    s = memprobe_summary(log)
    assert s is not None and len(s["rows"]) >= 4
    grew = s["last"]["rss"] - s["first"]["rss"]
    assert 60 <= grew <= 80, s["rows"]                     # the touched 64 MiB are resident
    if "mmapped" in s["first"]:                            # glibc: a big block is mmapped
        assert 60 <= s["last"]["mmapped"] - s["first"]["mmapped"] <= 70
    # Half a second of busy main thread after the first sample; no XLA in this process.
    assert 0.35 <= s["last"]["cpu_main"] - s["first"]["cpu_main"] <= 0.9, s["rows"]
    assert s["last"]["cpu_xla"] == 0.0
    # Without cli.main in its command line the probe stays off.
    other = tmp_path / "other.jsonl"
    subprocess.run([sys.executable, "-c", "import time; time.sleep(0.5)"],
                   env={**env, "HS_MEMPROBE": str(other)}, check=True, timeout=60)
    assert not other.exists() and memprobe_summary(other) is None
