"""A small per-session runner of long jobs (maximisation, strips) in worker threads.

Before every step a job yields to interactive work (``serve.priority``): while a pick or a
new page is being made anywhere in the server, steps wait (at most 0.5 s each). Steps of all
sessions' jobs take turns (:data:`BACKGROUND_LANE`, one at a time per process, waiting at
most :data:`LANE_WAIT_S` for a turn): on CPU, concurrent steps share the same cores anyway,
and a pick then waits behind one step only.

A job is a function ``fn(job) -> iterable`` whose every item is one step (typically a
generator that yields after each optimiser step). The runner advances it in a daemon thread
and checks, *before* every step, whether Stop was pressed or the time limit has passed, so a
job ends within one step of either. Exceptions inside a job are caught and reported through
``on_error`` (the session's error banner): a failing job never takes the server down.

UI updates from the worker thread go through :meth:`JobRunner.push`: with a live Bokeh
document they are scheduled on the server's event loop (``pn.state.execute``, which holds the
document lock); without one (tests, the CLI) the callback runs at once.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from functools import partial
from typing import Callable, Iterable

import panel as pn

from serve.priority import begin, end, marking, yield_to_interactive

STATUSES = ("running", "done", "stopped", "timeout", "error")
LANE_WAIT_S = 2.0  # longest wait for the lane; then a step runs beside the one holding it


class FairLane:
    """A lock handed out in the order it was asked for.

    ``threading`` locks are not fair: a job that releases one and asks again at once takes it
    straight back, so one maximisation ran all its steps while the others waited.
    """

    def __init__(self):
        self._cond = threading.Condition()
        self._queue: collections.deque = collections.deque()
        self._held = False

    def acquire(self, timeout: float) -> bool:
        """Wait for this caller's turn, at most ``timeout`` s; whether the lane is now held."""
        me = object()
        with self._cond:
            self._queue.append(me)
            got = self._cond.wait_for(lambda: not self._held and self._queue[0] is me, timeout)
            self._queue.remove(me)
            if got:
                self._held = True
            else:
                self._cond.notify_all()  # the next in line may go now
            return got

    def release(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()


BACKGROUND_LANE = FairLane()  # job steps run one at a time in a process, in turn


class JobError(RuntimeError):
    """A job could not be started (the session already runs its maximum of jobs)."""


class Job:
    """Handle of one job: ``stop()``, ``join()``, ``status``, ``steps`` and ``error``."""

    def __init__(self, name: str, deadline: float):
        self.name = name
        self.deadline = deadline
        self.status = "running"
        self.steps = 0
        self.error: str | None = None
        self.waited_s = 0.0  # seconds paused for interactive work or waiting for a turn
        self._stop = threading.Event()
        self._done = threading.Event()
        self.thread: threading.Thread | None = None

    def stop(self) -> None:
        """Ask the job to end; it stops before its next step."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the job has ended; True if it did within ``timeout`` seconds."""
        return self._done.wait(timeout)


class JobRunner:
    """Runs at most ``max_jobs`` jobs at once, each for at most ``time_limit_s`` seconds.

    Args:
      max_jobs: concurrent jobs (``Limits.jobs_per_session``).
      time_limit_s: wall-clock seconds before a job is cancelled (``Limits.job_seconds``).
      on_error: ``on_error(message)`` for failures and time-outs, e.g. ``session.error``.
      doc: the session's Bokeh document (default: ``pn.state.curdoc`` at construction).
    """

    def __init__(self, *, max_jobs: int = 1, time_limit_s: float = 300.0,
                 on_error: Callable[[str], None] | None = None, doc=None):
        if max_jobs < 1 or not time_limit_s > 0:
            raise ValueError(f"need max_jobs >= 1 and time_limit_s > 0, got {max_jobs}, "
                             f"{time_limit_s}")
        self.max_jobs, self.time_limit_s = int(max_jobs), float(time_limit_s)
        self.on_error = on_error
        self.immediate = False  # run pushed callbacks at once (while the page is being built)
        self.doc = doc if doc is not None else pn.state.curdoc
        self._jobs: list[Job] = []
        self._lock = threading.Lock()

    @property
    def active(self) -> list[Job]:
        with self._lock:
            return [j for j in self._jobs if j.running]

    def start(self, fn: Callable[[Job], Iterable], *, name: str = "job",
              on_end: Callable[[Job], None] | None = None) -> Job:
        """Start ``fn(job)`` in a daemon thread; raises :class:`JobError` beyond ``max_jobs``.

        ``on_end(job)`` runs in the worker after the last step whatever the outcome (read
        ``job.status``), e.g. to show the best result so far and re-enable the Run button.
        """
        with self._lock:
            self._jobs = [j for j in self._jobs if j.running]
            if len(self._jobs) >= self.max_jobs:
                names = ", ".join(j.name for j in self._jobs)
                raise JobError(f"cannot start {name}: this session already runs {len(self._jobs)} "
                               f"job(s) ({names}), the limit is {self.max_jobs}; press Stop or "
                               "wait for it to finish")
            job = Job(name, time.monotonic() + self.time_limit_s)
            self._jobs.append(job)
        job.thread = threading.Thread(target=self._loop, args=(job, fn, on_end), daemon=True,
                                      name=f"hearsight-{name}")
        job.thread.start()
        return job

    def _loop(self, job: Job, fn: Callable[[Job], Iterable], on_end) -> None:
        try:
            for stage in ("steps", "end"):
                try:
                    if stage == "steps":
                        self._advance(job, iter(fn(job)))
                    elif on_end is not None:
                        on_end(job)
                except Exception as exc:  # noqa: BLE001 — a failing job must not kill the server
                    job.status = "error"
                    job.error = f"{job.name} failed: {type(exc).__name__}: {exc}"
                    self._report(job.error)
        finally:
            job._done.set()

    def _advance(self, job: Job, steps) -> None:
        try:
            while True:
                if job.stop_requested:
                    job.status = "stopped"
                    break
                if time.monotonic() > job.deadline:
                    job.status = "timeout"
                    self._report(f"{job.name} was cancelled after the time limit of "
                                 f"{self.time_limit_s:g} s; use fewer steps or starts")
                    break
                # One job step at a time per process, and only when nobody waits on a pick or a
                # new page (serve/priority.py): ten maximisations stepping at once put ten
                # steps of XLA work ahead of every pick's forward pass, for no more throughput.
                # A step that holds the lane longer (a corpus forwarded in one step) only
                # delays the others by LANE_WAIT_S, after which they step alongside it.
                t0 = time.monotonic()
                in_lane = BACKGROUND_LANE.acquire(timeout=LANE_WAIT_S)
                try:
                    job.waited_s += time.monotonic() - t0 + yield_to_interactive()
                    next(steps)
                except StopIteration:
                    job.status = "done"
                    break
                finally:
                    if in_lane:
                        BACKGROUND_LANE.release()
                job.steps += 1
        finally:
            close = getattr(steps, "close", None)
            if close is not None:
                close()  # run the generator's clean-up now, in this thread

    def _report(self, message: str) -> None:
        if self.on_error is not None:
            self.push(lambda: self.on_error(message))

    def push(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` where it may touch widgets: on the document's event loop when the
        session is served, at once otherwise (tests, scripts)."""
        doc = self.doc
        if self.immediate or doc is None or getattr(doc, "session_context", None) is None:
            callback()
            return
        from panel.io.state import set_curdoc

        if marking():  # interactive work goes on until its draw on the event loop is done
            callback = partial(_ended, callback, begin())
        with set_curdoc(doc):
            pn.state.execute(partial(held, doc, RunOnce(callback)), schedule=True)

    def stop_all(self) -> None:
        for job in self.active:
            job.stop()


def _ended(callback: Callable[[], None], token) -> None:
    try:
        callback()
    finally:
        end(token)


class RunOnce:
    """``callback`` as a callable that drops it once run (or skips it when already run).

    Panel and bokeh wrap a scheduled callback in closures that refer to each other, so the
    wrappers outlive the call until Python's cyclic garbage collector runs, and with half a
    million objects in a served process full collections are minutes apart. A pushed callback
    carries a clip's analysis (~3 MB of activations): held by those wrappers, every pick leaked
    one until then (the soak's steady growth). Dropped after the call, only the small wrappers wait.
    """

    __slots__ = ("callback",)

    def __init__(self, callback: Callable[[], None]):
        self.callback = callback

    def __call__(self) -> None:
        callback, self.callback = self.callback, None
        if callback is not None:
            callback()


def held(doc, callback: Callable[[], None]) -> None:
    """Run ``callback`` with ``doc``'s events held: all its changes reach the browser in one
    patch message instead of one per property.

    Unheld, a clip's refresh sent ~15 patches, and a served patch is serialised against every
    model of the document (~700): under load that took a sixth of the server's time. (Panel's
    ``hold(freeze=True)`` is not used: bokeh re-walks the whole model graph whenever a freeze
    ends, changed or not, which doubled the server's time.)
    """
    from panel.io.document import hold

    with hold(doc):
        callback()


@contextlib.contextmanager
def one_walk(doc=None):
    """Layout changes in this block re-walk the model graph of ``doc`` (default: the current
    document) once, at the end.

    Bokeh walks every model of the document (hundreds) after each change of a layout's
    children; a clip's first figures change five layouts. Use it only around such builds:
    bokeh walks the graph whenever a freeze ends, changed or not.
    """
    doc = pn.state.curdoc if doc is None else doc
    models = getattr(doc, "models", None)
    if models is None or not hasattr(models, "freeze"):
        yield
        return
    with models.freeze():
        yield


def session_runner(session) -> JobRunner:
    """The one :class:`JobRunner` of a session (created on first use, kept on the session), so
    that every page of a session shares ``Limits.jobs_per_session``."""
    runner = getattr(session, "jobs", None)
    if runner is None:
        limits = session.shared.limits
        runner = JobRunner(max_jobs=limits.jobs_per_session, time_limit_s=limits.job_seconds,
                           on_error=session.error)
        session.jobs = runner
    return runner
