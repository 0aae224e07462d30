"""Bad input in Chromium: a corrupt upload shows a visible alert naming the file and the
problem, and the session goes on — the next good upload is analysed and clears the alert."""

from __future__ import annotations

import numpy as np
import pytest

GOOD = "7_jackson_0.wav"


@pytest.mark.browser
def test_corrupt_upload_alerts_and_the_page_keeps_working(page, ui, fsdd_dir, tmp_path):
    junk = np.random.default_rng(0).bytes(4096)  # no RIFF header: no decoder accepts it
    ui.upload(page, name="bad.wav", data=junk)
    alert = page.locator(".hs-alert")
    alert.wait_for(state="visible")
    message = ui.text(page, "hs-alert")
    assert "bad.wav" in message and "cannot be decoded" in message, message
    ui.shot(page, tmp_path, "error")
    # The header never claimed a prediction for the bad file.
    assert "bad.wav" not in ui.text(page, "hs-inspect-header")
    ui.upload(page, fsdd_dir / GOOD)
    top, percent = ui.header_prediction(page, GOOD)
    assert top in [str(d) for d in range(10)] and 10.0 <= percent <= 100.0
    alert.wait_for(state="hidden")
