"""Embeddings page in Chromium: Compute projects the model's test split (250 FSDD clips) and
shows the cloud; moving the layer slider redraws it; a box selection over the cloud lists the
utterances inside it; "Open in Inspect" hands the clicked utterance to the Inspect page.

Known answers: the slider at its right end names the last layer (``logits``, 6 of 6); a box
over the whole frame lists between 1 and all 250 points; the Inspect header names the item.
"""

from __future__ import annotations

import re

import pytest

N_ITEMS = 250  # FSDD takes 0-4 of 5 speakers × 10 digits: the test split
SELECTED_RE = re.compile(r"([\d,]+) selected")


def _compute(page, ui) -> None:
    page.locator(".bk-tab", has_text="Embeddings").click()
    page.locator(".hs-emb-compute button").click()
    page.locator(".hs-emb-progress").filter(has_text="points ·").wait_for()
    progress = ui.text(page, "hs-emb-progress")
    assert progress.startswith(f"{N_ITEMS} points"), progress
    page.wait_for_function(f"(a) => {{ const d = ({ui.FIGURE_COLUMNS_JS})(a); "
                           "return d !== null && d.image.length === 1; }",
                           arg=["Layer walkthrough", ["image"]])
    page.locator(".hs-emb-position").filter(has_text="1 of").wait_for()
    # the slider's title names the layer, not the position number
    page.locator(".hs-emb-slider").filter(has_text="conv1").wait_for(timeout=30_000)


def play_first_row(page, rows, item_id: str) -> None:
    """Click the list's first row (``item_id``) until the player says it plays it."""
    # Imported here, not at module level: without playwright the conftest's fixtures skip
    # (or, where a browser is required, fail) this test instead of aborting the collection.
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    playing = page.locator(".hs-emb-playing").filter(has_text=item_id)
    for attempt in range(3):  # a click while Tabulator redraws its rows can be lost under load
        if attempt or "tabulator-selected" not in (rows.first.get_attribute("class") or ""):
            if attempt:  # selected but not playing: the click was lost; select it afresh
                rows.nth(1).click()
            rows.first.click()
        try:
            playing.wait_for(timeout=30_000)
            return
        except PlaywrightTimeout:
            if attempt == 2:
                raise


def _drag(page, handle, x: float, y: float) -> None:
    box = handle.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(x, y, steps=8)
    page.mouse.up()


def _move_slider_to_end(page) -> None:
    page.locator(".hs-emb-slider").scroll_into_view_if_needed()  # mouse events need it shown
    track = page.locator(".hs-emb-slider .noUi-base").bounding_box()
    _drag(page, page.locator(".hs-emb-slider .noUi-handle"), track["x"] + track["width"] + 20,
          track["y"] + track["height"] / 2)


def _box_select_everything(page, ui) -> int:
    page.locator(".hs-emb-cloud [title='Box Select']").click()
    canvas = page.locator(".hs-emb-cloud .bk-Canvas").first
    # The 800-pixel cloud is taller than the viewport below the controls: the drag must start
    # and end on screen (mouse coordinates are the viewport's) and below the page's fixed
    # header (a press there never reaches the canvas), so the cloud is scrolled to the bottom.
    canvas.evaluate("(el) => el.scrollIntoView({block: 'end'})")
    frame = canvas.bounding_box()
    header = page.evaluate("() => Math.max(0, ...Array.from(document.querySelectorAll("
                           "'#header, header, .bk-header')).map((e) => "
                           "e.getBoundingClientRect().bottom))")
    # A press on an axis starts no selection: the box starts inside the plot's frame, right of
    # the y axis's tick labels (their width follows the layer's range) and below the title.
    top = max(frame["y"] + 30, header) + 20
    bottom = min(frame["y"] + frame["height"], page.viewport_size["height"]) - 50
    page.mouse.move(frame["x"] + 90, top)
    page.mouse.down()
    page.mouse.move(frame["x"] + frame["width"] - 50, bottom, steps=10)
    page.mouse.up()
    page.locator(".hs-emb-table-note").filter(has_text=SELECTED_RE).wait_for()
    text = ui.text(page, "hs-emb-table-note")
    return int(SELECTED_RE.search(text).group(1).replace(",", ""))


@pytest.mark.browser
def test_cloud_slider_selection_and_open_in_inspect(page, ui, tmp_path):
    _compute(page, ui)
    cloud = page.locator(".hs-emb-cloud")
    cloud.scroll_into_view_if_needed()
    before = cloud.screenshot()
    _move_slider_to_end(page)
    page.locator(".hs-emb-position").filter(has_text="logits (6 of 6)").wait_for()
    page.wait_for_timeout(1500)  # the redrawn image follows the caption over the websocket
    cloud.scroll_into_view_if_needed()
    assert cloud.screenshot() != before, "the cloud image did not change with the slider"
    selected = _box_select_everything(page, ui)
    assert 1 <= selected <= N_ITEMS, selected
    rows = page.locator(".hs-emb-table .tabulator-row")
    rows.first.wait_for()
    # Tabulator draws only the rows in view (a virtual DOM), so count loosely.
    assert 1 <= rows.count() <= min(selected, 50)
    item_id = rows.first.locator("[tabulator-field=item_id]").inner_text().strip()
    m = re.fullmatch(r"fsdd/(\d_[a-z]+_[0-4])", item_id)  # a test-split FSDD file (takes 0-4)
    assert m, item_id
    page.locator(".hs-emb-slider").scroll_into_view_if_needed()  # slider, caption and cloud
    ui.shot(page, tmp_path, "embeddings")
    play_first_row(page, rows, item_id)
    page.locator(".hs-emb-open button").click()
    page.locator(".bk-tab.bk-active", has_text="Inspect").wait_for()  # the app switched tabs
    top, percent = ui.header_prediction(page, m.group(1))  # the name without its folder
    assert top in [str(d) for d in range(10)] and 10.0 <= percent <= 100.0
