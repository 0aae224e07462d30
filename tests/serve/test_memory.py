"""Server memory: glibc's mmap threshold pinned (big blocks mmapped and returned when freed);
start-up objects frozen out of the garbage collector's walks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_CHILD = """
import ctypes, json, sys
sys.path.insert(0, {root!r})
libc = ctypes.CDLL("libc.so.6")
class MI(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = MI
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
# a known starting point whatever the environment (CI runners may set MALLOC_* or tunables, or
# glibc's dynamic threshold may already have moved): 32 MiB, so a 1 MiB block comes from the heap
assert libc.mallopt(-3, 32 << 20)
def mapped_while_held(n):
    before = libc.mallinfo2().hblkhd
    p = libc.malloc(n); during = libc.mallinfo2().hblkhd; libc.free(p)
    return during - before, libc.mallinfo2().hblkhd - before
out = {{"raised": mapped_while_held(1 << 20)}}
if {pin}:
    from serve.memory import pin_mmap_threshold
    out["set"] = pin_mmap_threshold(256 * 1024)
    out["pinned"] = mapped_while_held(1 << 20)
    out["small"] = mapped_while_held(64 * 1024)
print(json.dumps(out))
"""


def _run(pin: bool) -> dict:
    code = _CHILD.format(root=str(ROOT), pin=pin)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60, env=env)
    return json.loads(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_pinned_threshold_maps_big_blocks_and_returns_them():
    try:
        out = _run(pin=True)
    except subprocess.CalledProcessError as exc:
        if "mallinfo2" not in exc.stderr:  # only a C library without it may skip
            raise
        pytest.skip(f"no glibc mallinfo2 (glibc < 2.33 or another C library): {exc.stderr[-200:]}")
    mib = 1 << 20
    assert out["raised"] == [0, 0]            # at 32 MiB, 1 MiB came from the heap
    assert out["set"] is True
    assert out["pinned"][0] >= mib and out["pinned"][1] == 0   # now mapped, and unmapped on free
    assert out["small"] == [0, 0]             # below the threshold: the heap as before


def test_thresholds_outside_glibcs_range_are_refused():
    from serve.memory import pin_mmap_threshold

    for bad in (0, -1, 64 * 2**20):
        with pytest.raises(ValueError, match="mmap threshold"):
            pin_mmap_threshold(bad)


_FREEZE_CHILD = """
import gc, json, sys, weakref
sys.path.insert(0, {root!r})
class Node:
    pass
def cycle():
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)
old = cycle()                      # unreachable, alive only through its cycle
from serve.memory import freeze_startup_objects
gc.disable()
old_before = old() is not None     # collected by the freeze's own full collection?
keep = cycle()                     # created before the freeze, so frozen with the rest
keep_strong = keep()
n = freeze_startup_objects()
del keep_strong                    # now unreachable, but frozen: a collection must not see it
new = cycle()                      # created after the freeze: collected as usual
gc.collect()
print(json.dumps(dict(frozen=n, old_collected=old() is None, frozen_alive=keep() is not None,
                      new_collected=new() is None)))
"""


def test_freezing_moves_start_up_objects_out_of_collections_but_not_later_ones():
    out = subprocess.run([sys.executable, "-c", _FREEZE_CHILD.format(root=str(ROOT))],
                         capture_output=True, text=True, timeout=60, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["frozen"] > 1000                    # at least the interpreter's own objects
    assert res["old_collected"]                    # garbage is collected before freezing
    assert res["frozen_alive"]                     # frozen objects are not walked again
    assert res["new_collected"]                    # what sessions create is collected
