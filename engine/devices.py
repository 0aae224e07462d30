"""Batches over every local device: the forward and activation passes shard their batch axis
with :mod:`jax.sharding` when a process sees more than one device (a multi-GPU worker, or a CPU
split with ``XLA_FLAGS=--xla_force_host_platform_device_count=N``).

The weights are replicated on every device once; each batch is split along its first axis into
equal slices, one per device, and the jitted forward runs them in parallel (XLA's SPMD
partitioner), so nothing in the model code changes. A batch that does not split evenly over the
devices (the small buckets of interactive use: 1, 2, ...) runs unsharded as before, so one
device — every CPU run by default, a one-GPU machine — takes exactly the old path.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


@functools.cache
def _mesh(n_devices: int) -> Mesh:
    return Mesh(np.array(jax.local_devices()[:n_devices]), ("batch",))


def device_count() -> int:
    """Local devices this process can shard a batch over."""
    return jax.local_device_count()


def batch_sharding(n: int) -> NamedSharding | None:
    """Split a batch of ``n`` along its first axis over all local devices, or ``None`` when
    there is one device or ``n`` does not divide evenly."""
    d = device_count()
    if d < 2 or n % d:
        return None
    return NamedSharding(_mesh(d), PartitionSpec("batch"))


def replicated():
    """Every local device holds the whole array (for weights), or ``None`` on one device."""
    d = device_count()
    return None if d < 2 else NamedSharding(_mesh(d), PartitionSpec())


class Sharder:
    """Places a model's weights once and each batch per call (see the module's note).

    ``weights(tree)`` is the tree the jitted function should take: replicated over the local
    devices (done once, cached by ``id``), or the tree itself on one device. ``batch(x)`` is
    ``x`` split over the devices when it divides evenly, else ``x`` unchanged (NumPy in, as the
    single-device path has always passed it)."""

    def __init__(self):
        self._placed: dict[int, tuple[object, object]] = {}

    def weights(self, tree):
        spec = replicated()
        if spec is None:
            return tree
        key = id(tree)
        if key not in self._placed or self._placed[key][0] is not tree:
            self._placed = {key: (tree, jax.device_put(tree, spec))}  # one model at a time
        return self._placed[key][1]

    def batch(self, x):
        spec = batch_sharding(len(x))
        return x if spec is None else jax.device_put(x, spec)

    def devices_for(self, n: int) -> int:
        """How many devices a batch of ``n`` runs on."""
        return device_count() if batch_sharding(n) is not None else 1
