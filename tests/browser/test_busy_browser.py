"""The header says "working…" while this session's work takes longer than a moment."""

from __future__ import annotations

import time

import pytest

from tests.browser.conftest import _opened, serving, stop_server


@pytest.fixture
def fresh_page(browser, tiny_checkpoint, hearsight_home, tmp_path):
    """A page on a server of its own that says "working…" after 0.05 s: building Explain
    for the tiny model takes 0.2-0.3 s here, about the default 0.3 s, so with the default
    the badge would show or not by chance; a tab switch back takes < 0.01 s."""
    srv = serving(tiny_checkpoint, hearsight_home, tmp_path / "serve.log", "--busy-after", "0.05")
    try:
        yield from _opened(browser, srv, tmp_path)
    finally:
        stop_server(srv)


@pytest.mark.browser
def test_the_header_says_working_while_a_first_tab_is_built(fresh_page, ui, tmp_path):
    page = fresh_page
    page.locator(".hs-inspect-header").wait_for(state="visible")
    badge = page.locator(".hs-busy")
    page.wait_for_timeout(1500)  # the opening clip's work is done: nothing shown
    assert badge.count() == 1 and not badge.is_visible()
    # Panel's own spinner (one flag for the whole process, on for any callback) is gone.
    assert page.locator(".pn-busy-container").count() == 0
    # Explain's first showing builds its page on the server: the badge appears while it does, with its words, and goes
    # once the page is there.
    t0 = time.perf_counter()
    page.locator(".bk-tab", has_text="Explain").click()
    badge.wait_for(state="visible", timeout=5000)
    seen = time.perf_counter() - t0
    assert badge.locator("span", has_text="working").count() == 1  # in the pane's shadow root
    ui.shot(page, tmp_path, "busy-badge")
    badge.wait_for(state="hidden", timeout=60000)
    assert seen < 5
    # A quick action (back to the built Inspect tab) shows nothing.
    page.locator(".bk-tab", has_text="Inspect").click()
    for _ in range(10):
        page.wait_for_timeout(50)
        assert not badge.is_visible()
