"""A link with ``?tab=NAME`` opens the app on that page (e.g. to share "open Maximise")."""

from __future__ import annotations

import pytest


@pytest.mark.browser
def test_a_link_opens_the_maximise_page(page, ui, server, tmp_path):
    page.goto(server.url + "?tab=maximise")
    run = page.locator(".hs-actmax-run button")
    run.wait_for(state="visible")
    assert page.locator(".bk-tab.bk-active").inner_text().strip() == "Maximise"
    assert not page.locator(".hs-inspect-header").is_visible()  # Inspect is behind its tab
    ui.shot(page, tmp_path, "link-maximise")
    page.locator(".bk-tab", has_text="Inspect").click()
    page.locator(".hs-inspect-header").wait_for(state="visible")
    assert not run.is_visible()
