"""The Panel server: one shared, compiled model; one page set per browser session."""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path

import panel as pn

from serve import priority  # noqa: F401 — its shared marks must exist before --procs forks
from serve.config import LOOPBACK, THREADS, Limits
from serve.ordered import install as install_ordered_pool


_CLUSTERS: list = []  # the open cluster clients, held for the server's lifetime


def open_cluster(address: str, *, procs: int = 1):
    """Connect to (or start, for ``local:N``) a Dask cluster and make it dask's default
    scheduler in this process; closed when the process exits. Returns the client."""
    import atexit
    import contextlib

    from engine.cluster import connect

    if procs > 1:
        raise ValueError("--cluster needs --procs 1: the forked server processes cannot share "
                         "one cluster client")
    stack = contextlib.ExitStack()
    client = stack.enter_context(connect(address))  # ValueError when nothing answers there
    _CLUSTERS.append(stack)
    atexit.register(stack.close)
    workers = len(client.scheduler_info().get("workers", {}))
    print(f"hearsight: dask cluster {client.scheduler.address} ({workers} workers) draws "
          "partitioned layout stores", flush=True)
    return client


class Shared:
    """What all sessions share: the loaded predictor (read-only) and the limits."""

    def __init__(self, model_dir: str | Path, limits: Limits | None = None, *,
                 separate: str | Path | None = None, prior: str | Path | None = None,
                 projection: str | Path | None = None, trusted_arch: str | None = None,
                 corpus: str | None = None):
        from engine.predictor import load_predictor

        self.trusted_arch = trusted_arch  # the operator's --arch: an entry point to import
        # a checkpoint folder, or a model behind the contract (hf:, torch:, onnx:)
        self.predictor = load_predictor(model_dir, trusted_arch=trusted_arch)
        self.corpus = corpus  # the sidebar's corpus (default: the model's own)
        self.limits = limits or Limits.from_env()
        self.model_dir = str(model_dir)
        self._items = None
        self.separate = self._load_separate(separate)
        self.prior = self._load_prior(prior)
        self.projection_path = str(projection) if projection else None
        self._warm()

    def _load_separate(self, directory):
        """A second classifier (same labels and features, other seed) for verdicts, or None."""
        if not directory:
            return None
        from engine.predictor import load_predictor

        other = load_predictor(directory, trusted_arch=self.trusted_arch)
        if other.labels != self.predictor.labels or other.params != self.predictor.params:
            raise ValueError(f"--separate {directory}: labels or features differ from the model's")
        return other

    def _load_prior(self, directory):
        """The decoder prior (a spectrogram autoencoder on the same features), or None."""
        if not directory:
            return None
        if self.predictor.input_kind != "features" or self.predictor.picture_params is None:
            raise ValueError(f"--prior {directory}: a decoder prior works in hearsight's own "
                             f"feature space; {self.model_dir} takes "
                             f"{self.predictor.input_kind} input of another kind")
        from models.prior import load_prior

        return load_prior(str(directory), self.predictor.params)

    def corpus_items(self) -> list:
        """Test-split items of the model's corpus, for the sidebar's picker ([] if unavailable)."""
        if self._items is None:
            from data.corpora import open_corpus

            try:
                spec = self.corpus or self.predictor.metadata.get("corpus", "")
                corpus = open_corpus(spec, progress=False)
                self._items = list(corpus.split("test"))
            except (ValueError, OSError):
                self._items = []
        return self._items

    def _warm(self) -> None:
        # Compile the batch-1 forward and the feature-map sonification (one Griffin-Lim
        # kernel for every layer) now, so a session's first clip answers quickly: the
        # sonification alone took ~1.4 s to compile on the first pick.
        import numpy as np

        from serve.analysis import conv_layers, sonify

        p = self.predictor
        rng = np.random.default_rng(0)
        _, acts = p.run(p.features(rng.normal(0, 0.1, (1, p.n_samples)).astype(np.float32)))
        layers = conv_layers({k: v[0] for k, v in acts.items()})
        if layers:
            sonify(np.asarray(acts[layers[0]])[0, :, :, 0], p)
        self._warm_first_clip()

    def _warm_first_clip(self) -> None:
        """Bring one clip in, as an upload, in a throwaway session: a fresh server's first
        upload otherwise paid for importing the resampler (librosa, scipy.signal: 2-14 s),
        bokeh's plotting and the first figures' defaults (~2 s), all at the user's click."""
        import numpy as np

        from data.audio import to_wav_bytes
        from serve.pages.tabs import build_session as build_pages

        rate = self.predictor.params.sample_rate
        other = 8000 if rate != 8000 else 16000  # most uploads are resampled
        t = np.arange(int(0.5 * other)) / other
        tone = 0.3 * np.sin(2 * np.pi * 440.0 * t).astype(np.float32)
        session, _ = build_pages(self, example=False)
        session.load_bytes(to_wav_bytes(tone, other), "warm-up.wav", source="warm-up")


def build_session(shared: Shared):
    """The page tree of one browser session, with its own busy badge (:mod:`serve.busy`)."""
    from serve.busy import attach
    from serve.pages.tabs import build_pages

    template = build_pages(shared)
    attach(template)
    return template


class PerProcess:
    """A :class:`Shared` made on first use in the process that uses it.

    With ``--procs N`` the server forks N workers after binding the port; a JAX runtime must
    not cross a fork (its thread pools stay behind), so each worker loads and compiles the
    model itself when its first session opens.
    """

    def __init__(self, *args, **kwargs):
        import threading

        self._args, self._kwargs, self._lock = args, kwargs, threading.Lock()
        self._pid, self._shared = None, None

    def get(self) -> Shared:
        with self._lock:
            if self._shared is None or self._pid != os.getpid():
                self._shared, self._pid = Shared(*self._args, **self._kwargs), os.getpid()
            return self._shared


def check_bind(address: str, allow_websocket_origin: list[str]) -> None:
    """Refuse to listen beyond loopback unless the allowed websocket origins are named."""
    if address in LOOPBACK:
        return
    try:
        if ipaddress.ip_address(address).is_loopback:
            return
    except ValueError:
        pass
    if not allow_websocket_origin:
        raise ValueError(
            f"serving on {address} exposes the app beyond this machine; name the allowed "
            "origins with --allow-websocket-origin HOST:PORT (and consider --basic-auth)")


def basic_auth_secret(basic_auth: str | None, auth_file: str | None, environ,
                      warn=None):
    """The basic-auth secret (a password or a dict of user: password), or None.

    From ``--auth-file`` (one password, or a JSON object of user: password), else
    ``HEARSIGHT_AUTH``, else the deprecated ``--basic-auth`` (a file as above; a password
    there is visible to every user in ``ps`` and draws a warning on stderr)."""
    from serve.login import read_secret, read_secret_file

    env_value = environ.get("HEARSIGHT_AUTH") or None
    given = [n for n, v in (("--auth-file", auth_file), ("HEARSIGHT_AUTH", env_value),
                            ("--basic-auth", basic_auth)) if v]
    if len(given) > 1:
        raise ValueError(f"choose one of {' and '.join(given)} for the basic-auth secret")
    if auth_file:
        return read_secret_file(auth_file)
    if env_value:
        return read_secret(env_value, "HEARSIGHT_AUTH")
    if not basic_auth:
        return None
    if Path(basic_auth).is_file():
        return read_secret_file(basic_auth)
    (warn or _stderr)("hearsight serve: warning: --basic-auth PASSWORD is deprecated: the "
                      "password is visible to every user in the process list; use "
                      "--auth-file PATH or HEARSIGHT_AUTH instead")
    return read_secret(basic_auth, "--basic-auth")


def _stderr(message: str) -> None:
    import sys

    print(message, file=sys.stderr, flush=True)


def auth_kwargs(basic_auth: str | None, oauth_provider: str | None,
                oauth_redirect_uri: str | None = None, environ=None, *,
                auth_file: str | None = None, limits: Limits | None = None, warn=None) -> dict:
    """Keyword arguments of ``pn.serve`` for basic auth or Panel's OAuth (or none).

    Basic auth goes through :class:`serve.login.LimitedBasicAuth` (failed logins per address
    limited by ``limits.login_failures`` / ``login_cooldown_s``). OAuth's client id and secret
    come from ``HEARSIGHT_OAUTH_KEY`` / ``HEARSIGHT_OAUTH_SECRET`` (never the command line,
    where other users could read them in the process list).
    """
    from serve.login import LimitedBasicAuth, LoginLimiter

    env = os.environ if environ is None else environ
    secret_value = basic_auth_secret(basic_auth, auth_file, env, warn) if (
        basic_auth or auth_file or env.get("HEARSIGHT_AUTH")) else None
    if secret_value is not None and oauth_provider:
        raise ValueError("choose one of basic auth (--auth-file, HEARSIGHT_AUTH) and "
                         "--oauth-provider, not both")
    secret = {"cookie_secret": env.get("HEARSIGHT_COOKIE_SECRET") or os.urandom(24).hex()}
    if oauth_provider:
        key, client_secret = env.get("HEARSIGHT_OAUTH_KEY"), env.get("HEARSIGHT_OAUTH_SECRET")
        if not key or not client_secret:
            raise ValueError(f"--oauth-provider {oauth_provider} needs the client id and secret "
                             "in HEARSIGHT_OAUTH_KEY and HEARSIGHT_OAUTH_SECRET")
        out = {"oauth_provider": oauth_provider, "oauth_key": key,
               "oauth_secret": client_secret, **secret}
        return {**out, "oauth_redirect_uri": oauth_redirect_uri} if oauth_redirect_uri else out
    if secret_value is None:
        return {}
    limits = limits or Limits.from_env(env)
    limiter = LoginLimiter(limits.login_failures, limits.login_cooldown_s)
    return {"auth_provider": LimitedBasicAuth(secret_value, limiter), **secret}


def serve(model_dir, *, port: int = 5006, address: str = "127.0.0.1",
          allow_websocket_origin: list[str] | None = None, basic_auth: str | None = None,
          show: bool = False, start: bool = True, separate=None, prior=None, projection=None,
          oauth_provider: str | None = None, oauth_redirect_uri: str | None = None,
          procs: int = 1, trusted_arch: str | None = None, auth_file: str | None = None,
          corpus: str | None = None, cluster: str | None = None, busy_after: float = 0.3):
    """Start the server (blocking when ``start``); returns the bokeh ``Server``.

    ``procs`` > 1 forks that many worker processes sharing the port (Bokeh's ``num_procs``);
    each serves whole sessions with its own copy of the model, so a session's Python work
    (building and patching its page) no longer waits on one interpreter lock.
    ``cluster`` (``local:N`` or a scheduler address) opens a ``distributed.Client`` for the
    server's lifetime: the Embeddings views of a partitioned layout store are computed there.
    """
    from serve.memory import freeze_startup_objects, pin_mmap_threshold

    origins = list(allow_websocket_origin or [])
    check_bind(address, origins)
    pin_mmap_threshold()  # before any worker is forked: they inherit it
    if not 1 <= int(procs) <= 64:
        raise ValueError(f"--procs must be 1..64, got {procs}")
    if not 0 <= float(busy_after) <= 60:
        raise ValueError(f"--busy-after must be 0..60 seconds, got {busy_after}")
    limits = Limits.from_env()  # a bad HEARSIGHT_* value fails before the model loads
    kwargs = auth_kwargs(basic_auth, oauth_provider, oauth_redirect_uri, auth_file=auth_file,
                         limits=limits)
    if cluster:
        open_cluster(cluster, procs=int(procs))
    options = dict(separate=separate, prior=prior, projection=projection,
                   trusted_arch=trusted_arch, corpus=corpus)
    from engine.predictor import is_contract_spec

    if procs > 1 and is_contract_spec(model_dir):
        arch = str(model_dir)
        lazy = PerProcess(model_dir, limits, **options)
        app = lambda: build_session(lazy.get())  # noqa: E731
    elif procs > 1:
        from models.checkpoint import check_trusted_arch, read_metadata, validate_metadata

        meta = read_metadata(Path(model_dir))  # a bad folder fails now, before forking
        validate_metadata(meta, model_dir)
        check_trusted_arch(meta["arch"], trusted_arch, model_dir)
        arch = meta["arch"]
        lazy = PerProcess(model_dir, limits, **options)
        app = lambda: build_session(lazy.get())  # noqa: E731
    else:
        shared = Shared(model_dir, limits, **options)
        arch, app = shared.predictor.arch, (lambda: build_session(shared))
    pn.extension("tabulator", notifications=True, sizing_mode="stretch_width")
    install_ordered_pool(THREADS, busy_after=busy_after)  # Panel's pool, keeping each session's events in order
    if not origins:
        origins = [f"{h}:{port}" for h in ("localhost", "127.0.0.1")]
    freeze_startup_objects()
    print(f"hearsight: serving {arch} from {model_dir} at http://{address}:{port}/"
          + (f" ({procs} processes)" if procs > 1 else ""), flush=True)
    return pn.serve({"/": app}, port=port, address=address,
                    websocket_origin=origins, show=show, start=start, title="hearsight",
                    websocket_max_message_size=limits.websocket_bytes,
                    threaded=False, **({"num_procs": procs} if procs > 1 else {}), **kwargs)
