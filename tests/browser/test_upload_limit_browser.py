"""Uploads in Chromium against a server with a small upload limit (HEARSIGHT_UPLOAD_BYTES):
a file over the limit is refused in the browser, never sent, with the file and the limit
named; the session goes on (later uploads predict); the same file again loads again."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
LIMIT = 60_000  # FSDD clips are 5-20 kB
GOOD, OTHER = "7_jackson_0.wav", "3_george_0.wav"


@pytest.fixture(scope="module")
def small_limit_server(chromium_path, tiny_checkpoint, hearsight_home, tmp_path_factory):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path_factory.mktemp("server-small") / "serve.log"
    env = {**os.environ, "HEARSIGHT_HOME": str(hearsight_home),
           "HEARSIGHT_UPLOAD_BYTES": str(LIMIT),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--model",
                                 str(tiny_checkpoint), "--port", str(port)], cwd=REPO, env=env,
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text(errors="replace")[-4000:]
            try:
                with urllib.request.urlopen(url, timeout=5):
                    break
            except OSError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(1.0)
        yield url, proc, log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)


@pytest.mark.browser
def test_oversized_upload_is_refused_in_the_browser_and_the_session_goes_on(
        browser, small_limit_server, fsdd_dir, ui, tmp_path):
    url, proc, log = small_limit_server
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(120_000)
    try:
        page.goto(url)
        page.locator(".hs-upload input[type=file]").wait_for(state="attached")
        ui.upload(page, fsdd_dir / OTHER)
        ui.header_prediction(page, OTHER)
        big = np.random.default_rng(0).bytes(LIMIT + 20_000)
        ui.upload(page, name="big.wav", data=big)
        status = page.locator(".hs-upload-status")
        status.filter(has_text="big.wav").wait_for()
        assert "80,000 bytes, over the 60,000-byte upload limit" in status.text_content()
        page.locator(".hs-alert").wait_for(state="visible")
        alert = ui.text(page, "hs-alert")
        assert "big.wav: file is 80,000 bytes, over the 60,000-byte limit" in alert, alert
        ui.shot(page, tmp_path, "upload-refused")
        # The connection is alive: the next upload predicts and clears the alert.
        ui.upload(page, fsdd_dir / GOOD)
        ui.header_prediction(page, GOOD)
        page.locator(".hs-alert").wait_for(state="hidden")
        # The same file again, after another clip and under another name, loads again.
        ui.upload(page, fsdd_dir / OTHER)
        ui.header_prediction(page, OTHER)
        ui.upload(page, fsdd_dir / GOOD)
        ui.header_prediction(page, GOOD)
        ui.upload(page, name="again.wav", data=(fsdd_dir / GOOD).read_bytes())
        ui.header_prediction(page, "again.wav")
        assert proc.poll() is None
        assert b"big.wav" not in log.read_bytes() or log.stat().st_size < 100_000
    finally:
        context.close()
