"""Attribution maps over a model's input: saliency, gradient × input, integrated gradients,
SmoothGrad, Grad-CAM and occlusion; and the time-frequency picture of a waveform's
attribution (:func:`waveform_attribution_picture`).

Model protocol (the real models are adapted to it)
---------------------------------------------------
``logits_fn(x) -> logits``
    ``x``: float32 ``(batch, freq, time)`` features, or ``(batch, n_samples)`` waveforms
    (every method's ``waveform=True``) → ``(batch, n_classes)``. A pure, differentiable JAX
    function closing over the parameters, in inference mode (no dropout; batch-norm uses its
    running statistics) so that examples are independent. Then the gradient of
    ``sum_b logits[b, target[b]]`` with respect to ``x`` is every example's own gradient.
``acts_fn(x, *, perturb=None, mask=None, replace=None) -> (logits, acts)``
    ``acts``: ``dict[str, Array]`` of named intermediates (``conv1`` … ``dense1``);
    convolutional activations NHWC ``(batch, freq', time', channels)``, maps over time
    ``(batch, time', channels)`` (1-d convolutions, transformer tokens), dense
    ``(batch, units)``.
    For each named layer the model passes the activation through
    :func:`models.hooks.intervene` before using it and returns the intervened value in
    ``acts``. ``perturb[name]`` (the activation's shape) is added; the gradient with respect to
    it at zero equals the gradient with respect to the activation, which is how Grad-CAM reaches
    an intermediate without splitting the model. ``mask[name]`` and ``replace[name]``
    (``(channels,)``) switch channels off (``engine.ablation``).

Gradient methods explain the target *logit* (pre-softmax, as Grad-CAM prescribes); occlusion
explains the target *probability*. Every function takes a batch and per-example integer
targets and returns a map of the shape of ``x``. Jitted cores take the model function as a
static argument:
build ``logits_fn``/``acts_fn`` once per model and reuse the same object, or every call recompiles.
Work over many (example, step) rows runs in chunks of ``internal_batch_size`` rows inside a
``lax.scan``/``lax.map``, so memory is bounded by the chunk, never by ``steps × batch``.
"""

from __future__ import annotations

from engine.attribution.baselines import (BASELINES, gaussian_blur, gaussian_blur_samples,
                                          make_baseline)
from engine.attribution.batching import check_batch, map_in_chunks, sum_in_chunks
from engine.attribution.grad_cam import grad_cam
from engine.attribution.gradients import gradient_x_input, saliency, smoothgrad
from engine.attribution.integrated_gradients import integrated_gradients, path_nodes
from engine.attribution.methods import METHODS, attribute
from engine.attribution.occlusion import occlusion
from engine.attribution.targets import logits_from_acts, target_logit_sum, target_prob
from engine.attribution.waveform_picture import (waveform_attribution_picture,
                                                 waveform_time_picture)

__all__ = [
    "BASELINES", "METHODS", "attribute", "check_batch", "gaussian_blur", "gaussian_blur_samples",
    "grad_cam", "gradient_x_input", "integrated_gradients", "logits_from_acts", "make_baseline",
    "map_in_chunks", "occlusion", "path_nodes", "saliency", "smoothgrad", "sum_in_chunks",
    "target_logit_sum", "target_prob", "waveform_attribution_picture", "waveform_time_picture",
]
