"""``hearsight activations --cluster``: a store computed by Dask workers equals the one computed
here, row for row, even when a worker dies mid-run; ``--rows-per-part`` splits the layers."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("distributed")

from data.activations import write_activation_store  # noqa: E402
from data.activations_read import open_activation_store  # noqa: E402


@pytest.fixture
def corpus_dir(tmp_path, fsdd_dir):
    """A folder corpus of 12 FSDD recordings (links to ../shared/data/fsdd, nothing copied)."""
    root = tmp_path / "corpus"
    for digit in ("0", "1", "2"):
        (root / digit).mkdir(parents=True)
        for take in range(4):
            src = fsdd_dir / f"{digit}_george_{take}.wav"
            os.symlink(src, root / digit / src.name)
    return root


def _stores_equal(a, b):
    assert a.layers == b.layers
    for name in a.layers:
        np.testing.assert_allclose(a.layer_matrix(name), b.layer_matrix(name), atol=1e-5)
        assert list(a.meta(name)["item_id"]) == list(b.meta(name)["item_id"])


def test_cluster_store_equals_local_store(tiny_checkpoint, corpus_dir, tmp_path, capsys):
    from cli.main import main

    common = ["activations", "--model", str(tiny_checkpoint), "--corpus", f"folder:{corpus_dir}",
              "--split", "all", "--batch-size", "5"]
    assert main([*common, "--out", str(tmp_path / "here")]) == 0
    assert main([*common, "--out", str(tmp_path / "there"), "--cluster", "local:2",
                 "--rows-per-part", "5"]) == 0
    here, there = (open_activation_store(tmp_path / p) for p in ("here", "there"))
    _stores_equal(here, there)
    assert here.info(here.layers[0])["rows"] == 12
    assert len(there.parts(there.layers[0])) == 3  # 5 + 5 + 2 rows


def test_a_killed_worker_leaves_the_store_complete(tiny_checkpoint, corpus_dir, tmp_path):
    import psutil
    from distributed import Client, LocalCluster

    from data.activations import compute_activation_batches
    from data.corpora import open_corpus
    from engine.cluster import cluster_activation_batches
    from engine.predictor import load_predictor

    items = open_corpus(f"folder:{corpus_dir}", progress=False).split("all")
    p = load_predictor(tiny_checkpoint)
    local = write_activation_store(tmp_path / "local", compute_activation_batches(
        items, lambda w: p.run(p.features(w)), params=p.params, labels=p.labels, batch_size=2),
        level="utterance")
    killed = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        def batches():
            for i, batch in enumerate(cluster_activation_batches(
                    client, str(tiny_checkpoint), items, batch_size=2, level="utterance",
                    window=4)):
                if i == 0:  # tasks are in flight on both workers: end one of them hard
                    pid = next(iter(client.run(os.getpid).values()))
                    psutil.Process(pid).kill()
                    killed.append(pid)
                yield batch

        dist = write_activation_store(tmp_path / "dist", batches(), level="utterance")
    assert killed
    _stores_equal(open_activation_store(local), open_activation_store(dist))


def test_bad_cluster_address_is_one_clear_message(tiny_checkpoint, corpus_dir, tmp_path, capsys):
    from cli.main import main

    rc = main(["activations", "--model", str(tiny_checkpoint), "--corpus", f"folder:{corpus_dir}",
               "--split", "all", "--out", str(tmp_path / "s"), "--cluster", "local:0"])
    assert rc == 2 and "local:N" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
