"""Hidden tabs cost the browser nothing: each page is a document root of its own.

BokehJS lays out a whole document root again whenever a view in it changes size or text. With
every page inside the Tabs, one step counter of a maximisation re-laid out all pages ever shown
(~2,300 views after one visit to every tab: a run 11x slower than in a fresh session). Known
answers: the tab strip's root holds no figure; the shown page's root is the only visible page
root; visiting every tab again, and switching, adds and drops no model.
"""

from __future__ import annotations

import pytest
from bokeh.document import Document
from bokeh.models import Plot, Tabs

from serve.app import Shared

NAMES = ["Inspect", "Edit & compare", "Explain", "Maximise", "Strips", "Embeddings"]


@pytest.fixture(scope="module")
def shared(tiny_checkpoint):
    return Shared(tiny_checkpoint)


def _plots(root) -> set[str]:
    return {m.id for m in root.references() if isinstance(m, Plot)}


def test_pages_are_roots_of_their_own_shown_one_at_a_time(shared, fsdd_dir):
    from serve.pages.tabs import build_session

    session, template = build_session(shared, example=False)
    doc = Document()
    template.server_doc(doc)
    assert session.load_bytes((fsdd_dir / "7_jackson_0.wav").read_bytes(), "seven.wav")
    for name in NAMES:  # every page built and shown once
        session.show(name)
    tab_root = next(r for r in doc.roots if any(isinstance(m, Tabs) for m in r.references()))
    assert not _plots(tab_root)  # no page's figure lies under the tab strip
    page_roots = [r for r in doc.roots if r is not tab_root and _plots(r)]
    assert len(page_roots) >= 4  # Inspect, Edit & compare, Explain, Maximise, ... have figures
    ids = {m.id for m in doc.models}
    for name in NAMES:  # a second visit to every tab
        session.show(name)
        shown = [r for r in page_roots if r.visible]
        assert len(shown) <= 1  # never two pages at once
        # the template's card of a hidden page is hidden by its class (tabs.PAGE_CSS)
        assert all(("hs-page-hidden" in r.css_classes) == (not r.visible) for r in page_roots)
        assert {m.id for m in doc.models} == ids  # nothing rebuilt, nothing dropped
    session.show("Inspect")
    shown = [r for r in page_roots if r.visible]
    assert len(shown) == 1
    session.show("Maximise")
    now = [r for r in page_roots if r.visible]
    assert len(now) == 1 and now[0] is not shown[0]  # the shown root changed with the tab
    assert {m.id for m in doc.models} == ids
    thread = getattr(session.pages["Explain"], "_thread", None)
    if thread is not None:  # Explain's automatic analysis: not left running at exit
        thread.join(120)
