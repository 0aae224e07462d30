"""The client side of ``benchmarks/load.py``: one browser-less session driving the Inspect page
and, once per session, a short activation maximisation on the Maximise page.

A session is a ``bokeh.client.pull_session`` on the served page. One interaction picks another
item in the sidebar's corpus picker (the bokeh ``Select`` with css class ``hs-item``; choosing
an item loads it at once, ``serve/audio_in.py``) and waits until the Inspect header (css class
``hs-inspect-header``) names that item. The file upload is not used: Panel >= 1.5 sends a
``FileInput``'s bytes in chunks over its own messages, so setting the bokeh model's ``value``
from a client never reaches the server's upload handler.
"""

from __future__ import annotations

import re
import time

import numpy as np

from load_models import register_models

ITEM_CLASS, HEADER_CLASS = "hs-item", "hs-inspect-header"
RUN_CLASS, STEP_CLASS = "hs-actmax-run", "hs-actmax-step"
STEP_RE = re.compile(r"step (\d+) / (\d+)")


def _has_class(model, name: str) -> bool:
    return name in (getattr(model, "css_classes", None) or ())


def find_models(doc):
    """The corpus picker (bokeh ``Select``) and the Inspect header of a session's document."""
    from bokeh.models import Select

    picker = next((m for m in doc.models if isinstance(m, Select) and _has_class(m, ITEM_CLASS)),
                  None)
    header = next((m for m in doc.models if _has_class(m, HEADER_CLASS)), None)
    if header is None:  # fall back on the text (a pane may drop its css classes)
        header = next((m for m in doc.models if isinstance(getattr(m, "text", None), str)
                       and ("Bring audio in" in m.text or "→" in m.text)), None)
    if picker is None or header is None:
        raise RuntimeError("the page has no corpus picker (Select .hs-item) or Inspect header")
    if len(picker.options) < 2:
        raise RuntimeError(f"the corpus picker lists {len(picker.options)} item(s); the model's "
                           "corpus needs a test split (e.g. fsdd:../shared/data/fsdd)")
    return picker, header


def option_values(picker) -> list[tuple[str, str]]:
    """``(value, clip name)`` per option: what the bokeh ``Select.value`` takes, and the name
    the Inspect header will show once that item is loaded.

    Panel sends ``(str(value), label)`` pairs when the values' strings are unique, else the
    labels alone; its server side accepts either the value string or the label. The sidebar's
    labels read ``"label · speaker · name"``.
    """
    pairs = [tuple(o) if isinstance(o, (list, tuple)) else (o, o) for o in picker.options]
    return [(value, label.rsplit(" · ", 1)[-1]) for value, label in pairs]


def _wait_until(conn, done, deadline: float, tick: float = 0.5) -> None:
    """Run the client's loop until ``done()``, ``time.perf_counter() >= deadline`` or a
    disconnect.

    The loop checks its predicate only when a message arrives, so a SERVER-INFO-REQ is sent
    every ``tick`` s (its reply wakes the loop); patches are still seen the moment they land.
    After a disconnect no reply comes, so the ping stops the loop itself.
    """
    loop, state = conn._loop, {"on": True}

    def ping():
        if not state["on"]:
            return
        if not conn.connected or time.perf_counter() >= deadline:
            conn._until_predicate = None
            loop.stop()
            return
        loop.add_callback(conn.send_message, conn._protocol.create("SERVER-INFO-REQ"))
        loop.call_later(tick, ping)

    loop.call_later(tick, ping)
    try:
        conn._loop_until(lambda: done() or time.perf_counter() >= deadline)
    finally:
        state["on"] = False


def interact(session, picker, header, value: str, name: str, *, timeout: float) -> float:
    """Choose ``value`` in the corpus picker; seconds until the Inspect header shows ``name``."""
    t0 = time.perf_counter()
    picker.value = value  # a client-side change: the session sends it as a PATCH-DOC
    _wait_until(session._connection, lambda: f"{name} →" in header.text, t0 + timeout)
    if f"{name} →" not in header.text:
        if not session.connected:
            raise RuntimeError("the server closed the connection")
        raise TimeoutError(f"the Inspect header did not show {name} within {timeout:g} s "
                           f"(it reads {header.text[:80]!r})")
    return time.perf_counter() - t0


def announce_ready(session) -> None:
    """Tell the server the page is rendered, as bokeh's browser client does once it has drawn
    the document (a ``DocumentReady`` event). Panel counts a session as connected only then;
    before it, every change the server makes to the page is deferred to a callback of its own
    (one message and one walk of the whole model graph each), so a client that never
    announces itself costs the server more than a browser does."""
    from bokeh.events import DocumentReady

    session.document.callbacks.send_event(DocumentReady())


def _tabs(doc):
    from bokeh.models import Tabs

    return next(m for m in doc.models if isinstance(m, Tabs))


def show_tab(session, title: str) -> None:
    """Bring the tab ``title`` to the front (a client-side change the server follows)."""
    tabs = _tabs(session.document)
    tabs.active = [t.title for t in tabs.tabs].index(title)


def maximise(session, *, timeout: float) -> dict:
    """Bring the Maximise tab up and press Run with the page's defaults (noise-to-class,
    20 steps × 8 starts): seconds until the first step is shown and until the last one is.

    The session must have been opened with ``?tab=maximise`` so the page was built at
    connect: bokeh's Python client cannot read the patch that adds a page later.
    """
    from bokeh.events import ButtonClick

    doc, conn = session.document, session._connection
    find = lambda cls: next((m for m in doc.models if _has_class(m, cls)), None)
    run, step = find(RUN_CLASS), find(STEP_CLASS)
    if run is None or step is None:
        raise RuntimeError("the session has no Maximise page (open it with ?tab=maximise)")
    show_tab(session, "Maximise")
    t0 = time.perf_counter()
    doc.callbacks.send_event(ButtonClick(run))  # reaches the server as a PATCH-DOC event
    progress = lambda: STEP_RE.search(step.text or "")
    _wait_until(conn, lambda: progress() is not None, t0 + timeout)
    if progress() is None:
        raise TimeoutError(f"the maximisation showed no step within {timeout:g} s")
    first = time.perf_counter() - t0
    finished = lambda: (m := progress()) is not None and m.group(1) == m.group(2)
    _wait_until(conn, finished, t0 + timeout)
    if not finished():
        raise TimeoutError(f"the maximisation did not finish within {timeout:g} s "
                           f"({step.text!r})")
    return {"first_step_s": first, "done_s": time.perf_counter() - t0,
            "steps": int(progress().group(2))}


def warm_up(seconds: float) -> None:
    """Import the client's modules in a worker process before anything is timed."""
    import bokeh.client  # noqa: F401

    register_models()
    time.sleep(seconds)


def run_group(url: str, plan: list[tuple[int, float]], *, join_s: float, **kwargs) -> list[dict]:
    """One thread per ``(seed, delay)`` of ``plan`` running :func:`run_session`; their result
    dicts, in ``plan``'s order, once all have ended or ``join_s`` seconds have passed."""
    import threading

    outs = [{} for _ in plan]
    threads = [threading.Thread(target=run_session, args=(url, out), daemon=True,
                                kwargs={"seed": seed, "delay": delay, **kwargs})
               for out, (seed, delay) in zip(outs, plan)]
    for t in threads:
        t.start()
    deadline = time.time() + join_s
    for t in threads:
        t.join(max(0.0, deadline - time.time()))
    return outs


def run_session(url: str, out: dict, *, interactions: int, timeout: float, seed: int,
                until: float | None = None, maximisation: bool = False, delay: float = 0.0,
                think: float = 0.0) -> None:
    """One client session: wait ``delay`` s, connect, then ``interactions`` picks (or loop
    until ``until``), then (``maximisation``) one short maximisation.

    ``think`` > 0 puts a pause before each pick, drawn from an exponential distribution with
    that mean (capped at 4× the mean), as a person looking at the result would; the session
    keeps reading the server's messages meanwhile. 0 picks back to back.
    """
    from bokeh.client import pull_session

    rng = np.random.default_rng(seed)
    try:
        time.sleep(max(0.0, delay))
        t0 = out["connect_at"] = time.perf_counter()
        # A session that will maximise opens with the Maximise page built (?tab=maximise),
        # then works on Inspect first.
        args = {"tab": "maximise"} if maximisation else None
        with pull_session(url=url, arguments=args) as session:
            out["connect_s"] = time.perf_counter() - t0
            announce_ready(session)
            if maximisation:
                show_tab(session, "Inspect")
            picker, header = find_models(session.document)
            values, i = option_values(picker), 0
            while i < interactions if until is None else time.time() < until:
                choices = [v for v in values if v[0] != picker.value]
                value, name = choices[int(rng.integers(len(choices)))]
                if think > 0:
                    end = time.perf_counter() + min(float(rng.exponential(think)), 4 * think)
                    # Ends through its predicate (checked on each ping reply): stopping the
                    # loop at the deadline instead drops the connection.
                    _wait_until(session._connection, lambda: time.perf_counter() >= end, end + 5)
                out.setdefault("pick_at", []).append(time.perf_counter())
                out.setdefault("latencies", []).append(
                    interact(session, picker, header, value, name, timeout=timeout))
                i += 1
            if maximisation:
                out["maximise_at"] = time.perf_counter()
                out["maximise"] = maximise(session, timeout=timeout)
    except Exception as exc:  # a failed session is a result, not a crash of the benchmark
        out["error"] = f"{type(exc).__name__}: {exc}"
