"""Keep a long-running server's resident memory from creeping (glibc only; elsewhere a no-op).

glibc serves blocks of 128 KiB and more with ``mmap`` and hands them back to the system when
freed, but it raises that threshold each time such a block is freed (up to 32 MiB). After a
few clips, a clip's activations (seven arrays of 0.1-1.5 MB, allocated by XLA from several
threads) come from the heap arenas instead, and the holes they leave grow the arenas' free
space. In the 5-session soak (``benchmarks/load.py --memprobe``) the server's RSS rose from
662 to 692 MiB between 60 s and 270 s while the memory in use stayed at 205 MiB (the arenas'
free space grew by 34 MiB); with the threshold pinned at 256 KiB, 631 to 637 MiB.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # glibc <malloc.h>; setting it also stops the dynamic adjustment


def pin_mmap_threshold(nbytes: int = 256 * 1024) -> bool:
    """Serve every block of ``nbytes`` or more with ``mmap`` from now on (returned to the
    system when freed). True when set; False where the C library is not glibc."""
    if not 0 < int(nbytes) <= 32 * 2**20:
        raise ValueError(f"mmap threshold must be 1 B..32 MiB, got {nbytes}")
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, int(nbytes)))


def freeze_startup_objects() -> int:
    """Move every object alive now (modules, the model, compiled functions: ~300k objects)
    out of the garbage collector's generations; returns how many were moved.

    Python's full collections walk every tracked object; with the server's start-up objects
    included, each took ~0.2 s on the event loop that all sessions share (10 of them, 2.1 s
    of server time, with 15 sessions in ``benchmarks/load.py``). Frozen objects are never
    walked again, so only what sessions create is. Called once, after loading and before
    serving (and before ``--procs`` forks, which then also share those pages unwritten).
    """
    import gc

    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
