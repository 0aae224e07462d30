"""The real ``hearsight serve --auth-file`` in a subprocess, in the default suite (issue 21,
item 14: the README says basic auth is tested, but that test ran only under ``-m slow``), and
the pages it serves reference nothing outside this server (item 7: the page requested Google
Fonts, and the login page Panel's CDN, so both waited on the network and failed offline).

Panel's basic auth is a login form, not HTTP's ``WWW-Authenticate``: without the session
cookie the app answers ``302`` to ``/login`` and its websocket ``403``; a right password sets
the cookie and the app page answers ``200``.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 150.0
PASSWORD = "secretpw"
# A tag that makes the browser fetch something, and url()/@import in CSS, pointing off-host.
EXTERNAL_TAG = re.compile(r"""<(?:link|script|img|iframe|source)\b[^>]*?\b(?:href|src)\s*=\s*"""
                          r"""["']((?:https?:)?//[^"']+)""", re.I)
EXTERNAL_CSS = re.compile(r"""(?:@import\s+(?:url\()?|url\()\s*["']?((?:https?:)?//[^"')\s]+)""",
                          re.I)
LOCAL_HOSTS = ("127.0.0.1", "localhost")


@pytest.fixture(scope="module")
def server(tiny_checkpoint, tmp_path_factory, free_port):
    """``python -m cli.main serve --model <tiny> --auth-file <secret>`` on a free port."""
    tmp = tmp_path_factory.mktemp("auth-server")
    secret = tmp / "auth"
    secret.write_text(PASSWORD + "\n")
    port = free_port()
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT),
           "HEARSIGHT_HOME": str(tmp / "home")}
    env.pop("HEARSIGHT_AUTH", None)
    log = tmp / "serve.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--model",
                                 str(tiny_checkpoint), "--port", str(port), "--auth-file",
                                 str(secret)], cwd=ROOT, env=env, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"hearsight serve exited ({proc.returncode}):\n{log.read_text()}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"hearsight serve did not listen in {START_TIMEOUT_S:.0f} s:\n"
                            f"{log.read_text()}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _status(opener, url, data=None):
    try:
        with opener.open(url, data=data, timeout=120) as resp:
            return resp.status, resp.headers, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers, exc.read().decode("utf-8", "replace")


def _login(base, password):
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    form = urllib.parse.urlencode({"username": "ann", "password": password}).encode()
    status, _, html = _status(opener, base + "/login", data=form)
    return opener, jar, status, html


def test_without_credentials_nothing_of_the_app_is_served(server, no_redirect_opener):
    bare = no_redirect_opener()
    status, headers, body = _status(bare, server + "/")
    assert status == 302
    assert urllib.parse.urlsplit(urllib.parse.urljoin(server + "/", headers["Location"])).path == (
        "/login")
    assert "bokeh" not in body.lower()
    status, _, _ = _status(bare, server + "/ws")  # the document's channel
    assert status == 403
    status, _, html = _status(bare, server + "/login")
    assert status == 200 and 'name="password"' in html


def test_a_wrong_password_gets_no_session(server):
    _, jar, status, html = _login(server, "nope")
    assert status == 200 and "Invalid username or password" in html
    assert not any(c.name == "user" for c in jar)


def test_the_right_password_opens_the_app(server):
    opener, jar, status, html = _login(server, PASSWORD)
    assert status == 200 and any(c.name == "user" for c in jar)
    assert "<title>hearsight</title>" in html and "bokeh" in html.lower()
    status, _, again = _status(opener, server + "/")  # the cookie keeps the session open
    assert status == 200 and "<title>hearsight</title>" in again


def _external(urls):
    return sorted({u for u in urls if urllib.parse.urlsplit(
        u if "//" in u[:8] or u.startswith("//") else "//" + u).hostname not in LOCAL_HOSTS})


def test_served_pages_and_their_css_reference_nothing_external(server):
    opener, _, status, app_html = _login(server, PASSWORD)
    _, _, login_html = _status(urllib.request.build_opener(), server + "/login")
    assert status == 200
    found = {}
    for name, html in (("login page", login_html), ("app page", app_html)):
        assert "fonts.googleapis.com" not in html, name
        found[name] = _external(EXTERNAL_TAG.findall(html) + EXTERNAL_CSS.findall(html))
        stylesheets = re.findall(r"""<link\b[^>]*\bhref=["']([^"']+\.css[^"']*)["']""", html)
        for href in stylesheets:
            _, _, css = _status(opener, urllib.parse.urljoin(server + "/login", href))
            assert "fonts.googleapis.com" not in css, href
            found[f"{name}: {href}"] = _external(EXTERNAL_CSS.findall(css))
    assert {k: v for k, v in found.items() if v} == {}
