"""Memory probe for the server of ``benchmarks/load.py --memprobe`` (diagnostic only).

Python imports ``sitecustomize`` at start-up from ``PYTHONPATH``; ``load.py --memprobe`` puts
this folder there. It acts only in the process whose command line holds ``cli.main`` and only
when ``HS_MEMPROBE`` names a file: every ``HS_MEMPROBE_EVERY`` seconds (default 15) a thread
appends one JSON line with the time since start, RSS, glibc's ``mallinfo2()`` (``in_use``:
bytes handed out by malloc; ``free``: bytes the allocator keeps; ``mmapped``), Python's
allocated block count and the number of objects the garbage collector tracks (all sizes MiB).
Growth of ``in_use`` is live native memory; growth of ``free`` alone is fragmentation.
Each row also holds the CPU seconds used so far by kind of thread (``cpu_main``: the event
loop every session shares; ``cpu_xla``: XLA's compute pool, i.e. forwards and maximisation
steps; ``cpu_other``: Python worker threads and the rest), from ``/proc/self/task``.
"""

import os
import threading
import time


def _is_server() -> bool:
    try:
        with open("/proc/self/cmdline", "rb") as f:
            return b"cli.main" in f.read()
    except OSError:
        return False


def thread_cpu() -> dict[str, float]:
    """CPU seconds so far of this process's threads, summed by kind (main / xla / other)."""
    out = {"cpu_main": 0.0, "cpu_xla": 0.0, "cpu_other": 0.0}
    tick, me = os.sysconf("SC_CLK_TCK"), os.getpid()
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:  # the thread ended meanwhile
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        kind = ("cpu_main" if int(tid) == me else
                "cpu_xla" if comm.startswith("tf_XLA") else "cpu_other")
        out[kind] += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return {k: round(v, 2) for k, v in out.items()}


def _probe(path: str, every: float) -> None:
    import ctypes
    import gc
    import json
    import sys

    class _MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
            "fordblks", "keepcost")]

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
    except (OSError, AttributeError):  # not glibc >= 2.33: RSS and Python counts only
        libc = None
    t0, mib = time.time(), 2.0 ** -20
    page = os.sysconf("SC_PAGE_SIZE")
    while True:
        time.sleep(every)
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * page
        row = {"t": round(time.time() - t0, 1), "rss": round(rss * mib, 1),
               "py_blocks": sys.getallocatedblocks(), "gc_objects": len(gc.get_objects()),
               **thread_cpu()}
        if libc is not None:
            m = libc.mallinfo2()
            row.update(in_use=round(m.uordblks * mib, 1), free=round(m.fordblks * mib, 1),
                       mmapped=round(m.hblkhd * mib, 1))
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")


if os.environ.get("HS_MEMPROBE") and _is_server():
    threading.Thread(target=_probe, daemon=True, name="hearsight-memprobe",
                     args=(os.environ["HS_MEMPROBE"],
                           float(os.environ.get("HS_MEMPROBE_EVERY", "15")))).start()
