"""Maximise page in Chromium: a short activation maximisation streams its progress — the step
counter and the objective curve update live, several times before the run ends — and the
result is a playable 1 s clip with the own classifier's verdict.

Known answers: the step counter ends at ``steps / steps``, the curve holds one point per step
(its x values are 1..steps, in order), and the Griffin-Lim clip lasts the model's window (1.0 s).
"""

from __future__ import annotations

import re
import time

import pytest

# Enough steps that the run outlasts a few page updates: after compiling, a step takes ~0.05 s
# while one update of the page takes ~0.5-1.5 s on a loaded CPU (the page shows the newest).
STEPS, STARTS = 100, 2
STEP_RE = re.compile(r"step (\d+) / (\d+)")
RUN_TIMEOUT_S = 240.0  # 10 steps of 2 starts on a shared, loaded CPU


def _set_number(page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")  # Bokeh's NumericInput sends its value on change (Enter or blur)


def _watch_run(page, ui) -> list[tuple[str, int]]:
    """Poll the step counter and the curve every ~100 ms until the result audio shows;
    return the distinct (counter text, curve points) pairs in the order seen."""
    seen: list[tuple[str, int]] = []
    audio = page.locator(".hs-actmax-audio audio")
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        steps = (ui.figure_columns(page, "Objective per step", "step") or {}).get("step", [])
        state = (ui.text(page, "hs-actmax-step"), len(steps))
        if not seen or seen[-1] != state:
            seen.append(state)
        if audio.is_visible():
            return seen
        page.wait_for_timeout(100)
    pytest.fail(f"the maximisation did not finish within {RUN_TIMEOUT_S:.0f} s; seen {seen}")


@pytest.mark.browser
def test_short_maximisation_updates_live_and_ends_playable(page, ui, tmp_path):
    page.locator(".bk-tab", has_text="Maximise").click()
    _set_number(page, "Steps", STEPS)
    _set_number(page, "Starts", STARTS)
    page.wait_for_timeout(1000)  # let both values reach the server before Run is pressed
    page.locator(".hs-actmax-run button").click()
    seen = _watch_run(page, ui)
    texts = [t for t, _ in seen if STEP_RE.search(t)]
    assert all(int(STEP_RE.search(t).group(2)) == STEPS for t in texts), seen
    final = f"step {STEPS} / {STEPS}"
    live = {t for t in texts if t != final}
    assert len(live) >= 3, f"the counter changed {len(live)} time(s) before the end: {seen}"
    curve_counts = {n for _, n in seen if 0 < n < STEPS}
    assert len(curve_counts) >= 2, f"the curve grew in fewer than 2 stages: {seen}"
    assert ui.figure_columns(page, "Objective per step", "step") == {"step": list(range(1, STEPS + 1))}
    page.locator(".hs-actmax-step").filter(has_text=final).wait_for()
    verdict = ui.text(page, "hs-actmax-verdict")
    assert f"after {STEPS} step(s)" in verdict and "Own classifier" in verdict, verdict
    duration = ui.audio_duration(page.locator(".hs-actmax-audio audio"))
    assert abs(duration - 1.0) <= 0.05, f"the maximised clip lasts {duration} s, not 1.0 s"
    page.locator(".hs-actmax-step").scroll_into_view_if_needed()
    ui.shot(page, tmp_path, "maximise")
