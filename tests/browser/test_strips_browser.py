"""Strips page in Chromium: an adversarial strip from an uploaded FSDD clip toward another
class is built live — frame cards appear one after another, before the last one is computed —
and ends with K + 1 cards (frame 0 is the clip itself) and a player.

Known answers: the probability chart holds frames 0..K in order, and projected gradient ascent
on the target class raises its probability from the first frame to the last.
"""

from __future__ import annotations

import time

import pytest

CLIP = "7_jackson_0.wav"
K = 6
BUILD_TIMEOUT_S = 300.0  # K frames × 5 steps plus a card each, on a shared, loaded CPU


def _watch_cards(page) -> list[int]:
    """Poll the number of frame cards every ~100 ms until the player shows; the counts seen."""
    counts: list[int] = []
    cards, player = page.locator(".hs-strip-frame"), page.locator(".hs-strip-player")
    deadline = time.monotonic() + BUILD_TIMEOUT_S
    while time.monotonic() < deadline:
        n = cards.count()
        if not counts or counts[-1] != n:
            counts.append(n)
        if player.is_visible():
            return counts + [cards.count()]
        page.wait_for_timeout(100)
    pytest.fail(f"the strip was not built within {BUILD_TIMEOUT_S:.0f} s; counts {counts}")


@pytest.mark.browser
def test_strip_frames_appear_while_it_is_built(page, ui, fsdd_dir, tmp_path):
    ui.upload(page, fsdd_dir / CLIP)
    top, _ = ui.header_prediction(page, CLIP)
    page.locator(".bk-tab", has_text="Strips").click()
    page.locator(".hs-strip-note").filter(has_text=CLIP).wait_for()
    target = "3" if top != "3" else "4"
    page.locator(".hs-strip-target select").select_option(label=target)
    frames_box = page.get_by_label("Frames (K)", exact=True)
    frames_box.fill(str(K))
    frames_box.press("Enter")  # Bokeh's NumericInput sends its value on change
    page.wait_for_timeout(1000)  # let both values reach the server before Build is pressed
    page.locator(".hs-strip-build button").click()
    counts = _watch_cards(page)
    assert counts[-1] == K + 1, f"expected {K + 1} cards (frames 0..{K}), counts seen {counts}"
    partial = {n for n in counts if 0 < n < K + 1}
    assert len(partial) >= 2, f"cards did not appear one by one: counts seen {counts}"
    data = ui.figure_columns(page, "Probability per frame", "frame", "target")
    assert data is not None and data["frame"] == list(range(K + 1)), data
    assert data["target"][-1] > data["target"][0], data
    page.locator(".hs-strip-frame").first.scroll_into_view_if_needed()
    ui.shot(page, tmp_path, "strips")
