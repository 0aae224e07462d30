"""Activation store: exact round trip, atomic writes, frame rows, pooling, batch computation."""

from types import SimpleNamespace

import numpy as np
import pyarrow.parquet as pq
import pytest

from data.activations import BatchActs, compute_activation_batches, pool_activation, write_activation_store
from data.activations_read import open_activation_store


def _batch(rng, start, n, *, frames=None):
    ids = [f"item{start + i}" for i in range(n)]
    shape = (n, 4) if frames is None else (n, frames, 4)
    return BatchActs(
        item_id=ids, label=[("yes", "no")[(start + i) % 2] for i in range(n)],
        speaker=[f"s{(start + i) % 3}" for i in range(n)],
        prediction=["yes"] * n, correct=np.array([(start + i) % 2 == 0 for i in range(n)]),
        confidence=rng.random(n).astype(np.float32),
        acts={"conv1": rng.standard_normal(shape).astype(np.float32),
              "dense1": rng.standard_normal((*shape[:-1], 3)).astype(np.float32)})


def test_store_round_trip_three_chunks(tmp_path):
    rng = np.random.default_rng(0)
    batches = [_batch(rng, 0, 5), _batch(rng, 5, 4), _batch(rng, 9, 3)]
    out = write_activation_store(tmp_path / "store", iter(batches), level="utterance",
                                 meta={"model": "m"})
    store = open_activation_store(out)
    assert store.layers == ("conv1", "dense1") and store.level == "utterance"
    assert store.manifest["meta"] == {"model": "m"}
    for name in store.layers:
        want = np.concatenate([b.acts[name] for b in batches])
        got = store.layer_matrix(name)
        assert got.dtype == np.float32 and np.array_equal(got, want)
        assert np.array_equal(np.concatenate(list(store.iter_layer(name, chunk_rows=5))), want)
        rows = np.array([11, 0, 7, 7])
        assert np.array_equal(store.layer_matrix(name, rows=rows), want[rows])
        mask = np.arange(12) % 4 == 1
        assert np.array_equal(store.layer_matrix(name, rows=mask), want[mask])
    meta = store.meta()
    assert list(meta.item_id) == [f"item{i}" for i in range(12)]
    assert list(meta.label) == [("yes", "no")[i % 2] for i in range(12)]
    assert list(meta.speaker) == [f"s{i % 3}" for i in range(12)]
    assert meta.correct.tolist() == [i % 2 == 0 for i in range(12)]
    assert np.array_equal(meta.confidence.to_numpy(),
                          np.concatenate([b.confidence for b in batches]))
    # one row group per batch: memory is bounded by a chunk
    assert pq.ParquetFile(out / "layer=conv1" / "part-00000.parquet").num_row_groups == 3


def test_interrupted_write_leaves_nothing(tmp_path):
    rng = np.random.default_rng(1)

    def batches():
        yield _batch(rng, 0, 4)
        yield _batch(rng, 4, 4)
        raise RuntimeError("disk on fire")

    out = tmp_path / "store"
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_activation_store(out, batches(), level="utterance")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="does not exist"):
        open_activation_store(out)


def test_folder_without_manifest_is_refused(tmp_path):
    out = write_activation_store(tmp_path / "s", [_batch(np.random.default_rng(2), 0, 2)],
                                 level="utterance")
    (out / "store.json").unlink()
    with pytest.raises(ValueError, match="incomplete"):
        open_activation_store(out)


def test_existing_store_is_not_overwritten_by_default(tmp_path):
    rng = np.random.default_rng(3)
    out = write_activation_store(tmp_path / "s", [_batch(rng, 0, 2)], level="utterance")
    with pytest.raises(ValueError, match="already exists"):
        write_activation_store(out, [_batch(rng, 0, 3)], level="utterance")
    write_activation_store(out, [_batch(rng, 0, 3)], level="utterance", overwrite=True)
    assert open_activation_store(out).info("conv1")["rows"] == 3


def test_frame_level_one_row_per_frame(tmp_path):
    rng = np.random.default_rng(4)
    batches = [_batch(rng, 0, 2, frames=5), _batch(rng, 2, 1, frames=5)]
    store = open_activation_store(write_activation_store(
        tmp_path / "f", batches, level="frame", layers=["conv1"]))
    assert store.layers == ("conv1",)
    meta = store.meta("conv1")
    assert len(meta) == 15
    assert meta.frame.tolist() == [0, 1, 2, 3, 4] * 3
    assert meta.item_id.tolist() == ["item0"] * 5 + ["item1"] * 5 + ["item2"] * 5
    want = np.concatenate([b.acts["conv1"].reshape(-1, 4) for b in batches])
    assert np.array_equal(store.layer_matrix("conv1"), want)


def test_level_and_shape_are_validated(tmp_path):
    rng = np.random.default_rng(5)
    with pytest.raises(ValueError, match="level"):
        write_activation_store(tmp_path / "a", [_batch(rng, 0, 2)], level="word")
    with pytest.raises(ValueError, match="frame-level"):
        write_activation_store(tmp_path / "b", [_batch(rng, 0, 2)], level="frame")
    assert not (tmp_path / "b").exists()


def test_pool_activation_known_answers():
    conv = np.arange(2 * 3 * 4 * 2, dtype=np.float32).reshape(2, 3, 4, 2)  # (n, freq, time, ch)
    np.testing.assert_allclose(pool_activation(conv, level="utterance"), conv.mean(axis=(1, 2)))
    assert pool_activation(conv, level="frame").shape == (2, 4, 2)
    np.testing.assert_allclose(pool_activation(conv, level="frame")[1, 3],
                               conv[1, :, 3, :].mean(axis=0))
    frames = np.ones((2, 7, 5), np.float32) * np.arange(7)[None, :, None]
    np.testing.assert_allclose(pool_activation(frames, level="utterance"), np.full((2, 5), 3.0))
    dense = np.eye(3, dtype=np.float32)
    assert pool_activation(dense, level="utterance") is not None
    assert pool_activation(dense, level="frame") is None
    with pytest.raises(ValueError, match="cannot pool"):
        pool_activation(np.zeros(3), level="utterance")


def test_compute_activation_batches_with_fake_model(tmp_path):
    import soundfile as sf

    from data.features import FeatureParams

    params = FeatureParams(sample_rate=8000, duration_s=0.25, n_frames=38)
    items = []
    for i in range(5):
        path = tmp_path / f"{i}.wav"
        t = np.arange(2000) / 8000
        sf.write(path, 0.5 * np.sin(2 * np.pi * (200 + 100 * i) * t), 8000)
        items.append(SimpleNamespace(id=f"w{i}", path=str(path), label=("a", "b")[i % 2],
                                     speaker="s"))

    def run_batch(waves):  # "predicts" b for every clip; conv act = wave stats
        n = len(waves)
        probs = np.tile(np.array([[0.2, 0.8]], np.float32), (n, 1))
        conv = np.broadcast_to(waves[:, :6].reshape(n, 2, 3, 1), (n, 2, 3, 4)).copy()
        return probs, {"conv1": conv, "dense1": waves[:, :3], "probs": probs}

    got = list(compute_activation_batches(items, run_batch, params=params, labels=["a", "b"],
                                          batch_size=2, level="utterance"))
    assert [b.n for b in got] == [2, 2, 1]
    assert sorted(got[0].acts) == ["conv1", "dense1"]
    assert [c for b in got for c in b.correct] == [False, True, False, True, False]
    np.testing.assert_allclose(got[0].confidence, [0.8, 0.8])
    frame = next(compute_activation_batches(items, run_batch, params=params, labels=["a", "b"],
                                            batch_size=2, level="frame"))
    assert list(frame.acts) == ["conv1"] and frame.acts["conv1"].shape == (2, 3, 4)


_READ_PEAK = """
import re, sys, threading, time
sys.path.insert(0, {root!r})
from data.activations_read import open_activation_store
def rss():
    return int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) << 10
store = open_activation_store({path!r})
base, peak, done = rss(), [0], []
def watch():
    while not done:
        peak[0] = max(peak[0], rss())
        time.sleep(0.002)
t = threading.Thread(target=watch)
t.start()
x = store.layer_matrix("conv1")
done.append(1)
t.join()
print(peak[0] - base, x.nbytes, float(x[-1, -1]))
"""


def test_reading_a_layer_holds_little_beyond_its_matrix(tmp_path):
    """A 160 MB layer in 20 row groups of 8 MB: reading it must hold little beyond the matrix
    being filled. pyarrow's default read (each row group pre-buffered, its buffers kept by the
    allocator) held 0.72 GB more; streamed 8 MB blocks with the pool released: ~0.07 GB."""
    import subprocess
    import sys
    from pathlib import Path

    rng = np.random.default_rng(0)
    n, d, groups = 40_000, 1000, 20
    acts = rng.standard_normal((n, d), dtype=np.float32)
    m = n // groups
    batches = (BatchActs(item_id=[f"u{i}" for i in range(s, s + m)], label=["yes"] * m,
                         speaker=["s"] * m, prediction=["yes"] * m, correct=np.ones(m, bool),
                         confidence=np.ones(m, np.float32), acts={"conv1": acts[s:s + m]})
               for s in range(0, n, m))
    out = write_activation_store(tmp_path / "store", batches, level="utterance")
    assert pq.ParquetFile(next(out.rglob("*.parquet"))).metadata.num_row_groups == groups
    root = str(Path(__file__).resolve().parents[2])
    done = subprocess.run([sys.executable, "-c", _READ_PEAK.format(root=root, path=str(out))],
                          capture_output=True, text=True, check=True)
    over, nbytes, last = done.stdout.split()
    assert float(last) == float(acts[-1, -1])
    assert int(over) < int(nbytes) + 128 * 2**20, (int(over) / 2**20, int(nbytes) / 2**20)
