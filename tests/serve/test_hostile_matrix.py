"""The hostile-input matrix (issue 7) through the server's upload path and the CLI.

Cases come from ``benchmarks/hostile_matrix.py`` (the same list the report prints). Each must
be accepted (valid formats, odd names) or refused with a message naming the problem; nothing
may crash, nothing may be written outside the cache folder, memory stays bounded.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("hostile_matrix",
                                               ROOT / "benchmarks" / "hostile_matrix.py")
hm = sys.modules.setdefault("hostile_matrix", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(hm)  # registered first: dataclasses look their module up
CASES = hm.hostile_cases()
IDS = [c.name for c in CASES]


@pytest.fixture(scope="module")
def predictor(tiny_checkpoint):
    from engine.predictor import Predictor

    return Predictor.load(tiny_checkpoint)


@pytest.fixture()
def session(predictor):
    from serve.session import Session

    return Session(hm.FakeShared(predictor))


@pytest.fixture()
def cached_load(monkeypatch, predictor, tiny_checkpoint):
    """In-process CLI runs reuse the compiled predictor instead of reloading per case."""
    from engine.predictor import Predictor

    original = Predictor.load.__func__

    def load(cls, directory, trusted_arch=None):
        if Path(directory).absolute() == Path(tiny_checkpoint).absolute():
            return predictor
        return original(cls, directory, trusted_arch=trusted_arch)

    monkeypatch.setattr(Predictor, "load", classmethod(load))


def test_matrix_has_at_least_30_distinct_cases():
    assert len(CASES) >= 30 and len(set(IDS)) == len(IDS)
    assert sum(c.valid for c in CASES) >= 10 and sum(not c.valid for c in CASES) >= 15


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_upload_path(session, case):
    ok = session.load_bytes(case.data, case.filename)
    message = str(session.alert.object)
    assert ok is case.valid, message
    if ok:
        name = session.clip.name
        assert session.clip.wave.shape == (session.params.n_samples,)
        assert "/" not in name and "\\" not in name and name.isprintable() and len(name) <= 80
        probs = session.analyse(session.clip.wave).probs
        assert abs(float(probs.sum()) - 1.0) < 1e-4
    else:
        assert session.alert.visible and session.clip is None
        for word in case.keywords:
            assert word in message, (word, message)
        assert message.isprintable() and len(message) < 400


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_cli_path(case, tmp_path, tiny_checkpoint, cached_load, capsys):
    from cli.main import main

    path = hm.write_case_file(tmp_path, case)
    rc = main(["predict", "--model", str(tiny_checkpoint), path])
    out, err = capsys.readouterr()
    valid = case.valid if case.cli_valid is None else case.cli_valid
    assert "Traceback" not in err + out
    if valid:
        assert rc == 0 and err == "" and out.count("\n") == 1, err
        assert out.strip().isprintable()
    else:
        assert rc == 2 and out == "" and err.startswith("hearsight predict: error: ")
        for word in (case.keywords if case.cli_keywords is None else case.cli_keywords):
            assert word in err, (word, err)
        assert err.strip().isprintable()


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_nothing_is_written_outside_the_cache(tmp_path, monkeypatch, session, tiny_checkpoint,
                                              cached_load, capsys):
    from cli.main import main

    home, spool = tmp_path / "home", tmp_path / "spool"
    home.mkdir()
    spool.mkdir()
    monkeypatch.setenv("HEARSIGHT_HOME", str(home))
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    files = tmp_path / "files"
    files.mkdir()
    paths = [hm.write_case_file(files, c) for c in CASES]
    before = _tree(tmp_path)
    for case, path in zip(CASES, paths):
        session.load_bytes(case.data, case.filename)
        main(["predict", "--model", str(tiny_checkpoint), path])
    capsys.readouterr()
    assert _tree(tmp_path) == before
    assert not any(home.iterdir()) and not any(spool.iterdir())


MEMORY_PROBE = r"""
import os, resource, sys
sys.path.insert(0, sys.argv[1])
from data.audio import AudioError, load_audio
long_bytes = open(sys.argv[2], "rb").read()
huge_head = open(sys.argv[4], "rb").read()
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
base = rss()
for source in (sys.argv[2], long_bytes, sys.argv[3], huge_head):
    try:
        load_audio(source, sample_rate=8000, max_seconds=30.0)
        print("ACCEPTED")
    except AudioError as e:
        print("REFUSED", e)
print("GROWTH_KIB", rss() - base)
"""


def test_memory_stays_bounded_for_long_and_gigabyte_inputs(tmp_path):
    long_wav = tmp_path / "long.wav"
    long_wav.write_bytes(next(c.data for c in CASES if c.name == "10 minutes long"))
    head = hm.gigabyte_header(0)
    sparse = tmp_path / "sparse.wav"  # a real 4 GiB (sparse) file behind a valid header
    with open(sparse, "wb") as fh:
        fh.write(head)
        fh.truncate(len(head) + 0xFFFFFF00)
    huge_head = tmp_path / "huge_head.wav"
    huge_head.write_bytes(hm.gigabyte_header())
    proc = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(ROOT), str(long_wav),
                           str(sparse), str(huge_head)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert [ln.split()[0] for ln in lines[:4]] == ["REFUSED"] * 4, lines
    assert "too long (600.0 s" in lines[0] and "too long (600.0 s" in lines[1]
    assert "too long (268435.4 s" in lines[2]  # 2**31 - 128 frames at 8 kHz, from the header
    assert "4,294,967,040 bytes" in lines[3]
    assert int(lines[4].split()[1]) < 30 * 1024, lines[4]  # < 30 MiB growth of max RSS


def test_cli_subprocess_refuses_without_traceback(tmp_path, tiny_checkpoint):
    files = [hm.write_case_file(tmp_path, c) for c in CASES
             if c.name in ("zero bytes", "random bytes", "NaN sample (float32)")]
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "cli.main", "predict", "--model",
                           str(tiny_checkpoint), *files], capture_output=True, text=True,
                          timeout=180, cwd=ROOT, env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 3 and all(ln.startswith("hearsight predict: error: ") for ln in lines)
    assert "empty" in lines[0] and "cannot be decoded" in lines[1] and "NaN" in lines[2]
