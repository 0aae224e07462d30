"""Interactive work first: long jobs pause between steps while a pick or a page is made."""

import multiprocessing
import threading
import time
import warnings

import pytest

from serve import priority
from serve.jobs import JobRunner, _ended


def _hold(seconds: float, started: threading.Event) -> threading.Thread:
    def body():
        with priority.interactive():
            started.set()
            time.sleep(seconds)
    t = threading.Thread(target=body)
    t.start()
    assert started.wait(5)
    return t


def test_nothing_in_flight_means_no_wait():
    assert priority.in_flight() == 0
    assert priority.yield_to_interactive(max_wait=1.0) < 0.05


def test_waits_until_the_interactive_section_ends_and_no_longer_than_max_wait():
    t = _hold(0.3, threading.Event())
    assert priority.in_flight() == 1
    waited = priority.yield_to_interactive(max_wait=2.0)
    t.join()
    assert 0.2 <= waited < 0.6 and priority.in_flight() == 0
    t = _hold(1.5, threading.Event())
    waited = priority.yield_to_interactive(max_wait=0.2)  # capped: background work goes on
    assert 0.2 <= waited < 0.5 and priority.in_flight() == 1
    t.join()


def test_marking_is_per_thread_and_nests():
    seen = []
    with priority.interactive():
        with priority.interactive():
            assert priority.in_flight() == 2
        other = threading.Thread(target=lambda: seen.append(priority.marking()))
        other.start(); other.join()
        assert priority.marking()
    assert seen == [False] and not priority.marking() and priority.in_flight() == 0


def test_an_abandoned_mark_goes_stale_and_a_late_end_cannot_clear_its_successor(monkeypatch):
    monkeypatch.setattr(priority, "STALE_S", 0.1)
    monkeypatch.setattr(priority, "SLOTS", 1)
    old = priority.begin()                  # its end never comes (say, the session closed)
    assert priority.in_flight() == 1
    time.sleep(0.15)
    assert priority.in_flight() == 0 and priority.yield_to_interactive(max_wait=1) < 0.05
    new = priority.begin()                  # reuses the stale slot
    assert new[0] == old[0] and priority.in_flight() == 1
    priority.end(old)                       # too late: the slot is someone else's now
    assert priority.in_flight() == 1
    priority.end(new)
    assert priority.in_flight() == 0
    first = priority.begin()
    assert priority.begin()[0] == -1        # every slot taken: not tracked, never blocks
    priority.end(first)


def _child(ready, release):
    with priority.interactive():
        ready.set()
        release.wait(10)


def test_a_mark_made_in_another_process_pauses_jobs_here():
    # serve --procs forks workers after this module made the shared slots, like this child.
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_child, args=(ready, release))
    with warnings.catch_warnings():  # JAX warns on any fork; the child never touches it
        warnings.simplefilter("ignore")
        child.start()
    try:
        assert ready.wait(10)
        assert priority.in_flight() == 1
        assert priority.yield_to_interactive(max_wait=0.2) >= 0.2
    finally:
        release.set()
        child.join(10)
    assert priority.in_flight() == 0


def test_job_steps_wait_while_a_pick_is_drawn():
    steps = []

    def job(j):
        for _ in range(1000):
            steps.append(time.monotonic())
            time.sleep(0.01)
            yield

    runner = JobRunner()
    started = threading.Event()
    j = runner.start(job)
    time.sleep(0.1)
    hold = _hold(0.4, started)
    t0 = time.monotonic()
    hold.join()
    t1 = time.monotonic()
    time.sleep(0.1)
    j.stop(); j.join(5)
    during = [t for t in steps if t0 + 0.02 < t < t1 - 0.01]  # one step may be under way at t0
    assert during == [] and j.waited_s >= 0.3
    assert any(t > t1 for t in steps) and any(t < t0 for t in steps)


def test_a_handed_on_draw_keeps_the_mark_until_it_has_run():
    token = priority.begin()
    seen = []
    _ended(lambda: seen.append(priority.in_flight()), token)
    assert seen == [1] and priority.in_flight() == 0
    token = priority.begin()
    with pytest.raises(RuntimeError):
        _ended(lambda: (_ for _ in ()).throw(RuntimeError("draw failed")), token)
    assert priority.in_flight() == 0  # a failing draw still ends its mark
