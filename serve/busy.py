"""The session's "working…" badge: shown in the page's header while the server is busy with this
session's own work for more than a moment (:meth:`serve.ordered.SessionOrderedPool.watch`).

Panel's template has a busy spinner of its own, but it follows ``pn.state.busy``, which is one
flag for the whole process: every open page spun while anybody's callback ran, and it shows even
a 10 ms callback (a flicker on every click). This badge belongs to one session, appears only
after :attr:`~serve.ordered.SessionOrderedPool.busy_after` seconds (0.3 s) and says in words
that the page is waiting.
"""

from __future__ import annotations

BUSY_TEXT = "working…"


def badge():
    """A hidden header badge (spinner and words); ``.visible`` is what :func:`attach` sets."""
    import panel as pn

    spinner = pn.indicators.LoadingSpinner(value=True, width=18, height=18, color="light",
                                           bgcolor="light", margin=(0, 6, 0, 0))
    words = pn.pane.HTML(f"<span>{BUSY_TEXT}</span>", margin=0,
                         styles={"color": "white", "font-size": "14px"})
    return pn.Row(spinner, words, visible=False, css_classes=["hs-busy"],
                  sizing_mode="fixed", width=120, height=22, align="center", margin=(0, 10))


def attach(template, doc=None, pool=None):
    """Put a session's busy badge in ``template``'s header, driven by the callback pool.

    ``doc`` is the session's document (default: the one being built, ``pn.state.curdoc``) and
    ``pool`` Panel's callback pool (default: the installed one); without a document or an
    ordered pool nothing is attached. Returns the badge (or None)."""
    import panel as pn
    import param
    from panel.io.state import state

    from serve.ordered import SessionOrderedPool

    doc = doc if doc is not None else pn.state.curdoc
    pool = pool if pool is not None else state._thread_pool
    if template.busy_indicator is not None:  # the process-wide spinner: see the module's note
        with param.edit_constant(template):
            template.busy_indicator = None
    if doc is None or not isinstance(pool, SessionOrderedPool):
        return None
    shown = badge()
    template.header.append(shown)

    def on_busy(busy: bool) -> None:  # on a pool or timer thread: hand it to the doc's loop
        try:
            doc.add_next_tick_callback(lambda: setattr(shown, "visible", busy))
        except Exception:  # noqa: BLE001 - the session closed meanwhile: nothing to show
            pass

    pool.watch(doc, on_busy)
    return shown
