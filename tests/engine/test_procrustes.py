"""Known-answer tests of engine.projection.procrustes (similarity fit, mirroring test, layer
chains, the Procrustes distance)."""

import jax
import numpy as np
import pytest
from scipy.spatial import procrustes

from engine.projection import (align_layers, interpolate_layouts, procrustes_align,
                               procrustes_distance)

align = jax.jit(procrustes_align, static_argnames="allow_reflection")
MIRROR = np.diag([1.0, -1.0])


def _rot(theta):
    return np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])


@pytest.fixture
def cloud():
    return np.random.default_rng(0).standard_normal((50, 2)).astype(np.float32)


def test_reflected_similarity_copy_is_undone(cloud):
    moved = (2.5 * cloud @ MIRROR @ _rot(0.7) + [3.0, -1.0]).astype(np.float32)
    r = align(moved, cloud, allow_reflection="auto")
    assert bool(r.reflected)
    assert float(r.residual) < 1e-6
    np.testing.assert_allclose(r.aligned, cloud, atol=1e-4)
    assert float(r.scale) == pytest.approx(1 / 2.5, rel=1e-5)
    assert np.linalg.det(np.asarray(r.rotation)) == pytest.approx(-1.0, abs=1e-5)


def test_pure_rotation_is_not_reported_as_mirror(cloud):
    moved = (cloud @ _rot(-2.0) + 4.0).astype(np.float32)
    r = align(moved, cloud, allow_reflection="auto")
    assert not bool(r.reflected)
    assert float(r.residual) < 1e-6
    np.testing.assert_allclose(r.rotation, _rot(-2.0).T, atol=1e-5)
    np.testing.assert_allclose(r.translation, -4.0 * np.ones(2) @ _rot(-2.0).T, atol=1e-4)


def test_mirror_cannot_be_fitted_without_reflection(cloud):
    moved = (cloud @ MIRROR @ _rot(0.3)).astype(np.float32)
    r = align(moved, cloud, allow_reflection=False)
    assert not bool(r.reflected)
    assert float(r.residual) > 0.1
    assert float(align(moved, cloud, allow_reflection=True).residual) < 1e-6


def test_residual_is_scipy_disparity(cloud):
    other = np.random.default_rng(1).standard_normal((50, 2)).astype(np.float32)
    ref = procrustes(cloud, other)[2]
    assert float(align(other, cloud, allow_reflection=True).residual) == pytest.approx(ref, rel=1e-4)
    assert float(align(other, cloud, allow_reflection="auto").residual) == pytest.approx(ref, rel=1e-4)


def test_align_layers_undoes_spins_and_flips(cloud):
    rng = np.random.default_rng(2)
    layers = [cloud]
    for _ in range(5):
        flip = MIRROR if rng.random() < 0.5 else np.eye(2)
        layers.append((rng.uniform(0.2, 5) * cloud @ flip @ _rot(rng.uniform(0, 2 * np.pi))
                       + rng.normal(size=2)).astype(np.float32))
    results = align_layers(layers)
    assert len(results) == 6
    for r in results:
        np.testing.assert_allclose(r.aligned, cloud, atol=1e-4)


def _size(xy) -> float:
    xy = np.asarray(xy, np.float64)
    return float(np.sqrt(np.mean(np.sum((xy - xy.mean(0)) ** 2, axis=1))))


def test_a_chain_of_loosely_related_layers_keeps_the_first_layers_size(cloud):
    """Each layer is half the previous one plus as much fresh noise, then spun and resized:
    the least-squares scale shrinks every step by the fit's correlation (~0.45), so the chain
    collapses; keep_size holds every key frame at layer 0's size and keeps the rotation."""
    rng = np.random.default_rng(3)
    layers, prev = [cloud], cloud
    for _ in range(6):
        nxt = 0.5 * prev + 0.5 * _size(prev) * rng.standard_normal(prev.shape)
        layers.append((rng.uniform(0.2, 5) * nxt @ _rot(rng.uniform(0, 2 * np.pi)))
                      .astype(np.float32))
        prev = nxt
    kept = align_layers(layers)
    shrunk = align_layers(layers, keep_size=False)
    for k, s in zip(kept, shrunk):
        assert _size(k.aligned) == pytest.approx(_size(cloud), rel=1e-4)
        np.testing.assert_allclose(k.rotation, s.rotation, atol=1e-5)
        assert float(k.residual) == pytest.approx(float(s.residual), rel=1e-5)
    assert _size(shrunk[-1].aligned) < 0.05 * _size(cloud)
    for r, y in zip(kept, layers):  # still a similarity transform of the layer
        np.testing.assert_allclose(r.aligned, float(r.scale) * y @ np.asarray(r.rotation)
                                   + np.asarray(r.translation), atol=1e-3)


def test_interpolate_layouts_endpoints_and_midpoint(cloud):
    b = cloud[::-1].copy()
    morph = jax.jit(interpolate_layouts)
    np.testing.assert_allclose(morph(cloud, b, 0.0), cloud)
    np.testing.assert_allclose(morph(cloud, b, 1.0), b)
    np.testing.assert_allclose(morph(cloud, b, 0.25), 0.75 * cloud + 0.25 * b, atol=1e-6)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        interpolate_layouts(cloud, b, 1.5)


def test_shape_mismatches_raise(cloud):
    with pytest.raises(ValueError, match="same"):
        procrustes_align(cloud, cloud[:10])
    with pytest.raises(ValueError, match="allow_reflection"):
        procrustes_align(cloud, cloud, allow_reflection="yes")
    with pytest.raises(ValueError, match="same"):
        align_layers([cloud, cloud[:10]])


def test_procrustes_distance_is_scipy_disparity(pair):
    x, y = pair
    x2 = x[:, :2]
    assert procrustes_distance(x2, y) == pytest.approx(procrustes(x2, y)[2], rel=1e-10)


def test_procrustes_distance_pads_the_layout_with_zero_columns(pair):
    x, y = pair
    ref = procrustes(x, np.c_[y, np.zeros((len(y), 8))])[2]
    assert procrustes_distance(x, y) == pytest.approx(ref, rel=1e-10)
    # Data on a plane of 10-D space vs a similarity copy of that plane: distance 0.
    plane = np.c_[y, np.zeros((len(y), 8))]
    copy = 0.5 * y @ np.array([[0.0, 1.0], [1.0, 0.0]]) + 3.0
    assert procrustes_distance(plane, copy) == pytest.approx(0.0, abs=1e-12)


def test_alignment_residual_and_procrustes_distance_are_one_measure(cloud):
    other = np.random.default_rng(4).standard_normal((50, 2)).astype(np.float32)
    mirrored = (cloud @ MIRROR @ _rot(1.1) * 3.0 + 2.0).astype(np.float32)
    for layout in (other, mirrored):
        fit = align(layout, cloud, allow_reflection=True)
        assert float(fit.residual) == pytest.approx(procrustes_distance(cloud, layout), rel=1e-4,
                                                    abs=1e-6)
    assert procrustes_distance(cloud, other) == pytest.approx(procrustes_distance(other, cloud),
                                                              rel=1e-12)
    with pytest.raises(ValueError, match="non-zero spread"):
        procrustes_distance(cloud, np.ones_like(cloud))
