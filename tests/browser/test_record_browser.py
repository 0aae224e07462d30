"""Recording in Chromium through its fake microphone (``--use-fake-device-for-media-stream``,
which plays a periodic beep): the take is encoded as WAV in the browser, decoded by the server
and classified, so the Inspect header names the recording with a prediction."""

from __future__ import annotations

import pytest


@pytest.mark.browser
def test_recording_from_the_fake_microphone_gets_a_prediction(page, ui, tmp_path):
    page.locator(".hs-record").click()
    top, percent = ui.header_prediction(page, "recording-1.wav")
    assert top in [str(d) for d in range(10)]  # the tiny model's labels: the FSDD digits
    assert 10.0 <= percent <= 100.0  # the top of 10 classes holds at least a tenth
    status = page.locator(".hs-record-status").inner_text()
    assert status.startswith("recorded "), status
    assert page.locator(".hs-alert").is_hidden()
    page.locator(".hs-now").filter(has_text="recording-1.wav").wait_for()
    ui.shot(page, tmp_path, "record")
