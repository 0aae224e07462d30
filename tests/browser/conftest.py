"""The real ``hearsight serve`` in a subprocess, and headless Chromium driven by playwright.

Browser tests need Debian's Chromium at ``/usr/bin/chromium`` (never ``playwright install``).
Without it they are skipped on a workstation and FAIL in CI (env ``CI`` set), so a CI image
that lost its browser cannot pass silently.

Screenshots go to each test's ``tmp_path``; with ``HEARSIGHT_UPDATE_DOCS=1`` the tests also
write the documentation screenshots (1280×800) into ``docs/``.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--use-fake-device-for-media-stream",
                 "--use-fake-ui-for-media-stream"]
VIEWPORT = {"width": 1280, "height": 800}
START_TIMEOUT_S = 120.0
UI_TIMEOUT_MS = 120_000  # a forward pass + sonification on 2 shared CPU cores can take a while
HEADER_RE = re.compile(r"→\s*(\S+)\s*\(([\d.]+)%\)")


def _unavailable(reason: str) -> None:
    # scripts/test.sh (the README's test command and CI's) installs the browser and sets
    # HEARSIGHT_REQUIRE_BROWSER, so there a missing browser fails; a bare pytest run skips.
    if os.environ.get("CI") or os.environ.get("HEARSIGHT_REQUIRE_BROWSER"):
        pytest.fail(f"browser tests cannot run: {reason} (a browser is required here)")
    pytest.skip(f"browser tests need {reason}")


@dataclass
class Server:
    """A running ``hearsight serve``: its URL, process and log file."""

    url: str
    process: subprocess.Popen
    log: Path

    def log_tail(self, chars: int = 6000) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text[-chars:]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    # The server runs in its own session, so its whole process group can be ended by id.
    for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue


def _wait_until_up(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"hearsight serve exited with status {server.process.returncode}:\n"
                        f"{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1.0)
    _stop(server.process)
    pytest.fail(f"hearsight serve did not answer within {START_TIMEOUT_S:.0f} s:\n"
                f"{server.log_tail()}")


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    """Chromium's path, after checking that it and playwright are installed."""
    if not CHROMIUM.exists():
        _unavailable(f"Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("the python package playwright (pip install hearsight[test])")
    return CHROMIUM


def serving(model: str, hearsight_home: Path, log: Path, *extra: str):
    """Start ``python -m cli.main serve --model MODEL EXTRA...`` on a free loopback port and
    wait until it answers; returns the :class:`Server` (stop it with :func:`stop_server`)."""
    port = _free_port()
    env = {**os.environ, "HEARSIGHT_HOME": str(hearsight_home),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "cli.main", "serve", "--model", str(model),
           "--port", str(port), "--address", "127.0.0.1", *extra]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    srv = Server(url=f"http://127.0.0.1:{port}/", process=proc, log=log)
    try:
        _wait_until_up(srv)
    except BaseException:
        _stop(proc)
        raise
    return srv


def stop_server(srv: Server) -> None:
    _stop(srv.process)


@pytest.fixture(scope="session")
def server(chromium_path, tiny_checkpoint, hearsight_home, tmp_path_factory):
    """``python -m cli.main serve --model <tiny checkpoint>`` on a free loopback port."""
    srv = serving(tiny_checkpoint, hearsight_home, tmp_path_factory.mktemp("server") / "serve.log")
    try:
        yield srv
    finally:
        _stop(srv.process)


@pytest.fixture(scope="session")
def foreign_server(chromium_path, tiny_hf, hearsight_home, tmp_path_factory):
    """``serve --model hf:<tiny wav2vec2 folder>``: a user's own waveform model."""
    log = tmp_path_factory.mktemp("foreign-server") / "serve.log"
    srv = serving(f"hf:{tiny_hf('wav2vec2')}", hearsight_home, log)
    try:
        yield srv
    finally:
        _stop(srv.process)


@pytest.fixture
def foreign_page(browser, foreign_server, tmp_path):
    """:func:`page` on :func:`foreign_server`."""
    yield from _opened(browser, foreign_server, tmp_path)


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, server, tmp_path):
    """A fresh browser context at 1280×800 with the app loaded; screenshots on teardown."""
    yield from _opened(browser, server, tmp_path)


def _opened(browser, srv: Server, tmp_path):
    context = browser.new_context(viewport=VIEWPORT)
    pg = context.new_page()
    pg.set_default_timeout(UI_TIMEOUT_MS)
    pg.goto(srv.url, timeout=UI_TIMEOUT_MS)
    pg.locator(".hs-upload input[type=file]").wait_for(state="attached")
    try:
        yield pg
    finally:
        pg.screenshot(path=str(tmp_path / "final.png"))
        context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the server's log to a failing browser test's report."""
    outcome = yield
    report = outcome.get_result()
    srv = getattr(item, "funcargs", {}).get("server")
    if report.failed and isinstance(srv, Server):
        report.sections.append(("hearsight serve log", srv.log_tail()))


# -- helpers the tests share ---------------------------------------------------------------
def upload(page, path: str | Path | None = None, *, name: str = "", data: bytes = b"") -> None:
    """Put a file (from disk, or ``data`` named ``name``) into the sidebar's FileInput."""
    target = page.locator(".hs-upload input[type=file]")
    if path is not None:
        target.set_input_files(str(path))
    else:
        target.set_input_files({"name": name, "mimeType": "audio/wav", "buffer": data})


# Panel renders a pane's content inside the shadow root of its element (the one carrying the
# css class); the first <div> there holds the rendered Markdown/HTML.
PANE_TEXT_JS = """(el) => {
  const root = el.shadowRoot || el;
  const div = Array.from(root.children).find((c) => c.tagName === 'DIV');
  return div ? div.textContent : "";
}"""


def pane_text(page, css: str) -> str:
    """The visible text of the Markdown/HTML pane with css class ``css`` (no dot)."""
    return page.locator(f".{css}").evaluate(PANE_TEXT_JS).strip()


def header_prediction(page, clip_name: str) -> tuple[str, float]:
    """Wait until the Inspect header names ``clip_name``; return (top class, percent shown)."""
    header = page.locator(".hs-inspect-header").filter(has_text=clip_name)
    header.wait_for()
    text = pane_text(page, "hs-inspect-header")
    m = HEADER_RE.search(text)
    assert m, f"the header {text!r} shows no 'class (p%)' prediction"
    return m.group(1), float(m.group(2))


# The columns of the first data source (holding ``columns[0]``) behind the figure titled
# ``title``, found by walking BokehJS's views; null when there is no such figure yet.
FIGURE_COLUMNS_JS = """([title, columns]) => {
  const queue = [...Bokeh.index], seen = new Set();
  while (queue.length) {
    const v = queue.shift();
    if (seen.has(v)) continue;
    seen.add(v);
    queue.push(...v.children());
    const t = v.model && v.model.title && v.model.title.text;
    if (t !== title) continue;
    for (const r of v.model.renderers) {
      const d = r.data_source && r.data_source.data;
      if (d && d[columns[0]]) return Object.fromEntries(columns.map((c) => [c, Array.from(d[c])]));
    }
  }
  return null;
}"""

AUDIO_DURATION_JS = """(el) => new Promise((resolve) => {
  if (el.readyState >= 1 && isFinite(el.duration)) { resolve(el.duration); return; }
  el.addEventListener('loadedmetadata', () => resolve(el.duration), {once: true});
  el.load();
})"""


def figure_columns(page, title: str, *columns: str) -> dict | None:
    """``{column: list}`` of the figure titled ``title`` as the browser holds it, or None."""
    return page.evaluate(FIGURE_COLUMNS_JS, [title, list(columns)])


def audio_duration(locator) -> float:
    """Duration in seconds of the ``<audio>`` element ``locator`` (after its metadata loads)."""
    return float(locator.evaluate(AUDIO_DURATION_JS))


def shot(page, tmp_path: Path, name: str) -> Path:
    """Screenshot into ``tmp_path``; also into ``docs/`` when HEARSIGHT_UPDATE_DOCS=1."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path))
    if os.environ.get("HEARSIGHT_UPDATE_DOCS") == "1":
        DOCS.mkdir(exist_ok=True)
        page.screenshot(path=str(DOCS / f"{name}.png"))
    return path


@pytest.fixture
def ui():
    """The helpers above, for tests (conftest modules are not importable by name)."""
    from types import SimpleNamespace

    return SimpleNamespace(upload=upload, header_prediction=header_prediction, shot=shot,
                           serving=serving, stop_server=stop_server,
                           text=pane_text, figure_columns=figure_columns,
                           audio_duration=audio_duration, FIGURE_COLUMNS_JS=FIGURE_COLUMNS_JS)
