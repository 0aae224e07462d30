"""Activations of a corpus computed on a Dask cluster (``hearsight activations --cluster``).

Tasks are batches of files; every worker process loads the model once (a per-process cache
keyed by the model spec) and returns the batch's pooled activations (:class:`BatchActs`).
The client writes the results to the store in corpus order, each exactly once, so a task
that Dask reruns after its worker died (tasks are pure) cannot duplicate rows; at most
``window`` results wait in memory at a time.

``--cluster ADDRESS`` names a running ``dask.distributed`` scheduler (``tcp://host:8786``);
``--cluster local:N`` starts a ``LocalCluster`` of ``N`` single-threaded worker processes on
this machine for the command's duration.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence

_PREDICTORS: dict = {}
_LOCK = threading.Lock()


def local_workers(address: str) -> int | None:
    """``N`` of ``local:N`` (``ValueError`` unless 1..256), None for a scheduler address."""
    if not address.startswith("local:"):
        if "://" not in address and ":" not in address:
            raise ValueError(f"--cluster {address!r}: give a scheduler address "
                             "(tcp://host:8786) or local:N")
        return None
    try:
        n = int(address.split(":", 1)[1])
    except ValueError:
        n = 0
    if not 1 <= n <= 256:
        raise ValueError(f"--cluster local:N needs 1 <= N <= 256 workers, got {address!r}")
    return n


@contextlib.contextmanager
def connect(address: str, *, memory_limit: str = "auto"):
    """A ``distributed.Client`` of ``address`` (``local:N`` or a scheduler address)."""
    from distributed import Client, LocalCluster

    n = local_workers(address)
    if n is not None:
        # dashboard_address=":0": a free port (None still binds :8787, so a second local
        # cluster on the machine, e.g. two commands at once, failed to start).
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                          memory_limit=memory_limit, dashboard_address=":0") as cluster, \
                Client(cluster) as client:
            yield client
        return
    try:
        client = Client(address, timeout=30)
    except OSError as exc:
        raise ValueError(f"--cluster {address}: no Dask scheduler answers there ({exc}); start "
                         "one with `dask scheduler` or use --cluster local:N") from exc
    with client:
        yield client


def worker_predictor(spec: str, trusted_arch: str | None):
    """The predictor of ``spec`` in this worker process (loaded on its first task)."""
    from engine.predictor import load_predictor

    key = (spec, trusted_arch)
    with _LOCK:
        if key not in _PREDICTORS:
            _PREDICTORS[key] = load_predictor(spec, trusted_arch=trusted_arch)
        return _PREDICTORS[key]


def activation_task(spec: str, trusted_arch: str | None, items: Sequence, level: str,
                    layers: Sequence[str] | None):
    """One task: the pooled activations of ``items`` (a ``BatchActs``), or None when no
    file of the batch could be read."""
    from data.activations import compute_activation_batches

    p = worker_predictor(spec, trusted_arch)
    batches = list(compute_activation_batches(
        list(items), lambda w: p.run(p.features(w)), params=p.params, labels=p.labels,
        batch_size=max(1, len(items)), level=level, layers=layers))
    return batches[0] if batches else None


def cluster_activation_batches(client, spec: str, items: Sequence, *, batch_size: int,
                               level: str, layers: Sequence[str] | None = None,
                               trusted_arch: str | None = None,
                               window: int | None = None) -> Iterator:
    """``BatchActs`` of ``items`` in corpus order, computed by the cluster's workers
    (``window``: tasks submitted ahead of the one being written; default 2 per worker)."""
    from collections import deque

    chunks = [list(items[s:s + batch_size]) for s in range(0, len(items), batch_size)]
    if window is None:
        window = max(2, 2 * len(client.scheduler_info().get("workers", {})))
    pending: deque = deque()
    nxt = 0
    while nxt < len(chunks) or pending:
        while nxt < len(chunks) and len(pending) < window:
            pending.append(client.submit(activation_task, spec, trusted_arch, chunks[nxt],
                                         level, layers, pure=True, retries=2,
                                         key=f"hearsight-acts-{nxt}-{id(chunks)}"))
            nxt += 1
        batch = pending.popleft().result()
        if batch is not None:
            yield batch
