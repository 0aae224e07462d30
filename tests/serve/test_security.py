"""Security and limits (issue 7): loopback by default, origins required elsewhere, basic auth
in front of the real server, no pickle/eval of user input, validated checkpoint metadata,
limits configurable from the environment with clear errors."""

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

from serve.app import auth_kwargs, check_bind
from cli.main import build_parser
from serve.config import Limits

ROOT = Path(__file__).resolve().parents[2]


# -- binding ---------------------------------------------------------------------------
@pytest.mark.parametrize("address", ["127.0.0.1", "localhost", "::1", "127.0.0.5"])
def test_loopback_needs_no_origins(address):
    check_bind(address, [])


@pytest.mark.parametrize("address", ["0.0.0.0", "192.168.1.20", "::", "example.org"])
def test_other_addresses_need_named_origins(address):
    with pytest.raises(ValueError, match="--allow-websocket-origin") as info:
        check_bind(address, [])
    assert address in str(info.value) and "beyond this machine" in str(info.value)
    check_bind(address, ["example.org:5006"])  # named: allowed


def test_cli_serves_on_loopback_by_default(capsys):
    args = build_parser().parse_args(["serve", "--model", "m"])
    assert args.address == "127.0.0.1" and args.allow_websocket_origin == []
    assert args.basic_auth is None and args.oauth_provider is None


def test_cli_refuses_a_public_address_before_loading_anything(tmp_path, capsys):
    from cli.main import main

    assert main(["serve", "--model", str(tmp_path / "nothing"), "--address", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "--allow-websocket-origin" in err and "checkpoint" not in err


# -- authentication options ------------------------------------------------------------
def _provider_secret(kwargs):
    return kwargs["auth_provider"].login_handler.secret


def test_auth_kwargs(tmp_path):
    from serve.login import LimitedBasicAuth

    assert auth_kwargs(None, None, environ={}) == {}
    pw = tmp_path / "pw"
    pw.write_text("secretpw\n")
    basic = auth_kwargs(None, None, environ={"HEARSIGHT_COOKIE_SECRET": "c"}, auth_file=str(pw))
    assert isinstance(basic["auth_provider"], LimitedBasicAuth) and basic["cookie_secret"] == "c"
    assert "basic_auth" not in basic and _provider_secret(basic) == "secretpw"
    assert _provider_secret(auth_kwargs(None, None, environ={"HEARSIGHT_AUTH": "envpw"})) == "envpw"
    users = tmp_path / "users.json"
    users.write_text('{"ann": "pw1", "bob": "pw2"}')
    assert _provider_secret(auth_kwargs(None, None, environ={}, auth_file=str(users))) == {
        "ann": "pw1", "bob": "pw2"}
    assert _provider_secret(auth_kwargs(str(users), None, environ={})) == {  # a file: no warning
        "ann": "pw1", "bob": "pw2"}
    users.write_text('{"not": ["a", "mapping"]}')
    with pytest.raises(ValueError, match="JSON object of user: password"):
        auth_kwargs(None, None, environ={}, auth_file=str(users))
    with pytest.raises(ValueError, match="cannot read the basic-auth file"):
        auth_kwargs(None, None, environ={}, auth_file=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="choose one of --auth-file and HEARSIGHT_AUTH"):
        auth_kwargs(None, None, environ={"HEARSIGHT_AUTH": "x"}, auth_file=str(pw))
    with pytest.raises(ValueError, match="HEARSIGHT_OAUTH_KEY and HEARSIGHT_OAUTH_SECRET"):
        auth_kwargs(None, "github", environ={"HEARSIGHT_OAUTH_KEY": "id"})
    oauth = auth_kwargs(None, "github", "https://x/login",
                        environ={"HEARSIGHT_OAUTH_KEY": "id", "HEARSIGHT_OAUTH_SECRET": "s"})
    assert oauth["oauth_provider"] == "github" and oauth["oauth_key"] == "id"
    assert oauth["oauth_secret"] == "s" and oauth["oauth_redirect_uri"] == "https://x/login"
    assert len(oauth["cookie_secret"]) == 48
    with pytest.raises(ValueError, match="not both"):
        auth_kwargs(None, "github", environ={}, auth_file=str(pw))


def test_a_password_on_the_command_line_is_deprecated():
    warnings = []
    kwargs = auth_kwargs("secretpw", None, environ={}, warn=warnings.append)
    assert _provider_secret(kwargs) == "secretpw"
    assert len(warnings) == 1 and "deprecated" in warnings[0] and "--auth-file" in warnings[0]


def test_login_limiter_cools_down_after_repeated_failures():
    from serve.login import LoginLimiter

    now = [0.0]
    limiter = LoginLimiter(max_failures=3, cooldown_s=10.0, clock=lambda: now[0])
    for _ in range(2):
        limiter.fail("1.2.3.4")
    assert limiter.blocked("1.2.3.4") == 0.0
    limiter.fail("1.2.3.4")
    assert limiter.blocked("1.2.3.4") == 10.0 and limiter.blocked("5.6.7.8") == 0.0
    now[0] = 9.0
    assert limiter.blocked("1.2.3.4") == pytest.approx(1.0)
    now[0] = 10.5
    assert limiter.blocked("1.2.3.4") == 0.0  # the failures have aged out of the window
    limiter.fail("1.2.3.4")
    limiter.succeed("1.2.3.4")
    assert limiter.blocked("1.2.3.4") == 0.0


def test_cli_serve_options_have_help(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    out = capsys.readouterr().out
    assert "TCP port to listen on" in out and "--auth-file PATH" in out


# -- no pickle / eval ------------------------------------------------------------------
FORBIDDEN = re.compile(r"pickle\.loads?\(|(?<![\w.])eval\(|(?<![\w.])exec\(|allow_pickle\s*=\s*True"
                       r"|torch\.load\(|yaml\.load\(|marshal\.loads?\(")


def test_no_pickle_or_eval_outside_tests():
    offenders = []
    for pkg in ("data", "models", "engine", "viz", "serve", "hearsight", "benchmarks"):
        for path in (ROOT / pkg).rglob("*.py"):
            for i, line in enumerate(path.read_text().splitlines(), 1):
                if FORBIDDEN.search(line.split("#", 1)[0]):
                    offenders.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert offenders == []


def test_forbidden_pattern_catches_what_it_should():
    for bad in ("x = pickle.load(fh)", "eval(text)", "  exec(code)", "np.load(p, allow_pickle=True)"):
        assert FORBIDDEN.search(bad), bad
    for fine in ("model.eval()", "self.eval()", "np.load(p, allow_pickle=False)"):
        assert not FORBIDDEN.search(fine), fine


# -- checkpoint metadata ---------------------------------------------------------------
@pytest.mark.parametrize("arch", ["os:system", "subprocess:run", "builtins:eval",
                                  "importlib:import_module", "_posixsubprocess:fork_exec"])
def test_metadata_naming_a_system_function_is_refused(arch):
    from models.checkpoint import CheckpointError, validate_metadata

    meta = {"format_version": 1, "arch": arch,
            "arch_kwargs": {"n_classes": 2, "input_shape": [4, 4]}, "labels": ["a", "b"],
            "features": {}}
    with pytest.raises(CheckpointError, match="names a standard-library function"):
        validate_metadata(meta, "/ck")


# -- limits ----------------------------------------------------------------------------
def test_limits_defaults_and_env_overrides():
    assert Limits.from_env({}) == Limits(20_000_000, 30.0, 40_000_000, 1, 300.0)
    env = {"HEARSIGHT_UPLOAD_BYTES": "5e6", "HEARSIGHT_CLIP_SECONDS": "2.5",
           "HEARSIGHT_WEBSOCKET_BYTES": "10_000_000", "HEARSIGHT_JOBS_PER_SESSION": "3",
           "HEARSIGHT_JOB_SECONDS": "12"}
    assert Limits.from_env(env) == Limits(5_000_000, 2.5, 10_000_000, 3, 12.0)
    # Raising the upload limit alone raises the websocket limit with it (base64 overhead).
    assert Limits.from_env({"HEARSIGHT_UPLOAD_BYTES": "30000000"}).websocket_bytes == 60_000_000


def test_limits_read_the_process_environment(monkeypatch):
    monkeypatch.setenv("HEARSIGHT_CLIP_SECONDS", "7")
    assert Limits.from_env().clip_seconds == 7.0


@pytest.mark.parametrize("name, value, message", [
    ("HEARSIGHT_UPLOAD_BYTES", "lots", "is not a number"),
    ("HEARSIGHT_UPLOAD_BYTES", "0", "must be a whole number >= 1"),
    ("HEARSIGHT_JOBS_PER_SESSION", "1.5", "must be a whole number >= 1"),
    ("HEARSIGHT_JOB_SECONDS", "-3", "must be a number >= 0.1"),
    ("HEARSIGHT_CLIP_SECONDS", "inf", "must be a number >= 0.1"),
    ("HEARSIGHT_CLIP_SECONDS", "nan", "must be a number >= 0.1"),
    ("HEARSIGHT_WEBSOCKET_BYTES", "100000", "too small for uploads of 20000000 bytes"),
])
def test_bad_limit_values_name_the_variable(name, value, message):
    with pytest.raises(ValueError, match=message) as info:
        Limits.from_env({name: value})
    assert name in str(info.value)


def test_upload_limit_applies_to_the_session(tiny_checkpoint):
    import importlib.util

    from engine.predictor import Predictor
    from serve.session import Session

    spec = importlib.util.spec_from_file_location("hostile_matrix_sec",
                                                  ROOT / "benchmarks" / "hostile_matrix.py")
    hm = sys.modules.setdefault("hostile_matrix_sec", importlib.util.module_from_spec(spec))
    spec.loader.exec_module(hm)
    wav = hm.encode(hm._tone(2.0))  # 2 s, 32,044 bytes
    limits = Limits.from_env({"HEARSIGHT_UPLOAD_BYTES": "30000", "HEARSIGHT_CLIP_SECONDS": "1.5"})
    session = Session(hm.FakeShared(Predictor.load(tiny_checkpoint), limits))
    assert not session.load_bytes(wav, "two.wav") and "limit" in session.alert.object
    limits = Limits.from_env({"HEARSIGHT_CLIP_SECONDS": "1.5"})
    session = Session(hm.FakeShared(session.predictor, limits))
    assert not session.load_bytes(wav, "two.wav")
    assert "too long (2.0 s, limit 1.5 s)" in session.alert.object
    assert session.load_bytes(hm.encode(hm._tone(1.0)), "one.wav")


# -- basic auth on the real server -----------------------------------------------------
def _wait_for(port: int, proc, timeout: float = 150.0) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stdout.read()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError("server did not start")


def _post_login(opener, base, password):
    data = urllib.parse.urlencode({"username": "ann", "password": password}).encode()
    try:
        with opener.open(base + "/login", data=data, timeout=60) as page:
            return page.status, page.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode()


@pytest.mark.slow
def test_basic_auth_guards_the_real_server(tiny_checkpoint, tmp_path, free_port,
                                           no_redirect_opener):
    port = free_port()
    secret = tmp_path / "auth"
    secret.write_text("secretpw\n")
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT),
           "HEARSIGHT_HOME": str(tmp_path / "home"), "HEARSIGHT_LOGIN_FAILURES": "3",
           "HEARSIGHT_LOGIN_COOLDOWN_SECONDS": "3"}
    env.pop("HEARSIGHT_AUTH", None)
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--model",
                             str(tiny_checkpoint), "--port", str(port), "--auth-file",
                             str(secret)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(port, proc)
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert b"secretpw" not in cmdline  # nothing for ps to show
        base = f"http://127.0.0.1:{port}"
        bare = no_redirect_opener()
        with pytest.raises(urllib.error.HTTPError) as info:
            bare.open(base + "/", timeout=30)
        info.value.close()
        assert info.value.code in (302, 401, 403)
        assert info.value.code != 302 or "/login" in info.value.headers["Location"]
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        for _ in range(3):
            status, page = _post_login(opener, base, "nope")
            assert status == 200 and "Invalid username or password" in page
        assert not any(c.name == "user" for c in jar)
        status, page = _post_login(opener, base, "secretpw")  # right, but cooling down
        assert status == 429 and "Too many failed logins" in page
        assert not any(c.name == "user" for c in jar)
        time.sleep(3.2)
        status, html = _post_login(opener, base, "secretpw")
        assert status == 200 and any(c.name == "user" for c in jar)
        assert "hearsight" in html and "bokeh" in html.lower()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stdout.close()
