"""Basic-auth login with a limit on failed attempts per address (Panel's login page).

Panel's own basic auth takes the secret on the command line (readable by every user in the
process list) and answers any number of guesses (50 in 2 s). Here the secret comes from a
file or the environment (:func:`read_secret`), and after ``max_failures`` failed logins from
one address within ``cooldown_s`` seconds that address gets ``429 Too Many Requests`` until
``cooldown_s`` seconds have passed since its last failure.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections import OrderedDict, deque
from pathlib import Path

from panel.auth import BasicAuthProvider, BasicLoginHandler

MAX_TRACKED = 10_000  # addresses remembered at once (oldest forgotten first)
# Panel's own files as this server serves them, relative to the login page (so a proxy's path
# prefix is kept): its login page otherwise loads its logo and icon from cdn.holoviz.org,
# which an offline machine cannot reach.
LOCAL_PANEL_DIST = "./static/extensions/panel/"


class _LocalAssets:
    """A login template rendered with Panel's images from this server, not its CDN."""

    def __init__(self, template):
        self.template = template

    def render(self, **variables):
        return self.template.render(**{**variables, "PANEL_CDN": LOCAL_PANEL_DIST})


class LoginLimiter:
    """Failed logins per address; ``blocked(addr)`` while ``max_failures`` of them fall within
    ``cooldown_s`` seconds of now. ``clock`` is injectable for tests."""

    def __init__(self, max_failures: int = 5, cooldown_s: float = 60.0, clock=time.monotonic):
        self.max_failures, self.cooldown_s, self.clock = int(max_failures), float(cooldown_s), clock
        self._fails: OrderedDict[str, deque] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, addr: str) -> deque:
        times = self._fails.get(addr, deque())
        while times and self.clock() - times[0] > self.cooldown_s:
            times.popleft()
        return times

    def blocked(self, addr: str) -> float:
        """Seconds until ``addr`` may try again (0 when it may now)."""
        with self._lock:
            times = self._recent(addr)
            if len(times) < self.max_failures:
                return 0.0
            return max(0.0, self.cooldown_s - (self.clock() - times[-1]))

    def fail(self, addr: str) -> None:
        with self._lock:
            times = self._recent(addr)
            times.append(self.clock())
            while len(times) > self.max_failures:
                times.popleft()
            self._fails[addr] = times
            self._fails.move_to_end(addr)
            while len(self._fails) > MAX_TRACKED:
                self._fails.popitem(last=False)

    def succeed(self, addr: str) -> None:
        with self._lock:
            self._fails.pop(addr, None)


def read_secret(text: str, source: str) -> str | dict[str, str]:
    """A password, or (text starting with ``{``) a JSON object of user: password."""
    text = text.strip()
    if text.startswith("{"):
        try:
            users = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{source}: not valid JSON ({exc.msg})") from None
        if not users or not all(isinstance(k, str) and isinstance(v, str) and v
                                for k, v in users.items()):
            raise ValueError(f"{source}: basic-auth file must be a JSON object of user: password")
        return users
    if not text or "\n" in text:
        raise ValueError(f"{source}: must hold one password on one line, or a JSON object of "
                         "user: password")
    return text


def read_secret_file(path: str | Path) -> str | dict[str, str]:
    try:
        return read_secret(Path(path).read_text(encoding="utf-8"), str(path))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the basic-auth file ({exc.strerror})") from None


def _matches(secret, username: str, password: str) -> bool:
    if isinstance(secret, dict):
        expected = secret.get(username)
        if expected is None:
            return False
    else:
        expected = secret
    return hmac.compare_digest(password.encode("utf-8", "surrogatepass"),
                               expected.encode("utf-8", "surrogatepass"))


class _LimitedLogin(BasicLoginHandler):
    secret: str | dict = ""
    limiter: LoginLimiter = LoginLimiter()

    def _validate(self, username, password):
        return _matches(self.secret, username, password)

    def post(self):
        addr = self.request.remote_ip or "?"
        wait = self.limiter.blocked(addr)
        if wait > 0:
            self.set_status(429)
            self.set_header("Retry-After", str(int(wait) + 1))
            self.finish(f"Too many failed logins from {addr}; try again in {int(wait) + 1} s.")
            return
        if self._validate(self.get_argument("username", ""), self.get_argument("password", "")):
            self.limiter.succeed(addr)
        else:
            self.limiter.fail(addr)
        super().post()  # validates again (cheap) and redirects as Panel does


class LimitedBasicAuth(BasicAuthProvider):
    """Panel's basic-auth provider with :class:`LoginLimiter` in front of its login page."""

    def __init__(self, secret, limiter: LoginLimiter, **kwargs):
        self._handler = type("HearsightLogin", (_LimitedLogin,),
                             {"secret": secret, "limiter": limiter})
        super().__init__(**kwargs)  # it checks login_handler: the class must exist first

    @property
    def login_handler(self):
        self._handler._login_endpoint = self._login_endpoint
        self._handler._login_template = _LocalAssets(self._login_template)
        return self._handler
