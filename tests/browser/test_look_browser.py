"""The page in Chromium asks nothing of the outside world (issue 21, item 7: it requested
Google Fonts, which fails offline), and the selected button of a radio group is filled with
the accent colour (it was one shade off its neighbours)."""

from __future__ import annotations

import pytest

VIEWPORT = {"width": 1280, "height": 800}
TIMEOUT_MS = 120_000
LOCAL = ("http://127.0.0.1", "http://localhost", "ws://127.0.0.1", "ws://localhost", "data:",
         "blob:", "about:")

# [label, selected?, background colour] of every button of every radio group, looked up
# through the shadow roots Panel renders widgets in.
BUTTON_COLOURS_JS = """() => {
  const groups = [];
  const walk = (root) => {
    for (const g of root.querySelectorAll('.bk-btn-group')) {
      groups.push(Array.from(g.querySelectorAll('.bk-btn')).map((b) => [b.textContent.trim(),
        b.classList.contains('bk-active'), getComputedStyle(b).backgroundColor]));
    }
    for (const e of root.querySelectorAll('*')) if (e.shadowRoot) walk(e.shadowRoot);
  };
  walk(document);
  return groups;
}"""


@pytest.mark.browser
def test_no_external_requests_and_the_selected_radio_button_stands_out(browser, server, ui,
                                                                        tmp_path):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    outside = []
    page.on("request", lambda r: None if r.url.startswith(LOCAL) else outside.append(r.url))
    try:
        page.goto(server.url + "?tab=maximise", timeout=TIMEOUT_MS)
        page.locator(".hs-actmax-run button").wait_for(state="visible")
        page.wait_for_load_state("networkidle")
        ui.shot(page, tmp_path, "maximise-radio")
        colours = page.evaluate(BUTTON_COLOURS_JS)
    finally:
        context.close()
    assert outside == []
    groups = [g for g in colours if any(active for _, active, _ in g)]
    assert groups, colours
    for group in groups:
        selected = {bg for _, active, bg in group if active}
        others = {bg for _, active, bg in group if not active}
        assert selected == {"rgb(14, 116, 144)"}, group  # the accent, #0e7490
        assert not selected & others, group
