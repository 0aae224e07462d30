"""Fixtures shared by the whole test tree: a tiny checkpoint and the FSDD sample folder.

``HEARSIGHT_HOME`` points at a temporary folder for the test session (unless the caller set
it), so tests never read or write the user's cache.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# ../shared/data/fsdd relative to the repository root, so CI clones laid out the same way work.
FSDD_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd"
FSDD_LABELS = [str(d) for d in range(10)]


@pytest.fixture(scope="session", autouse=True)
def hearsight_home(tmp_path_factory) -> Path:
    """``$HEARSIGHT_HOME`` for the session: the caller's, or a fresh temporary folder."""
    if os.environ.get("HEARSIGHT_HOME"):
        yield Path(os.environ["HEARSIGHT_HOME"])
        return
    home = tmp_path_factory.mktemp("hearsight-home")
    os.environ["HEARSIGHT_HOME"] = str(home)
    try:
        yield home
    finally:
        os.environ.pop("HEARSIGHT_HOME", None)


@pytest.fixture(scope="session")
def fsdd_dir() -> Path:
    """The 5-speaker Free Spoken Digit Dataset copy (``{digit}_{speaker}_{take}.wav``)."""
    if not FSDD_DIR.is_dir() or not any(FSDD_DIR.glob("*.wav")):
        pytest.fail(f"the FSDD sample folder {FSDD_DIR} is missing or empty; it must lie at "
                    "../shared/data/fsdd beside the repository")
    return FSDD_DIR


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A randomly initialised ``ddevis_cnn`` over the 10 FSDD digits, saved as a checkpoint.

    Untrained (seed 0), so its predictions are arbitrary but deterministic; the metadata is
    complete (arch, arch_kwargs, labels, features, corpus, split, metrics).
    """
    from data.features import ddevis_stft
    from models.checkpoint import save_checkpoint
    from models.registry import build_model

    params = ddevis_stft()
    model = build_model("ddevis_cnn", n_classes=len(FSDD_LABELS), input_shape=params.shape,
                        seed=0)
    model.eval()
    meta = {"arch": "ddevis_cnn",
            "arch_kwargs": {"n_classes": len(FSDD_LABELS), "input_shape": list(params.shape)},
            "labels": FSDD_LABELS, "features": params.to_dict(),
            "corpus": f"fsdd:{FSDD_DIR}", "split": {}, "metrics": {"note": "untrained"}}
    return save_checkpoint(tmp_path_factory.mktemp("tiny-ckpt") / "ddevis", model, meta)


FOREIGN_BUILDERS = REPO / "tests" / "models" / "foreign"


def _foreign_ready() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("torch", "torchax", "transformers"))


@pytest.fixture(scope="session")
def tiny_hf(tmp_path_factory):
    """``tiny_hf(family) -> Path``: a tiny random Hugging Face audio classifier folder
    (``save_pretrained``, no download; families of ``foreign_builders.FAMILIES``), made once
    per session and family. Skips when the ``foreign`` extra is not installed."""
    import sys

    if not _foreign_ready():
        pytest.skip("the foreign extra (torch, torchax, transformers) is not installed")
    if str(FOREIGN_BUILDERS) not in sys.path:
        sys.path.insert(0, str(FOREIGN_BUILDERS))
    from foreign_builders import save_tiny

    made: dict[str, Path] = {}

    def make(family: str) -> Path:
        if family not in made:
            made[family] = save_tiny(family, tmp_path_factory.mktemp(f"hf-{family}"))
        return made[family]

    return make


@pytest.fixture(scope="session")
def tiny_hf_predictor(tiny_hf):
    """``tiny_hf_predictor(family)``: the :class:`engine.contract_predictor.ContractPredictor`
    of :func:`tiny_hf`'s folder, loaded once per session and family."""
    from engine.predictor import load_predictor

    loaded: dict = {}

    def get(family: str):
        if family not in loaded:
            loaded[family] = load_predictor(f"hf:{tiny_hf(family)}")
        return loaded[family]

    return get


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def free_port():
    """``free_port()``: a TCP port on 127.0.0.1 that nothing listens on (for a test server)."""
    return _free_port


@pytest.fixture(scope="session")
def no_redirect_opener():
    """``no_redirect_opener()``: a urllib opener that reports a redirect instead of following
    it (``HTTPError`` 302), to see where a server sends a request without a login."""
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    return lambda: urllib.request.build_opener(NoRedirect)
