"""Explain page in Chromium: the menus the page refills after each computation reach the
browser — every attribution method can be chosen to listen to, and the target class follows
a newly uploaded clip."""

from __future__ import annotations

import re

import pytest

from engine.attribution import METHODS

CLIP = "7_jackson_0.wav"
WHY_RE = re.compile(r"why\s+(\S+)\?")


def _options(page, css: str) -> list[str]:
    return [t.strip() for t in page.locator(f".{css} select option").all_inner_texts()]


def _selected(page, css: str) -> str:
    return page.locator(f".{css} select").evaluate(
        "(s) => s.options[s.selectedIndex] ? s.options[s.selectedIndex].text : ''").strip()


def _wait_for_listen_menu(page) -> None:
    from playwright.sync_api import expect

    expect(page.locator(".hs-explain-listen-method select option")).to_have_count(len(METHODS), timeout=120_000)


@pytest.mark.browser
def test_explain_menus_follow_what_the_server_computed(page, ui, fsdd_dir, tmp_path):
    page.locator(".bk-tab", has_text="Explain").click()
    page.locator(".hs-explain-header").wait_for(state="visible")
    _wait_for_listen_menu(page)
    assert len(set(_options(page, "hs-explain-listen-method"))) == len(METHODS)
    ui.upload(page, fsdd_dir / CLIP)
    page.locator(".hs-explain-header").filter(has_text=CLIP.removesuffix(".wav")).wait_for()
    header = ui.text(page, "hs-explain-header")
    m = WHY_RE.search(header)
    assert m, f"the Explain header {header!r} names no predicted class"
    # The target menu shows the new clip's predicted class, as the header says.
    for _ in range(100):
        if _selected(page, "hs-explain-target") == m.group(1):
            break
        page.wait_for_timeout(100)
    assert _selected(page, "hs-explain-target") == m.group(1)
    _wait_for_listen_menu(page)
    ui.shot(page, tmp_path, "explain-menus")
