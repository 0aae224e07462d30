"""A layer larger than a Dask worker's memory limit is projected on the cluster, block by block,
to the in-memory result (slow: writes a 1.1 GB store)."""

from __future__ import annotations

import resource

import numpy as np
import pytest

pytest.importorskip("distributed")

D, FRAMES, UTTERANCES, PER_BATCH = 64, 100, 44_000, 1000  # 4.4M frames x 64 float32
# A worker holds ~0.3 GB of runtime (Python, NumPy, JAX, pyarrow) and ~0.3 GB while it reads
# 25 MB row groups (measured: 0.59 GB peak for a 0.67 GB layer), whatever the layer's size.
LIMIT_MB = 1000


def _batches(seed: int = 0):
    from data.activations import BatchActs

    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (10, D)).astype(np.float32)
    for start in range(0, UTTERANCES, PER_BATCH):
        brng = np.random.default_rng([seed, start])
        cls = brng.integers(0, 10, PER_BATCH)
        a = centres[np.repeat(cls, FRAMES)] + brng.normal(0, 1, (PER_BATCH * FRAMES, D))
        labels = [str(c) for c in cls]
        yield BatchActs(item_id=[f"u{start + i}" for i in range(PER_BATCH)], label=labels,
                        speaker=["s"] * PER_BATCH, prediction=labels,
                        correct=np.ones(PER_BATCH, bool),
                        confidence=np.ones(PER_BATCH, np.float32),
                        acts={"layer": a.astype(np.float32).reshape(PER_BATCH, FRAMES, D)})


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.slow
def test_a_layer_larger_than_the_workers_memory_is_projected_block_by_block(tmp_path):
    import jax
    from distributed import Client, LocalCluster

    from data.activations import write_activation_store
    from data.activations_read import open_activation_store
    from engine.projection.distributed import dask_pivot_mds
    from engine.projection.pivot_mds import pivot_mds

    path = write_activation_store(tmp_path / "store", _batches(), level="frame",
                                  rows_per_part=500_000)
    store = open_activation_store(path)
    n = store.info("layer")["rows"]
    layer_mb = n * D * 4 / 2**20
    assert n == UTTERANCES * FRAMES and layer_mb > LIMIT_MB  # the layer does not fit a worker
    key = jax.random.PRNGKey(0)
    # Dask pauses a worker at 80 % of its limit until memory is freed; the runtime is unmanaged
    # memory that never frees, so a paused worker could wait for ever. Without the pause the
    # limit still holds: the nanny kills a worker at 95 % (the test then finds it replaced).
    import dask

    with dask.config.set({"distributed.worker.memory.pause": False,
                          "distributed.worker.memory.spill": False,
                          "distributed.worker.memory.target": False}), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      memory_limit=f"{LIMIT_MB}MB", dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        workers = set(client.scheduler_info()["workers"])
        x = store.dask_layer("layer")
        assert x.numblocks[0] > 10 and max(x.chunks[0]) * D * 4 / 2**20 < 50
        y = dask_pivot_mds(x, k=30, pivots="random", key=key, out=tmp_path / "layout")
        layout = np.asarray(y.compute())
        peaks = client.run(_peak_mb)
        assert set(client.scheduler_info()["workers"]) == workers  # none killed, none restarted
    assert all(p < LIMIT_MB for p in peaks.values()), peaks
    ref = np.asarray(pivot_mds(store.layer_matrix("layer"), k=30, pivots="random", key=key))
    assert layout.shape == (n, 2)
    assert np.abs(layout - ref).max() <= 1e-5 * np.abs(ref).max()
