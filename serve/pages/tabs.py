"""The whole page of one browser session: its :class:`~serve.session.Session`, the sidebar, the
tabs (each page built when its tab is first shown) and the template that holds them."""

from __future__ import annotations

import functools


def build_pages(shared):
    """The whole page of one session: header, sidebar (audio in), tabs."""
    return build_session(shared)[1]


def tab_from_args(args: dict, names: list[str]) -> str | None:
    """The tab a link asks for (``?tab=maximise``, ``?tab=edit-compare``), or None.

    ``args`` is Panel's ``session_args`` (values are lists of bytes). Names match without
    case, spaces or punctuation; anything else is ignored (the page opens on Inspect).
    """
    raw = (args or {}).get("tab") or [b""]
    value = raw[0].decode("utf-8", "replace") if isinstance(raw[0], bytes) else str(raw[0])
    key = "".join(ch for ch in value.lower() if ch.isalnum())[:40]
    return next((n for n in names if "".join(ch for ch in n.lower() if ch.isalnum()) == key),
                None)


def build_session(shared, tab: str | None = None, *, example: bool = True):
    """``(session, template)``: a new session and its whole page, opened on Inspect or, when
    given (or named by the link's ``?tab=``), on ``tab``; with ``example`` the sidebar's first
    corpus item is loaded before the page is sent (see :meth:`Session.open_example`)."""
    from serve.priority import interactive

    with interactive():  # long jobs pause while a new page is made
        return _build_session(shared, tab, example=example)


def _build_session(shared, tab, *, example):
    import panel as pn

    from serve.pages.compare import ComparePage
    from serve.pages.embeddings import EmbeddingsPage
    from serve.pages.explain import ExplainPage
    from serve.pages.inspect import InspectPage
    from serve.pages.maximise import MaximisePage
    from serve.pages.strips import StripsPage
    from serve.priority import interactive
    from serve.session import Session

    session = Session(shared)
    classes = [("Inspect", InspectPage), ("Edit & compare", ComparePage),
               ("Explain", ExplainPage), ("Maximise", MaximisePage), ("Strips", StripsPage),
               ("Embeddings", EmbeddingsPage)]
    names = [name for name, _ in classes]
    # Only the first tab is built when a session opens; the others on their first showing.
    # Building all six took ~1 s of server time per new session, mostly for tabs never opened.
    holders = {name: pn.Column(sizing_mode="stretch_width") for name in names}
    pages = session.pages = {}

    def ensure(name: str) -> None:
        if name not in pages:
            with session.tab(name):
                pages[name] = dict(classes)[name](session)
            holders[name].objects = [pages[name].view()]  # pages show a current clip at once

    def show(name: str) -> None:
        with interactive():  # a tab shown for the first time builds and draws its page
            ensure(name)
            session.activate(name)

    sidebar = session.sidebar()
    show(names[0])
    wanted = tab if tab in names else tab_from_args(pn.state.session_args, names)
    if wanted and wanted != names[0]:
        show(wanted)
    if example:
        session.open_example()
    # The tab strip holds no page. Each page's holder is a root of its own in the document,
    # shown while its tab is active: BokehJS lays out a whole root again whenever any view
    # in it changes size or text, so with all six pages inside the Tabs every step counter
    # of a maximisation re-laid out ~2,300 views of hidden pages (a 100-step run took 11x
    # longer after one visit to every tab). A page's views are still built once, and kept.
    tabs = pn.Tabs(*[(name, pn.Spacer(height=0, sizing_mode="stretch_width")) for name in names],
                   dynamic=False, active=names.index(wanted or names[0]),
                   sizing_mode="stretch_width", css_classes=["hs-tabs"])

    def to_front(name: str) -> None:
        show(name)  # built (the first time) before it is shown
        for other, holder in holders.items():
            holder.visible = other == name
            # The template wraps every root in a card of its own: PAGE_CSS hides a hidden
            # page's card through this class (on the root's element, outside its shadow root).
            holder.css_classes = ["hs-page"] if other == name else ["hs-page", "hs-page-hidden"]

    to_front(names[tabs.active])
    tabs.param.watch(lambda event: to_front(names[event.new]), "active")
    session.tab_switcher = lambda name: setattr(tabs, "active", names.index(name))
    from serve.design import template_style

    template = _template_class()(title="hearsight", sidebar=[sidebar],
                                 main=[tabs, *holders.values()], sidebar_width=320,
                                 raw_css=[PAGE_CSS], **template_style())
    return session, template


# A hidden page's card (the template's wrapper of its root) takes no room. One rule, anchored by
# child combinators: five :has() rules (corners, margins) doubled Chrome's style recalculation
# per maximisation step in a session that had visited every tab.
PAGE_CSS = """
#main > .card-margin:has(> .pn-wrapper > div > .hs-page-hidden) { display: none; }
"""


@functools.cache
def _template_class():
    """FastListTemplate, attached to a new document with one walk of its model graph.

    Panel adds a page to its document in several steps (roots, theme, hooks), and bokeh
    re-walks the whole graph after each: 0.36 s of server time for a page with a clip shown,
    0.23 s when the walks are folded into one (bokeh's reference-counted freeze).
    """
    import panel as pn
    from bokeh.document import Document

    from serve.jobs import one_walk
    from serve.priority import interactive

    class Template(pn.template.FastListTemplate):
        def _init_doc(self, *args, **kwargs):  # both server paths (and server_doc) end here
            doc = next((a for a in (*args, *kwargs.values()) if isinstance(a, Document)), None)
            if doc is None:  # Panel makes one itself: nothing to fold
                return super()._init_doc(*args, **kwargs)
            with one_walk(doc), interactive():
                return super()._init_doc(*args, **kwargs)

    return Template

