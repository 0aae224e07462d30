"""``hearsight serve``: start the interactive server (training the default model on first use)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from cli.inputs import ensure_default_model, err


def add_parser(sub) -> None:
    s = sub.add_parser("serve", help="start the interactive server")
    s.add_argument("--model", default=None,
                   help="checkpoint folder, or your own model: hf:FOLDER, "
                        "torch:package.module:factory, onnx:FILE (default: train/cached default)")
    s.add_argument("--corpus", default=None,
                   help="corpus for the sidebar's picker (default: the model's own; for your "
                        "own model, the small embedded synthetic corpus, synth:small)")
    s.add_argument("--port", type=int, default=5006,
                   help="TCP port to listen on (default 5006)")
    s.add_argument("--procs", type=int, default=1,
                   help="worker processes sharing the port (each loads the model; at most "
                        "the number of CPU cores is useful)")
    s.add_argument("--address", default="127.0.0.1",
                   help="bind address (default loopback; another needs --allow-websocket-origin)")
    s.add_argument("--allow-websocket-origin", action="append", default=[], metavar="HOST:PORT",
                   help="a browser origin allowed to open the app's websocket (repeat for "
                        "several); needed with an --address beyond loopback")
    s.add_argument("--auth-file", default=None, metavar="PATH",
                   help="require a login: PATH holds one password, or a JSON object of "
                        "user: password (or set HEARSIGHT_AUTH); failed logins per address "
                        "are limited (HEARSIGHT_LOGIN_FAILURES, HEARSIGHT_LOGIN_COOLDOWN_SECONDS)")
    s.add_argument("--basic-auth", default=None,
                   help="deprecated: a password here is visible in the process list; use "
                        "--auth-file (a file path here still works)")
    s.add_argument("--oauth-provider", default=None,
                   help="Panel OAuth provider (github, google, azure, okta, generic, ...); "
                        "client id/secret from HEARSIGHT_OAUTH_KEY / HEARSIGHT_OAUTH_SECRET")
    s.add_argument("--oauth-redirect-uri", default=None, help="OAuth callback URL, if proxied")
    s.add_argument("--show", action="store_true", help="open a browser tab")
    s.add_argument("--arch", default=None, metavar="ENTRY",
                   help="trust this bring-your-own entry point 'package.module:factory' "
                        "(a checkpoint naming one is refused without it; registered "
                        "architectures need nothing)")
    s.add_argument("--separate", default=None,
                   help="a second classifier (other seed) whose verdict the Maximise page shows")
    s.add_argument("--prior", default=None,
                   help="spectrogram_ae checkpoint: the decoder prior (default: with the default "
                        "model, its own prior, trained once on first use and cached)")
    s.add_argument("--no-prior", action="store_true",
                   help="serve the default model without its decoder prior (skips training it)")
    s.add_argument("--projection", default=None,
                   help="a projection .parquet from 'hearsight project' for the Embeddings "
                        "page, or a partitioned layout store (the folder that 'hearsight "
                        "project --cluster ... --out FOLDER' writes), drawn by dask")
    s.add_argument("--busy-after", type=float, default=0.3, metavar="SECONDS",
                   help="how long a session's work runs before its header says 'working…' "
                        "(default 0.3; quicker work shows nothing, so nothing flickers)")
    s.add_argument("--cluster", default=None, metavar="ADDRESS",
                   help="draw a partitioned --projection on a Dask cluster: a scheduler "
                        "address (tcp://host:8786) or local:N for N worker processes here "
                        "(default: dask's threads in this process)")


def run(args):
    from serve.app import serve

    from engine.predictor import is_contract_spec

    if args.model and is_contract_spec(args.model):
        model_dir = args.model
    else:
        model_dir = Path(args.model) if args.model else ensure_default_model()
    prior = args.prior or default_prior(args, model_dir)
    corpus = getattr(args, "corpus", None)
    if corpus is None and is_contract_spec(model_dir):
        corpus = "synth:small"  # built in seconds; --corpus names a bigger one
    procs = getattr(args, "procs", 1)
    if procs > 1 and jax_started():  # it just trained the default model: start over without JAX
        restart_clean()
    return serve(model_dir, port=args.port, address=args.address,
                 allow_websocket_origin=args.allow_websocket_origin,
                 basic_auth=args.basic_auth, show=args.show, separate=args.separate,
                 prior=prior, projection=args.projection,
                 oauth_provider=getattr(args, "oauth_provider", None),
                 oauth_redirect_uri=getattr(args, "oauth_redirect_uri", None), procs=procs,
                 trusted_arch=getattr(args, "arch", None),
                 auth_file=getattr(args, "auth_file", None), corpus=corpus,
                 cluster=getattr(args, "cluster", None),
                 busy_after=getattr(args, "busy_after", 0.3))


def default_prior(args, model_dir) -> str | None:
    """The default model's decoder prior (trained and cached on first use), or None.

    Only the default model gets one without asking: ``--model`` serves what it names, with
    ``--prior`` if given. ``--no-prior`` skips it; a prior that cannot be trained is reported
    and the server starts without it (Maximise then says how to train one)."""
    if args.model or getattr(args, "no_prior", False):
        return None
    from models.prior import default_prior_dir, ensure_default_prior

    try:
        ensure_default_prior(model_dir, log=err)
    except (ValueError, OSError) as exc:
        err(f"serving without the decoder prior: {exc}")
        return None
    return str(default_prior_dir(model_dir))


def jax_started() -> bool:
    """Whether this process already holds a JAX runtime (e.g. it just trained the model).

    ``--procs N`` forks the server's workers, and a JAX runtime must not cross a fork (its
    thread pools stay behind)."""
    try:
        from jax._src import xla_bridge
    except ImportError:  # pragma: no cover - jax is a dependency
        return False
    check = getattr(xla_bridge, "backends_are_initialized", None)
    return bool(check()) if check else bool(getattr(xla_bridge, "_backends", None))


def restart_clean(argv=None) -> None:  # pragma: no cover - replaces the process
    """Run this command again in a fresh process (same arguments), so no JAX runtime is forked."""
    os.execv(sys.executable, [sys.executable, "-m", "cli.main",
                              *(sys.argv[1:] if argv is None else argv)])
