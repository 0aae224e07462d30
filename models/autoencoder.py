"""Convolutional spectrogram autoencoder: the natural-speech prior of Soomro et al.

The decoder maps a 256-d latent code to a spectrogram; activation maximisation in latent
space (``engine.actmax``) searches codes whose decoded spectrogram a classifier assigns to a
class, which keeps the result speech-like.

References:
  Soomro et al., "Generating speech utterances by activation maximisation" (AE prior with a
  256-d bottleneck and no activation on the bottleneck).
  Odena, Dumoulin & Olah 2016, "Deconvolution and checkerboard artifacts" (kernel size a
  multiple of the stride).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from models.architectures import _check_input, _shape2, sow

_CHANNELS = (16, 32, 64)


def _ceil_half(n: int) -> int:
    return -(-n // 2)


class SpectrogramAE(nnx.Module):
    """Encoder: 3 × (conv 3×3 stride 2, ReLU) with 16/32/64 channels → dense ``latent`` (linear).
    Decoder, the mirror image: dense → 2 × (transposed conv 4×4 stride 2, ReLU) with 32/16
    channels → transposed conv 4×4 stride 2 to 1 channel → crop to ``input_shape``.

    The output is ``floor · sigmoid(h)`` ∈ (floor, 0): features are floored log10 values in
    ``[floor, 0]``, and a bounded output guarantees any decoded code (also one found by
    latent-space maximisation) is a valid, invertible spectrogram. ``floor`` defaults to the
    log-mel preset's −5, which also covers the STFT preset's [−4, 0].

    Sows ``enc1``..``enc3`` (NHWC) and ``latent`` ``(batch, latent)``.
    """

    layer_names = ("enc1", "enc2", "enc3", "latent")

    def __init__(self, input_shape=(80, 90), *, latent: int = 256, floor: float = -5.0,
                 rngs: nnx.Rngs):
        self.input_shape = _shape2(input_shape)
        if latent < 1 or floor >= 0:
            raise ValueError(f"need latent >= 1 and floor < 0, got {latent}, {floor}")
        self.latent_dim, self.floor = int(latent), float(floor)
        h, w, c_in = *self.input_shape, 1
        for i, c in enumerate(_CHANNELS, start=1):
            setattr(self, f"enc{i}", nnx.Conv(c_in, c, kernel_size=(3, 3), strides=(2, 2),
                                              padding="SAME", rngs=rngs))
            h, w, c_in = _ceil_half(h), _ceil_half(w), c
        self.code_shape = (h, w, c_in)
        self.to_latent = nnx.Linear(h * w * c_in, self.latent_dim, rngs=rngs)
        self.from_latent = nnx.Linear(self.latent_dim, h * w * c_in, rngs=rngs)
        # The decoder mirrors the encoder (64 → 32 → 16 → 1 channels). The old one kept
        # 64/32/16 channels one level finer and added a 3×3 conv at full resolution: 4× the
        # cost of a training step on CPU (3.6 vs 0.9 s for a batch of 32 of 80×90 log-mel on
        # a loaded 2-core machine), so the prior got few epochs; the 7680-d code is the same. Kernels of 4 (a multiple of the stride 2) overlap evenly,
        # so the output has no checkerboard pattern (Odena et al. 2016).
        outs = (*reversed(_CHANNELS[:-1]), 1)
        for i, c in enumerate(outs, start=1):
            setattr(self, f"dec{i}", nnx.ConvTranspose(c_in, c, kernel_size=(4, 4),
                                                       strides=(2, 2), padding="SAME",
                                                       rngs=rngs))
            c_in = c

    def encode(self, x: jax.Array) -> jax.Array:
        """Features ``(batch, freq, time)`` → latent codes ``(batch, latent)``."""
        _check_input(x, self.input_shape, "SpectrogramAE")
        h = x[..., None]
        for i in range(1, len(_CHANNELS) + 1):
            h = nnx.relu(getattr(self, f"enc{i}")(h))
            sow(self, f"enc{i}", h)
        z = self.to_latent(h.reshape(h.shape[0], -1))  # no activation on the bottleneck
        sow(self, "latent", z)
        return z

    def decode(self, z: jax.Array) -> jax.Array:
        """Latent codes ``(batch, latent)`` → features ``(batch, freq, time)`` in (floor, 0)."""
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"decode expects codes of shape (batch, {self.latent_dim}), "
                             f"got {tuple(z.shape)}")
        h = nnx.relu(self.from_latent(z)).reshape(z.shape[0], *self.code_shape)
        for i in range(1, len(_CHANNELS) + 1):
            h = getattr(self, f"dec{i}")(h)
            h = nnx.relu(h) if i < len(_CHANNELS) else h[..., 0]  # linear into the sigmoid
        f, t = self.input_shape
        # Stride-2 upsampling of ceil-halved sizes overshoots odd sizes; crop back exactly.
        return self.floor * jax.nn.sigmoid(h[:, :f, :t])

    def __call__(self, x: jax.Array) -> jax.Array:
        """Reconstruction ``(batch, freq, time)`` of features ``x`` of the same shape."""
        return self.decode(self.encode(x))


def reconstruction_error(ae: SpectrogramAE, x: jax.Array) -> jax.Array:
    """Mean squared reconstruction error per example ``(batch,)`` (log10 units squared)."""
    return jnp.mean((ae(x) - x) ** 2, axis=(1, 2))
