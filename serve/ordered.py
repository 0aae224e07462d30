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

The pool also knows when a session is waiting for the server: :meth:`SessionOrderedPool.watch`
calls a session's ``on_busy(True)`` once its queue has been working for ``busy_after`` seconds
(0.3 s: quicker work shows nothing, so nothing flickers) and ``on_busy(False)`` when the queue
drains (:mod:`serve.busy` draws it in the page's header).
"""

from __future__ import annotations

import threading
import weakref
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

    def __init__(self, max_workers: int | None = None, *, busy_after: float = 0.3, **kwargs):
        super().__init__(max_workers=max_workers, **kwargs)
        self.busy_after = float(busy_after)
        self._lock = threading.Lock()
        self._queues: dict[int, deque] = {}  # id(document) -> tasks waiting, while one runs
        self._watchers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # doc -> cb
        self._timers: dict[int, threading.Timer] = {}  # id(document) -> its busy timer
        self._shown: set[int] = set()  # documents told they are busy (and not yet idle)

    def watch(self, doc: Document, on_busy) -> None:
        """Call ``on_busy(True)`` when ``doc``'s tasks have run for :attr:`busy_after` seconds
        without a break, and ``on_busy(False)`` when they are done. ``on_busy`` runs on a pool
        or timer thread: it must hand page changes to the document's own loop."""
        self._watchers[doc] = on_busy

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
            on_busy = self._watchers.get(doc)
            if on_busy is not None:  # the session goes from idle to working
                timer = threading.Timer(self.busy_after, self._tell_busy, (key, on_busy))
                timer.daemon = True
                self._timers[key] = timer
                timer.start()
        super().submit(self._drain, key, on_busy)
        return future

    def _tell_busy(self, key: int, on_busy) -> None:
        with self._lock:
            if self._timers.pop(key, None) is None:  # drained meanwhile
                return
            self._shown.add(key)
            on_busy(True)  # under the lock: the drain's on_busy(False) cannot come first

    def _drain(self, key: int, on_busy=None) -> None:
        while True:
            with self._lock:
                queue = self._queues[key]
                if not queue:
                    del self._queues[key]
                    timer = self._timers.pop(key, None)
                    shown = key in self._shown
                    self._shown.discard(key)
                    break
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
        if timer is not None:
            timer.cancel()
        if shown and on_busy is not None:
            on_busy(False)


def install(threads: int, busy_after: float = 0.3) -> SessionOrderedPool:
    """Make Panel's callback pool a :class:`SessionOrderedPool` of ``threads`` workers."""
    import panel as pn
    from panel.io.state import state

    if pn.config.nthreads != threads:
        pn.config.nthreads = threads
    if not isinstance(state._thread_pool, SessionOrderedPool):
        if state._thread_pool is not None:
            state._thread_pool.shutdown(wait=False)
        state._thread_pool = SessionOrderedPool(max_workers=threads, busy_after=busy_after)
    state._thread_pool.busy_after = float(busy_after)
    return state._thread_pool
