"""A waveform model's attribution drawn on the clip's time-frequency picture.

An attribution over samples ``(n_samples,)`` has no frequency axis. To draw it on the
picture of the input (the display STFT, ``predictor.picture``) it is first summed per STFT
frame, every sample's share split between the frames whose windows cover it in proportion to
the window's squared weight there (normalised so that each sample's shares sum to one: an
overlap-add partition of unity); then each frame's sum is spread over that frame's rows in
proportion to the clip's energy ``|STFT(wave)|²`` in each row. What is shown is therefore the
*attribution per frame, spread over that frame's spectrum by energy*: its time axis is the
model's, its frequency axis is the clip's. Nothing is created or lost: the picture sums to
the attribution's sum (completeness carries over from integrated gradients), and a frame of
silence gets its share spread evenly over its rows.

A map that is not additive (Grad-CAM's class activation over time) is drawn by
:func:`waveform_time_picture` instead: its weighted mean per frame, the same in every row.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from data.features import FeatureParams, mel_filterbank, stft, window_array

Array = jax.Array


def frame_weights(params: FeatureParams) -> tuple[np.ndarray, np.ndarray]:
    """``(index, weight)``, both ``(n_frames, n_fft)``: the samples each picture frame covers
    (centred frames, as :func:`data.features.stft`) and each sample's share in that frame.

    A sample's shares over the frames covering it sum to one (squared analysis window,
    normalised per sample); cover by the reflect padding beyond the clip's ends is not counted.
    A sample no kept frame covers (``params.n_frames`` cut short) goes wholly to the nearest one.
    """
    n, n_fft, hop, n_frames = params.n_samples, params.n_fft, params.hop_length, params.n_frames
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None] - n_fft // 2
    w2 = np.broadcast_to(window_array(params.window, n_fft).astype(np.float64) ** 2, idx.shape)
    inside = (idx >= 0) & (idx < n)
    w2 = np.where(inside, w2, 0.0)
    total = np.zeros(n)
    np.add.at(total, idx[inside], w2[inside])
    share = np.where(inside, w2 / np.where(total[np.clip(idx, 0, n - 1)] > 0,
                                           total[np.clip(idx, 0, n - 1)], 1.0), 0.0)
    orphans = np.flatnonzero(total <= 0)
    if orphans.size:  # beyond the last kept frame: the nearest frame takes them whole
        nearest = np.clip(np.round(orphans / hop).astype(int), 0, n_frames - 1)
        extra_idx = np.full((n_frames, orphans.size), 0)
        extra_w = np.zeros((n_frames, orphans.size))
        extra_idx[nearest, np.arange(orphans.size)] = orphans
        extra_w[nearest, np.arange(orphans.size)] = 1.0
        idx, share = np.concatenate([idx, extra_idx], 1), np.concatenate([share, extra_w], 1)
    return np.clip(idx, 0, n - 1), share


def frame_sums(attr, params: FeatureParams) -> Array:
    """``(n_frames,)``: a per-sample attribution ``(n_samples,)`` summed per picture frame
    with the shares of :func:`frame_weights` (the frames sum to the attribution's sum)."""
    idx, share = frame_weights(params)
    return (jnp.asarray(attr, jnp.float32)[idx] * jnp.asarray(share, jnp.float32)).sum(axis=1)


def row_energy(wave, params: FeatureParams) -> Array:
    """``(rows, n_frames)`` energy of the clip in every picture cell: ``|STFT|²`` of the
    picture's rows (linear STFT), or the mel filter bank applied to it (log-mel pictures)."""
    power = jnp.abs(stft(jnp.asarray(wave, jnp.float32), n_fft=params.n_fft,
                         hop_length=params.hop_length, window=params.window)) ** 2
    if params.kind == "logmel":
        power = jnp.asarray(mel_filterbank(params.sample_rate, params.n_fft, params.n_mels,
                                           params.fmin, params.fmax)) @ power
    else:
        power = power[:params.n_freq]
    frames = power[:, :params.n_frames]
    missing = params.n_frames - frames.shape[1]
    return jnp.pad(frames, ((0, 0), (0, missing))) if missing > 0 else frames


def _check(values, wave, params: FeatureParams) -> None:
    for name, a in (("attribution", values), ("wave", wave)):
        if np.shape(a) != (params.n_samples,):
            raise ValueError(f"{name} must be one clip's samples ({params.n_samples},), got "
                             f"shape {np.shape(a)}")


def waveform_attribution_picture(attr, wave, params: FeatureParams) -> Array:
    """The attribution per picture frame, spread over that frame's spectrum by energy.

    Args:
      attr: ``(n_samples,)`` attribution of one clip's samples (e.g. integrated gradients).
      wave: ``(n_samples,)`` the clip (the model input) whose energy spreads each frame's sum.
      params: the picture's STFT (``predictor.picture_params``: 25 ms windows every 10 ms
        for waveform models).
    Returns:
      ``(rows, n_frames)`` float32, row 0 lowest, on the grid of ``predictor.picture``;
      ``picture.sum() == attr.sum()`` (to float32 rounding).
    """
    _check(attr, wave, params)
    per_frame = frame_sums(attr, params)
    energy = row_energy(wave, params)
    total = energy.sum(axis=0)
    rows = energy.shape[0]
    share = jnp.where(total > 0, energy / jnp.where(total > 0, total, 1.0), 1.0 / rows)
    return (share * per_frame[None, :]).astype(jnp.float32)


def waveform_time_picture(values, params: FeatureParams) -> Array:
    """A per-sample profile that is not additive (a CAM over time) as a picture: its mean per
    frame (the shares of :func:`frame_weights`, normalised per frame), in every row,
    ``(rows, n_frames)``."""
    if np.shape(values) != (params.n_samples,):
        raise ValueError(f"values must be one clip's samples ({params.n_samples},), got "
                         f"shape {np.shape(values)}")
    idx, share = frame_weights(params)
    share = share / np.maximum(share.sum(axis=1, keepdims=True), 1e-12)
    means = (jnp.asarray(values, jnp.float32)[idx] * jnp.asarray(share, jnp.float32)).sum(1)
    rows = params.n_mels if params.kind == "logmel" else params.n_freq
    return jnp.broadcast_to(means[None, :], (rows, params.n_frames)).astype(jnp.float32)
