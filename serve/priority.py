"""Interactive work first: long jobs pause between steps while a person waits on the server.

A pick (analysis, then the figures' refresh on the event loop) and a new session's page are
*interactive*: someone is looking at a spinner. A maximisation is *background*: it streams
its steps and nobody waits on any one of them. On a 2-core machine both compete for the same
cores, so under load every pick waited behind the running maximisations' gradient steps
(a pick's p95 rose from 0.3 s to 2 s while ten of them ran; ``benchmarks/load.py``).

Interactive sections are marked with :func:`interactive` (or :func:`begin` / :func:`end`
across threads); :class:`serve.jobs.JobRunner` calls :func:`yield_to_interactive` before
every step of a job, which waits while any interactive section is under way, for at most
``max_wait`` seconds per step so background work always progresses.

The marks live in shared memory made when this module is imported, before ``serve --procs``
forks its workers, so a pick in one worker also pauses the jobs of the others (they share the
cores). Each mark is a slot holding its start time; a slot older than :data:`STALE_S`
seconds is ignored and reused, so a mark whose end never came (a session closed before its
pushed draw ran) cannot stall the jobs.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
import time
from typing import Iterator

SLOTS = 64
STALE_S = 3.0  # an interactive section older than this is taken as abandoned
_slots = multiprocessing.get_context("fork").Array("d", SLOTS)
_local = threading.local()

Token = tuple[int, float]


def begin() -> Token:
    """Mark the start of interactive work; pass the token to :func:`end`."""
    now = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process of the machine
    with _slots.get_lock():
        for i in range(SLOTS):
            start = _slots[i]
            if start == 0.0 or now - start > STALE_S:
                _slots[i] = now
                return i, now
    return -1, now  # all slots taken: this one is not tracked


def end(token: Token) -> None:
    """Mark the end of the interactive work that :func:`begin` returned ``token`` for."""
    i, start = token
    if i < 0:
        return
    with _slots.get_lock():
        if _slots[i] == start:  # not already reused after going stale
            _slots[i] = 0.0


@contextlib.contextmanager
def interactive() -> Iterator[None]:
    """A section someone waits on; :func:`marking` is true inside it (in this thread)."""
    token = begin()
    _local.depth = getattr(_local, "depth", 0) + 1
    try:
        yield
    finally:
        _local.depth -= 1
        end(token)


def marking() -> bool:
    """Whether this thread is inside :func:`interactive` (work it hands on stays marked)."""
    return getattr(_local, "depth", 0) > 0


def in_flight() -> int:
    """Interactive sections under way in any process of the server (stale ones left out)."""
    now = time.monotonic()
    with _slots.get_lock():
        return sum(1 for i in range(SLOTS) if _slots[i] != 0.0 and now - _slots[i] <= STALE_S)


def yield_to_interactive(max_wait: float = 0.5, poll: float = 0.01) -> float:
    """Wait while interactive work is under way, at most ``max_wait`` seconds; the seconds
    waited. Background jobs call this before each step."""
    t0 = time.monotonic()
    while in_flight() and time.monotonic() - t0 < max_wait:
        time.sleep(poll)
    return time.monotonic() - t0
