"""A new session builds only the Inspect page; other pages are built when first shown."""

from __future__ import annotations

import pytest

from serve.app import Shared


@pytest.fixture(scope="module")
def shared(tiny_checkpoint):
    return Shared(tiny_checkpoint)


def test_pages_are_built_on_first_showing_and_show_the_current_clip(shared, fsdd_dir):
    from serve.pages import build_session

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
