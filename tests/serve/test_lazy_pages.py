"""A new session builds only the Inspect page; other pages are built when first shown."""

from __future__ import annotations

import pytest

from serve.app import Shared


@pytest.fixture(scope="module")
def shared(tiny_checkpoint):
    return Shared(tiny_checkpoint)


def test_pages_are_built_on_first_showing_and_show_the_current_clip(shared, fsdd_dir):
    from serve.pages.tabs import build_session

    session, _ = build_session(shared)
    assert list(session.pages) == ["Inspect"] and session.active_tab == "Inspect"
    assert session.load_bytes((fsdd_dir / "4_nicolas_2.wav").read_bytes(), "four.wav")
    session.show("Edit & compare")
    assert list(session.pages) == ["Inspect", "Edit & compare"]
    compare = session.pages["Edit & compare"]
    assert compare.original is session.clip and "four.wav" in compare.header.object
    session.show("Inspect")
    session.show("Edit & compare")                       # shown again: not rebuilt
    assert session.pages["Edit & compare"] is compare


def test_a_link_can_open_another_tab(shared):
    from serve.pages.tabs import build_session, tab_from_args

    names = ["Inspect", "Edit & compare", "Maximise"]
    assert tab_from_args({"tab": [b"maximise"]}, names) == "Maximise"
    assert tab_from_args({"tab": [b"Edit-Compare"]}, names) == "Edit & compare"
    assert tab_from_args({"tab": [b"../etc"]}, names) is None
    assert tab_from_args({"tab": [b"\xff\xfe"]}, names) is None
    assert tab_from_args({}, names) is None
    session, _ = build_session(shared, tab="Maximise")
    # Inspect is built too (it is the first tab), and the asked-for page is in front.
    assert list(session.pages) == ["Inspect", "Maximise"] and session.active_tab == "Maximise"


def test_a_new_page_opens_on_the_first_corpus_item_with_its_figures(shared):
    from serve.pages.tabs import build_session

    items = shared.corpus_items()
    assert items, "the fixture's corpus has a test split"
    session, _ = build_session(shared)
    inspect = session.pages["Inspect"]
    name = session.audio_in.item.value.id.rsplit("/", 1)[-1]
    assert session.clip is not None and session.clip.name == name and session.clip.source == "corpus"
    assert name in inspect.header.value and inspect._figs          # drawn before it is sent
    assert name in session.audio_in.now.value
    bare, _ = build_session(shared, example=False)
    assert bare.clip is None and not bare.pages["Inspect"]._figs


def test_a_page_joins_its_document_with_one_walk_of_the_model_graph(shared, monkeypatch):
    from bokeh.document import Document
    from bokeh.document.models import DocumentModelManager

    from serve.pages.tabs import build_session

    _, template = build_session(shared)
    walks, recompute = [], DocumentModelManager.recompute
    monkeypatch.setattr(DocumentModelManager, "recompute",
                        lambda self: (walks.append(len(self)), recompute(self))[1])
    doc = Document()
    template.server_doc(doc)
    assert len(doc.models) > 100           # the clip's figures are in the first document
    assert len(walks) == 1                 # Panel's own template walks it once per step (7+)
