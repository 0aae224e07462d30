"""serve.ordered: one session's callbacks run in the order submitted, sessions side by side."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest
from bokeh.document import Document

from serve.ordered import SessionOrderedPool, install, task_document


def _select_then_click(pool, doc) -> list[str]:
    """A slow value change submitted before a fast click, as Panel submits them."""
    seen: list[str] = []

    def change(_doc):
        time.sleep(0.2)
        seen.append("value")

    def click(_doc, _event):
        seen.append("click")

    futures = [pool.submit(change, doc), pool.submit(partial(click, doc, "event"))]
    for f in futures:
        f.result(timeout=5)
    return seen


def test_one_documents_tasks_run_in_submission_order():
    with SessionOrderedPool(max_workers=4) as pool:
        assert _select_then_click(pool, Document()) == ["value", "click"]


def test_a_plain_pool_runs_them_out_of_order():
    # The failure the ordered pool exists for: the click reads the old value.
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert _select_then_click(pool, Document()) == ["click", "value"]


def test_documents_run_side_by_side():
    both = threading.Barrier(2, timeout=5)  # breaks (raises) unless two tasks wait at once
    with SessionOrderedPool(max_workers=2) as pool:
        futures = [pool.submit(lambda _d: both.wait(), Document()) for _ in range(2)]
        assert sorted(f.result(timeout=10) for f in futures) == [0, 1]


def test_a_failing_task_reaches_its_future_and_the_queue_goes_on():
    doc = Document()
    with SessionOrderedPool(max_workers=2) as pool:
        def fail(_doc):
            raise ValueError("bad handler")

        bad = pool.submit(fail, doc)
        good = pool.submit(lambda d: "next", doc)
        with pytest.raises(ValueError, match="bad handler"):
            bad.result(timeout=5)
        assert good.result(timeout=5) == "next"
        assert pool._queues == {}  # nothing left waiting once the session's queue drained


def test_tasks_without_a_document_are_not_queued():
    with SessionOrderedPool(max_workers=1) as pool:
        assert pool.submit(lambda: 7).result(timeout=5) == 7


def test_the_document_is_found_where_panel_passes_it():
    doc = Document()
    assert task_document(print, (doc,)) is doc
    assert task_document(partial(partial(print, doc, 1), 2), ()) is doc
    assert task_document(print, (1, "x")) is None


def test_install_makes_it_panels_callback_pool():
    from panel.io.state import state

    pool = install(3)
    try:
        assert state._thread_pool is pool and isinstance(pool, SessionOrderedPool)
        assert install(3) is pool  # a second serve in the same process keeps it
    finally:
        import panel as pn

        pn.config.nthreads = None  # Panel shuts its pool down
        assert state._thread_pool is None
