"""FitConfig's newer knobs: SpecAugment mask counts reach the augmenter, noise reaches it, and
weight averaging over the last epochs gives the mean of those epochs' weights."""

import jax
import numpy as np
from flax import nnx

from models.fit import FitConfig, _augmenter, _WeightAverage
from models.registry import build_model


def test_masks_and_noise_reach_the_augmenter():
    aug = _augmenter(FitConfig(arch="soomro_cnn", masks=2, noise=0.4, noise_depth=(1.0, 3.0)))
    assert (aug.freq_masks, aug.time_masks, aug.noise, aug.noise_depth) == (2, 2, 0.4, (1.0, 3.0))
    plain = _augmenter(FitConfig(arch="soomro_cnn"))
    assert (plain.freq_masks, plain.time_masks, plain.noise) == (1, 1, 0.0)


def _params(model):
    return [np.asarray(v) for v in jax.tree.leaves(nnx.state(model, nnx.Param))]


def test_weight_average_is_the_mean_of_the_epochs_after_the_cut():
    models = [build_model("soomro_cnn", n_classes=3, input_shape=(16, 16), seed=s)
              for s in range(3)]
    expected = [(b + c) / 2 for b, c in zip(_params(models[1]), _params(models[2]))]
    average = _WeightAverage(after=1)
    for epoch, model in enumerate(models, start=1):  # epoch 1 is before the cut
        average.add(epoch, model)
    assert average.n == 2
    target = build_model("soomro_cnn", n_classes=3, input_shape=(16, 16), seed=9)
    average.apply(target)
    for got, want in zip(_params(target), expected):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
        assert got.dtype == np.float32
