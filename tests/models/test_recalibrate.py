"""Batch-norm recalibration: running statistics become the exact averages over the data."""

import jax.numpy as jnp
import numpy as np
from flax import nnx

from models.train import recalibrate_batch_norm


class _Tiny(nnx.Module):
    def __init__(self, rngs):
        self.lin = nnx.Linear(3, 4, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)
        self.bn = nnx.BatchNorm(4, momentum=0.9, rngs=rngs)

    def __call__(self, x):
        return self.bn(self.drop(self.lin(x)))


def test_running_stats_equal_the_data_averages_with_dropout_off():
    model = _Tiny(nnx.Rngs(0))
    x = np.random.default_rng(0).normal(3.0, 2.0, (256, 3)).astype(np.float32)
    assert recalibrate_batch_norm(model, x, batch_size=64) == 1
    h = np.asarray(model.lin(jnp.asarray(x))).reshape(4, 64, 4)  # the 4 batches, no dropout
    np.testing.assert_allclose(np.asarray(model.bn.mean.get_value()), h.mean(axis=(0, 1)),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(model.bn.var.get_value()), h.var(axis=1).mean(axis=0),
                               rtol=1e-4, atol=1e-4)
    assert model.bn.use_running_average and model.bn.momentum == 0.9  # restored, eval mode


def test_models_without_batch_norm_are_untouched():
    model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    assert recalibrate_batch_norm(model, np.zeros((8, 3), np.float32)) == 0
