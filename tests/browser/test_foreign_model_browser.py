"""A user's own Hugging Face model (a tiny random wav2vec2 folder) in the served app: every
tab opens on an uploaded clip, does its work, and shows the model's own label names."""

from __future__ import annotations

import io

import numpy as np
import pytest

LABELS = ("yes", "no", "maybe")
CLIP = "two-tones.wav"


def _two_tones() -> bytes:
    import soundfile as sf

    sr = 16000
    t = np.arange(sr) / sr
    wave = 0.3 * np.sin(2 * np.pi * 500 * t) + 0.2 * np.sin(2 * np.pi * 2000 * t) * (t > 0.5)
    buf = io.BytesIO()
    sf.write(buf, wave.astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _tab(page, name: str) -> None:
    page.locator(".bk-tab", has_text=name).click()


def _no_alert(page, server) -> None:
    alert = page.locator(".hs-alert")
    # the banner's text lies in its shadow root (inner_text() of the element is empty)
    assert alert.count() == 0 or alert.first.is_hidden(), alert.first.evaluate(
        "(el) => Array.from((el.shadowRoot || el).children).filter((c) => c.tagName === 'DIV')"
        ".map((c) => c.innerText).join(' ')")
    assert "Traceback" not in server.log_tail(200_000), server.log_tail()


@pytest.mark.browser
def test_every_tab_works_on_a_hugging_face_model(foreign_page, ui, foreign_server, tmp_path):
    page = foreign_page
    ui.upload(page, name=CLIP, data=_two_tones())
    top, percent = ui.header_prediction(page, CLIP)
    assert top in LABELS and 0 < percent <= 100
    ui.shot(page, tmp_path, "foreign-inspect")
    _no_alert(page, foreign_server)

    _tab(page, "Edit & compare")
    page.locator(".hs-compare-header").filter(has_text=CLIP).wait_for()
    page.locator(".hs-edit-op select").select_option("reverse")
    page.locator(".hs-add-edit button").click()
    page.locator(".hs-chain").filter(has_text="reverse").wait_for()
    ui.shot(page, tmp_path, "foreign-compare")
    _no_alert(page, foreign_server)

    _tab(page, "Explain")
    page.locator(".hs-explain-header").filter(has_text=CLIP.removesuffix(".wav")).wait_for()
    targets = [t.strip() for t in page.locator(".hs-explain-target select option").all_inner_texts()]
    assert set(LABELS) <= set(targets)
    # the maps, curves and ranking are done when the progress line empties (the first compile
    # of the bridged model's gradients takes minutes on 2 busy cores)
    for _ in range(1200):
        if not ui.text(page, "hs-explain-progress"):
            break
        page.wait_for_timeout(500)
    assert not ui.text(page, "hs-explain-progress"), "Explain did not finish in 10 minutes"
    page.locator(".hs-explain-curves").scroll_into_view_if_needed()
    ui.shot(page, tmp_path, "foreign-explain")
    _no_alert(page, foreign_server)

    _tab(page, "Maximise")
    page.locator(".hs-actmax-run button").wait_for(state="visible")
    classes = [t.strip() for t in page.locator(".hs-actmax-class select option").all_inner_texts()]
    assert set(LABELS) <= set(classes)
    page.locator(".hs-actmax-run button").click()
    audio = page.locator(".hs-actmax-audio audio")
    audio.wait_for(state="attached")
    assert abs(ui.audio_duration(audio) - 1.0) < 0.05
    ui.shot(page, tmp_path, "foreign-maximise")
    _no_alert(page, foreign_server)

    _tab(page, "Strips")
    page.locator(".hs-strip-note").filter(has_text=CLIP).wait_for()
    page.locator(".hs-strip-build button").click()
    page.locator(".hs-strip-frame").first.wait_for()
    # A session runs one long job at a time (Limits.jobs_per_session): Compute pressed while
    # the strip is still built is refused. The strip's player shows when its job has ended.
    page.locator(".hs-strip-player").wait_for(state="visible")
    ui.shot(page, tmp_path, "foreign-strips")
    _no_alert(page, foreign_server)

    _tab(page, "Embeddings")
    page.locator(".hs-emb-compute button").click()
    # the layouts' summary, or the refusal's banner (then _no_alert says why, not a time-out)
    page.locator(".hs-emb-progress").filter(has_text="points ·").or_(
        page.locator(".hs-alert:visible")).first.wait_for()
    _no_alert(page, foreign_server)
    page.locator(".hs-emb-position").filter(has_text="layer").wait_for()
    ui.shot(page, tmp_path, "foreign-embeddings")
    _no_alert(page, foreign_server)
