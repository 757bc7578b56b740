"""The Lagrangian extrapolation baseline: the advection against pysteps' own
semi-Lagrangian scheme, and the forecast (pysteps' motion) against copy-last."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from framepred.errors import FramepredError
from framepred.extrapolation import advect, extrapolation_baseline

MOTION = (1.5, -2.0)  # (v_y, v_x), pixels per frame


def translated_blobs(frames, motion=MOTION, size=64, seed=0):
    """[frames, size, size]: a sum of Gaussian blobs moving by `motion` each frame,
    computed exactly at every frame (content enters from outside as it would)."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(0, size, (6, 2))
    widths = rng.uniform(3, 7, 6)
    heights = rng.uniform(0.5, 1.0, 6)
    rows, cols = np.mgrid[:size, :size].astype(np.float64)
    field = np.zeros((frames, size, size))
    for step in range(frames):
        for (row, col), width, height in zip(centers + step * np.asarray(motion), widths, heights):
            field[step] += height * np.exp(-((rows - row) ** 2 + (cols - col) ** 2)
                                           / (2 * width**2))
    return field


@pytest.mark.parametrize("n_iter", [0, 1, 2])
def test_advect_matches_pysteps_semilagrangian(n_iter):
    from pysteps.extrapolation.semilagrangian import extrapolate

    field = translated_blobs(1)[0]
    rows, cols = np.mgrid[:64, :64] - 31.5
    # A rotation plus a drift: the midpoint rule reads the field between pixels.
    velocity = np.stack([0.05 * cols + 1.0, -0.05 * rows - 0.5])  # (v_y, v_x)
    ours = advect(field, velocity, 3, outval=0.25, n_iter=n_iter)
    # pysteps orders the velocity (x, y).
    theirs = extrapolate(field, velocity[::-1], 3, outval=0.25, n_iter=n_iter)
    assert ours.shape == theirs.shape == (3, 64, 64)
    np.testing.assert_allclose(ours, theirs, atol=1e-10)
    # Outside the frame: the frame's minimum by default (pysteps' outval="min").
    np.testing.assert_allclose(advect(field, velocity, 2),
                               extrapolate(field, velocity[::-1], 2, outval="min"), atol=1e-10)


def test_extrapolation_baseline_beats_copy_last_on_moving_fields():
    # [B=2, T=13, H, W] -> [B, T, H, W, C=2]: the second channel in other units,
    # moving with the first.
    field = np.stack([translated_blobs(13, seed=seed) for seed in (1, 2)])
    frames = np.stack([field, 3 * field + 10], axis=-1).astype(np.float32)
    context, truth = frames[:, :10], frames[:, 10:]
    forecast = extrapolation_baseline(context, 3)
    assert forecast.shape == truth.shape and forecast.dtype == np.float32
    copy_last = np.repeat(context[:, -1:], 3, axis=1)
    for channel in range(2):
        error = np.mean((forecast[..., channel] - truth[..., channel]) ** 2)
        persistence = np.mean((copy_last[..., channel] - truth[..., channel]) ** 2)
        assert error < 0.02 * persistence, (channel, error, persistence)


def test_single_context_frame_is_copy_last():
    context = np.random.default_rng(0).random((2, 1, 16, 16, 2))
    forecast = extrapolation_baseline(context.tolist(), 3)
    assert forecast.dtype == np.float32
    np.testing.assert_array_equal(forecast, np.repeat(context.astype(np.float32), 3, axis=1))


def test_wrong_shapes_are_refused():
    with pytest.raises(ValueError, match=r"\[B, T, H, W, C\]"):
        extrapolation_baseline(np.zeros((3, 16, 16, 1)), 2)
    with pytest.raises(ValueError, match=r"velocity \[2, H, W\]"):
        advect(np.zeros((16, 16)), np.zeros((2, 8, 8)), 2)


def test_without_scipy_the_error_names_the_weather_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.ndimage", None)
    with pytest.raises(FramepredError, match=r'weather extra: pip install "framepred\[weather\]"'):
        extrapolation_baseline(np.zeros((1, 3, 16, 16, 1)), 2)
    with pytest.raises(FramepredError, match="weather extra"):
        advect(np.zeros((16, 16)), np.zeros((2, 16, 16)), 2)
