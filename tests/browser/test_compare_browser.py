"""Edit & compare page in Chromium: an edit chain (reverse, then +6 dB gain) gives two
predictions side by side, and the edited one is the model's answer for the reversed clip.

Known answer: gain is undone by the peak normalisation every clip gets, so the edited clip
equals the prepared original played backwards.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

CLIP = "7_jackson_0.wav"
PRED_RE = re.compile(r"(\S+)\s*\(([\d.]+)%\)")


def _shown(page, ui, css: str) -> tuple[str, float]:
    text = ui.text(page, css)
    m = PRED_RE.search(text)
    assert m, f".{css} shows {text!r}, not a 'class (p%)' prediction"
    return m.group(1), float(m.group(2))


def _expected(checkpoint, path) -> tuple[tuple[str, float], tuple[str, float]]:
    """(top, percent) of the prepared clip and of its time reversal at +6 dB (clipped at full
    scale, nothing normalised after the edits), computed in-process."""
    from data.audio import fit_to_window, load_audio, peak_normalise
    from engine.predictor import Predictor

    pred = Predictor.load(checkpoint)
    wave, _ = load_audio(path.read_bytes(), sample_rate=pred.params.sample_rate, name=path.name)
    wave = peak_normalise(fit_to_window(wave, pred.params.n_samples)).astype(np.float32)
    edited = np.clip(wave[::-1] * np.float32(10 ** (6 / 20)), -1.0, 1.0)
    probs = pred.predict_waves(np.stack([wave, edited]))
    return tuple((pred.labels[int(p.argmax())], 100.0 * float(p.max())) for p in probs)


def _add_edit(page, op: str, label: str, params_text: str) -> None:
    page.locator(".hs-edit-op select").select_option(op)
    # The parameter widgets follow the op from the server; wait so "Add" sends the new op.
    page.locator(".hs-edit-params").filter(has_text=params_text).wait_for()
    page.locator(".hs-add-edit button").click()
    page.locator(".hs-chain").filter(has_text=label).wait_for()


@pytest.mark.browser
def test_edit_chain_shows_original_and_edited_predictions(page, ui, tiny_checkpoint,
                                                           fsdd_dir, tmp_path):
    ui.upload(page, fsdd_dir / CLIP)
    header = ui.header_prediction(page, CLIP)
    page.locator(".bk-tab", has_text="Edit & compare").click()
    page.locator(".hs-compare-header").filter(has_text=CLIP).wait_for()
    _add_edit(page, "reverse", "reverse()", "no parameters")
    _add_edit(page, "gain", "gain(db=+6)", "db")
    chain = ui.text(page, "hs-chain")
    assert chain.index("reverse()") < chain.index("gain(db=+6)"), chain
    # Both sides drawn: a player each, and a prediction each.
    assert page.locator(".hs-audio-original audio").count() == 1
    assert page.locator(".hs-audio-edited audio").count() == 1
    original, edited = _shown(page, ui, "hs-pred-original"), _shown(page, ui, "hs-pred-edited")
    ui.shot(page, tmp_path, "compare")
    want_original, want_edited = _expected(tiny_checkpoint, fsdd_dir / CLIP)
    assert original == header  # the same clip, the same numbers on both pages
    for shown, want in ((original, want_original), (edited, want_edited)):
        assert shown[0] == want[0]
        assert abs(shown[1] - want[1]) <= 0.05 + 1e-9  # one decimal of a percentage shown
    assert page.locator(".hs-undo button").is_enabled()
