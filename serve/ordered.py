"""A worker pool that runs one browser session's callbacks in the order the user acted.

Panel runs served callbacks on a thread pool (``pn.config.nthreads``) so that one session's work
never blocks the others. Its pool is a plain :class:`~concurrent.futures.ThreadPoolExecutor`:
when a user picks an item in a select and then presses a button, Panel submits the value change
and then the click, and two free workers run them *at the same time* — the click's handler can
read the select's old value (Edit & compare added ``gain`` when the user had picked ``reverse``).

:class:`SessionOrderedPool` keeps that concurrency between sessions and restores order within
one: tasks that belong to the same bokeh ``Document`` run one after another, first submitted
first; tasks of other documents (or of none) run beside them on the other workers. Long work
never runs in a callback (``serve.jobs`` gives it its own thread), so a session's queue waits
only for short handlers.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial

from bokeh.document import Document


def task_document(fn, args: tuple) -> Document | None:
    """The bokeh document a pool task belongs to: Panel passes it as a positional argument,
    of the task or of the ``functools.partial`` it submits."""
    while True:
        for arg in args:
            if isinstance(arg, Document):
                return arg
        if not isinstance(fn, partial):
            return None
        fn, args = fn.func, fn.args


class SessionOrderedPool(ThreadPoolExecutor):
    """A thread pool whose tasks for one document run in submission order, one at a time."""

    def __init__(self, max_workers: int | None = None, **kwargs):
        super().__init__(max_workers=max_workers, **kwargs)
        self._lock = threading.Lock()
        self._queues: dict[int, deque] = {}  # id(document) -> tasks waiting, while one runs

    def submit(self, fn, /, *args, **kwargs) -> Future:
        doc = task_document(fn, args)
        if doc is None:
            return super().submit(fn, *args, **kwargs)
        future: Future = Future()
        key = id(doc)
        with self._lock:
            queue = self._queues.get(key)
            if queue is not None:  # a task of this session runs: wait behind it
                queue.append((future, fn, args, kwargs))
                return future
            self._queues[key] = deque([(future, fn, args, kwargs)])
        super().submit(self._drain, key)
        return future

    def _drain(self, key: int) -> None:
        while True:
            with self._lock:
                queue = self._queues[key]
                if not queue:
                    del self._queues[key]
                    return
                future, fn, args, kwargs = queue[0]
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:  # noqa: BLE001 - handed to the future's owner
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            with self._lock:
                queue.popleft()


def install(threads: int) -> SessionOrderedPool:
    """Make Panel's callback pool a :class:`SessionOrderedPool` of ``threads`` workers."""
    import panel as pn
    from panel.io.state import state

    if pn.config.nthreads != threads:
        pn.config.nthreads = threads
    if not isinstance(state._thread_pool, SessionOrderedPool):
        if state._thread_pool is not None:
            state._thread_pool.shutdown(wait=False)
        state._thread_pool = SessionOrderedPool(max_workers=threads)
    return state._thread_pool
