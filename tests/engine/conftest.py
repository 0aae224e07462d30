"""Hand-built pure-JAX models shared by the attribution tests (one file per method).

``toy``: a linear model (its gradient is its weight row) and a small MLP over ``(2, 4, 5)``
inputs ``X`` with targets ``TARGET``. ``planted``: a model whose class-0 logit reads only a
planted patch, as ``acts_fn`` (with the intervention protocol), ``logits_fn`` and inputs.
The functions are module-level objects, so the jitted cores' caches see the same model in every
test file.
"""

from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models.hooks import intervene

F, T, C = 4, 5, 3
RNG = np.random.default_rng(0)
W = jnp.asarray(RNG.normal(size=(C, F, T)), jnp.float32)
B0 = jnp.asarray([0.1, -0.2, 0.3], jnp.float32)
W1 = jnp.asarray(RNG.normal(size=(6, F * T)) * 0.3, jnp.float32)
W2 = jnp.asarray(RNG.normal(size=(C, 6)), jnp.float32)
X = jnp.asarray(RNG.normal(size=(2, F, T)), jnp.float32)
TARGET = np.array([0, 2])


def linear(x):
    return jnp.einsum("cft,bft->bc", W, x) + B0


def mlp(x):
    h = jnp.tanh(x.reshape(x.shape[0], -1) @ W1.T)
    return jax.nn.softplus(h) @ W2.T


# Planted patch: class 0's logit is 4 × the mean of a ReLU "detector" over a patch region of a
# 2×2-average-pooled input; channel 1 detects the opposite and is unused.
PF, PT = 24, 20
PATCH = (slice(8, 16), slice(8, 16))


def planted_acts(x, *, perturb=None, mask=None, replace=None):
    pooled = x.reshape(x.shape[0], PF // 2, 2, PT // 2, 2).mean(axis=(2, 4))
    a = jax.nn.relu(jnp.stack([pooled, -pooled], axis=-1))
    a = intervene("conv", a, perturb=perturb, mask=mask, replace=replace)
    logit0 = 4.0 * a[:, 4:8, 4:8, 0].mean(axis=(1, 2))
    return jnp.stack([logit0, jnp.zeros_like(logit0)], axis=-1), {"conv": a}


def planted_logits(x):
    return planted_acts(x)[0]


def planted_input(n=2, seed=1):
    x = -1.0 + 0.1 * np.random.default_rng(seed).normal(size=(n, PF, PT))
    x[:, PATCH[0], PATCH[1]] += 2.0
    return jnp.asarray(x, jnp.float32)


def patch_mass(m):
    m = np.asarray(m)
    return m[:, PATCH[0], PATCH[1]].sum(axis=(1, 2)) / m.sum(axis=(1, 2))


@pytest.fixture(scope="session")
def toy():
    return SimpleNamespace(F=F, T=T, C=C, W=W, X=X, TARGET=TARGET, linear=linear, mlp=mlp)


@pytest.fixture(scope="session")
def planted():
    return SimpleNamespace(acts=planted_acts, logits=planted_logits, input=planted_input,
                           mass=patch_mass)


@pytest.fixture
def pair():
    """``(x (120, 10), y (120, 2))``: a noisy linear 2-D image of 10-D points, for projection
    distances and quality metrics."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 10))
    y = x @ rng.standard_normal((10, 2)) + 0.3 * rng.standard_normal((120, 2))
    return x, y
