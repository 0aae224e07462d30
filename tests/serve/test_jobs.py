"""JobRunner: stop within one step, time-limit cancellation, the per-session limit, errors."""

from __future__ import annotations

import threading
import time

import pytest

from serve.jobs import JobError, JobRunner


def _counting(counter: list, *, pause: float = 0.0, gate: threading.Event | None = None):
    def fn(job):
        while True:
            counter.append(1)
            if gate is not None and len(counter) == 3:
                gate.set()
            time.sleep(pause)
            yield
    return fn


def test_stop_ends_the_loop_within_one_step():
    runner, steps, reached = JobRunner(max_jobs=1, time_limit_s=30), [], threading.Event()
    job = runner.start(_counting(steps, pause=0.01, gate=reached), name="count")
    assert reached.wait(10)
    at_stop = len(steps)
    job.stop()
    assert job.join(10)
    assert job.status == "stopped"
    assert len(steps) - at_stop <= 1  # at most the step already under way
    assert not runner.active


def test_finite_job_is_done_with_every_step_counted():
    runner = JobRunner()
    job = runner.start(lambda job: iter(range(5)), name="five")
    assert job.join(10)
    assert (job.status, job.steps, job.error) == ("done", 5, None)


def test_time_limit_cancels_and_reports():
    errors, steps = [], []
    runner = JobRunner(time_limit_s=0.2, on_error=errors.append)
    job = runner.start(_counting(steps, pause=0.02), name="maximisation")
    assert job.join(10)
    assert job.status == "timeout"
    assert len(errors) == 1 and "time limit of 0.2 s" in errors[0]
    assert 2 <= len(steps) < 100


def test_second_job_beyond_the_limit_is_refused_with_a_clear_message():
    runner, steps, reached = JobRunner(max_jobs=1), [], threading.Event()
    first = runner.start(_counting(steps, pause=0.01, gate=reached), name="strip")
    try:
        with pytest.raises(JobError, match=r"already runs 1 job\(s\) \(strip\), the limit is 1"):
            runner.start(lambda job: iter(()), name="maximisation")
    finally:
        first.stop()
        first.join(10)
    second = runner.start(lambda job: iter(range(2)), name="again")  # freed after the stop
    assert second.join(10) and second.status == "done"


def test_exception_inside_a_job_is_reported_not_raised():
    errors = []

    def failing(job):
        yield
        raise ZeroDivisionError("boom")

    runner = JobRunner(on_error=errors.append)
    job = runner.start(failing, name="bad")
    assert job.join(10)
    assert job.status == "error" and job.steps == 1
    assert errors == ["bad failed: ZeroDivisionError: boom"]


def test_invalid_limits_are_refused():
    with pytest.raises(ValueError, match="max_jobs >= 1"):
        JobRunner(max_jobs=0)


def test_on_end_runs_once_after_stop_and_after_error():
    ended = []
    runner = JobRunner(on_error=lambda m: None)
    job = runner.start(lambda job: iter(range(3)), name="ok", on_end=lambda j: ended.append(j.status))
    assert job.join(10)

    def failing(job):
        raise KeyError("x")
        yield

    bad = runner.start(failing, name="bad", on_end=lambda j: ended.append(j.status))
    assert bad.join(10)
    assert ended == ["done", "error"]


def test_session_runner_is_shared_by_the_pages_of_a_session():
    from serve.config import Limits
    from serve.jobs import session_runner

    class S:
        class shared:
            limits = Limits(jobs_per_session=2, job_seconds=5.0)
        error = staticmethod(print)

    s = S()
    runner = session_runner(s)
    assert session_runner(s) is runner
    assert (runner.max_jobs, runner.time_limit_s) == (2, 5.0)


def test_a_pushed_callback_releases_what_it_carries_once_run_though_its_wrapper_lives_on():
    # Panel and bokeh keep a scheduled callback's wrappers in reference cycles until the
    # cyclic collector runs; what the callback carries (a clip's analysis) must not wait.
    import gc
    import weakref
    from functools import partial

    from serve.jobs import RunOnce

    class Payload:
        pass

    seen = []
    payload = Payload()
    ref = weakref.ref(payload)
    once = RunOnce(partial(seen.append, payload))
    cycle = [once]
    cycle.append(cycle)                        # the wrapper kept alive by a cycle
    del payload
    gc.disable()
    try:
        assert ref() is not None               # carried until run
        once()
        assert seen and seen[0] is ref()
        seen.clear()
        assert ref() is None                   # released by the call, no collection needed
        once()                                 # a second call does nothing
        assert seen == []
    finally:
        gc.enable()


def _timed_steps(spans: list, n: int, seconds: float):
    def fn(job):
        for _ in range(n):
            t0 = time.monotonic()
            time.sleep(seconds)
            spans.append((t0, time.monotonic()))
            yield
    return fn


def test_steps_of_different_sessions_take_turns():
    a, b = [], []
    jobs = [JobRunner().start(_timed_steps(spans, 8, 0.03)) for spans in (a, b)]
    assert all(j.join(10) for j in jobs) and len(a) == len(b) == 8
    overlaps = [(x, y) for x in a for y in b if x[0] < y[1] and y[0] < x[1]]
    assert overlaps == []                          # never two steps at once in a process
    assert max(s[1] for s in a) > min(s[0] for s in b)   # and neither waited for the other's end


def test_a_long_step_delays_the_others_only_for_the_lane_wait(monkeypatch):
    import serve.jobs as jobs

    monkeypatch.setattr(jobs, "LANE_WAIT_S", 0.2)
    long, short = [], []
    slow = JobRunner().start(_timed_steps(long, 1, 1.5))   # a corpus forwarded in one step
    time.sleep(0.1)
    t0 = time.monotonic()
    quick = JobRunner().start(_timed_steps(short, 3, 0.01))
    assert quick.join(5) and len(short) == 3
    assert 0.15 <= short[0][0] - t0 < 0.6          # waited its turn, but not for the long step
    assert slow.join(5) and short[-1][1] < long[0][1]
