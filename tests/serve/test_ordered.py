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


def _work(seconds: float, _doc) -> None:
    """A callback of one session (Panel passes the document) that takes ``seconds``."""
    time.sleep(seconds)


def _busy_calls(pool, doc, work_s: float) -> list[tuple[bool, float]]:
    """Submit one task of ``work_s`` seconds for ``doc``; the (busy, time) calls it drew."""
    calls: list[tuple[bool, float]] = []
    done = threading.Event()

    def on_busy(busy):
        calls.append((busy, time.perf_counter() - t0))
        if not busy:
            done.set()

    pool.watch(doc, on_busy)
    t0 = time.perf_counter()
    pool.submit(_work, work_s, doc).result(timeout=10)
    done.wait(2.0)
    time.sleep(0.1)  # a late busy call would land here
    return calls


def test_a_session_busy_for_longer_than_busy_after_is_told_so_and_then_idle():
    doc = Document()
    with SessionOrderedPool(max_workers=2, busy_after=0.3) as pool:
        calls = _busy_calls(pool, doc, 1.0)
    assert [busy for busy, _ in calls] == [True, False]
    (_, on), (_, off) = calls
    assert 0.25 <= on < 0.8 and off >= 0.95  # shown after 0.3 s, hidden when the work ended


def test_quick_work_shows_no_busy_state():
    with SessionOrderedPool(max_workers=2, busy_after=0.3) as pool:
        assert _busy_calls(pool, Document(), 0.02) == []


def test_busy_spans_a_queue_of_tasks_and_belongs_to_its_own_session():
    # Three 0.2 s tasks in a row: each alone is quick, the session waits 0.6 s: one busy
    # period. The other session, idle, hears nothing.
    mine, other = Document(), Document()
    calls, others = [], []
    with SessionOrderedPool(max_workers=2, busy_after=0.3) as pool:
        pool.watch(mine, calls.append)
        pool.watch(other, others.append)
        futures = [pool.submit(_work, 0.2, mine) for _ in range(3)]
        for f in futures:
            f.result(timeout=5)
        time.sleep(0.2)
    assert calls == [True, False] and others == []


def test_the_busy_badge_sits_in_the_header_instead_of_panels_process_wide_spinner():
    import panel as pn

    from serve.busy import attach

    doc = Document()
    with SessionOrderedPool(max_workers=1, busy_after=0.05) as pool:
        template = pn.template.FastListTemplate(title="t")
        assert template.busy_indicator is not None      # Panel's, synced to pn.state.busy
        shown = attach(template, doc=doc, pool=pool)
        assert template.busy_indicator is None and shown in template.header.objects
        assert shown.visible is False and "hs-busy" in shown.css_classes
        ticks = []
        doc.add_next_tick_callback = lambda cb: ticks.append(cb)  # the doc's loop, by hand
        pool.submit(_work, 0.3, doc).result(timeout=5)
        time.sleep(0.1)
        ticks[0]()
        assert shown.visible is True
        ticks[1]()
        assert shown.visible is False
    assert attach(pn.template.FastListTemplate(title="t"), doc=doc,
                  pool=ThreadPoolExecutor(1)) is None  # not an ordered pool: nothing attached


def test_busy_after_out_of_range_is_refused_before_loading(tmp_path):
    import serve.app as app

    with pytest.raises(ValueError, match="--busy-after must be 0..60"):
        app.serve(tmp_path / "no-model", busy_after=-1, start=False)


def test_install_sets_the_pools_busy_after():
    from panel.io.state import state

    from serve.ordered import SessionOrderedPool, install

    before = state._thread_pool
    try:
        pool = install(2, busy_after=0.05)
        assert isinstance(pool, SessionOrderedPool) and pool.busy_after == 0.05
        assert install(2).busy_after == 0.3  # the default again, on the same pool
    finally:
        if state._thread_pool is not before:
            state._thread_pool.shutdown(wait=False)
            state._thread_pool = before
