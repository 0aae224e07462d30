"""Inspect page in Chromium: an uploaded FSDD clip gets the CLI's prediction, and tapping a
tile of the conv1 mosaic gives that filter's sonification as a playable 1 s clip."""

from __future__ import annotations

import json
import os
import subprocess
import time
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLIP = "7_jackson_0.wav"

# Screen position (viewport CSS pixels) of the centre of `channel`'s tile in the mosaic whose
# title starts with `prefix`: found through BokehJS's views, so it follows any layout change.
TILE_CENTRE_JS = """([prefix, channel]) => {
  const queue = [...Bokeh.index], seen = new Set();
  while (queue.length) {
    const v = queue.shift();
    if (seen.has(v)) continue;
    seen.add(v);
    queue.push(...v.children());
    const title = v.model && v.model.title && v.model.title.text;
    if (!v.frame || typeof title !== 'string' || !title.startsWith(prefix)) continue;
    for (const r of v.model.renderers) {
      const d = r.data_source && r.data_source.data;
      if (!d || !d.channel) continue;
      const i = Array.from(d.channel).indexOf(channel);
      const x = (d.left[i] + d.right[i]) / 2, y = (d.bottom[i] + d.top[i]) / 2;
      const rect = v.canvas_view.el.getBoundingClientRect();
      return {x: rect.left + v.frame.x_scale.compute(x), y: rect.top + v.frame.y_scale.compute(y)};
    }
  }
  return null;
}"""


def cli_prediction(checkpoint: Path, clip: Path) -> dict:
    """``hearsight predict --json`` of one file, run as a user would."""
    out = subprocess.run([sys.executable, "-m", "cli.main", "predict", "--model",
                          str(checkpoint), "--json", str(clip)], cwd=REPO, capture_output=True,
                         text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)[0]


@pytest.mark.browser
def test_upload_shows_the_same_prediction_as_the_cli(page, ui, tiny_checkpoint, fsdd_dir,
                                                      tmp_path):
    clip = fsdd_dir / CLIP
    ui.upload(page, clip)
    top, percent = ui.header_prediction(page, CLIP)
    ui.shot(page, tmp_path, "inspect")
    record = cli_prediction(tiny_checkpoint, clip)
    assert top == record["top"]
    # The header shows one decimal of a percentage: rounding moves it by at most 0.05.
    assert abs(percent - 100.0 * record["probability"]) <= 0.05 + 1e-9
    assert page.locator(".hs-alert").is_hidden()
    # A second clip redraws the same figures in place: the bars the browser holds are the
    # CLI's probabilities of the new clip, most likely first.
    second = fsdd_dir / "2_nicolas_4.wav"
    ui.upload(page, second)
    top2, _ = ui.header_prediction(page, second.name)
    probs = cli_prediction(tiny_checkpoint, second)["probs"]
    want = sorted(probs, key=lambda c: -probs[c])
    title, deadline = f"Class probabilities — top: {top2}", time.monotonic() + 60
    while True:  # the data patch may land just after the header's
        bars = ui.figure_columns(page, title, "label", "prob") or {"label": []}
        if bars["label"] == want or time.monotonic() > deadline:
            break
        page.wait_for_timeout(250)
    assert bars["label"] == want and top2 == want[0]
    assert bars["prob"] == pytest.approx([probs[c] for c in want], abs=1e-5)


@pytest.mark.browser
def test_clicking_a_conv1_tile_plays_that_filter(page, ui, fsdd_dir, tmp_path):
    ui.upload(page, fsdd_dir / CLIP)
    ui.header_prediction(page, CLIP)
    # The clip's most active conv1 filter is shown on upload; wait for it so the tap below is
    # what the view answers.
    page.locator(".hs-filter-view").filter(has_text="conv1 · ").wait_for()
    mosaic = page.locator(".hs-mosaic-conv1")
    mosaic.scroll_into_view_if_needed()
    page.wait_for_timeout(500)  # let the scroll settle before reading positions
    channel = 5
    pos = page.evaluate(TILE_CENTRE_JS, ["conv1:", channel])
    assert pos is not None, "the conv1 mosaic figure was not found among BokehJS's views"
    page.mouse.click(pos["x"], pos["y"])
    view = page.locator(".hs-filter-view").filter(has_text=f"conv1 · {channel}")
    view.wait_for()
    audio = page.locator(".hs-filter-audio audio")
    audio.wait_for(state="attached")
    duration = ui.audio_duration(audio)
    assert abs(duration - 1.0) <= 0.05, f"filter audio lasts {duration} s, the clip 1.0 s"
    view.scroll_into_view_if_needed()
    ui.shot(page, tmp_path, "inspect-filter")
