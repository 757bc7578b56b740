"""pysteps' nowcasts as baselines: they forecast moving fields better than copy-last,
keep the context's units and shape, and refuse in one line what they cannot run."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from framepred.errors import FramepredError
from tests.helpers.run_if import skip_module_unless
from tests.test_extrapolation import translated_blobs

skip_module_unless(extra="weather")

from framepred.nowcasts import (  # noqa: E402
    cascade_levels,
    check_baselines,
    pysteps_extrapolation_baseline,
    sprog_baseline,
)


def _moving(frames=7, size=32, channels=2):
    """[1, frames, size, size, channels]: blobs moving (1.5, -2) px a frame, in
    'mm/h' (x 20); the second channel is the first x 3, moved with it."""
    field = 20 * translated_blobs(frames, size=size)[None, ..., None]
    return np.concatenate([field, 3 * field], axis=-1)[..., :channels].astype(np.float32)


@pytest.mark.parametrize("baseline", [pysteps_extrapolation_baseline, sprog_baseline])
def test_forecasts_moving_blobs_better_than_copy_last(baseline):
    frames = _moving()
    context, truth = frames[:, :4], frames[:, 4:]
    forecast = baseline(context, 3)
    assert forecast.shape == truth.shape and forecast.dtype == np.float32
    assert np.isfinite(forecast).all() and forecast.min() >= -1e-3  # units kept, no NaN
    copy_last = np.repeat(context[:, -1:], 3, axis=1)
    error = np.square(forecast - truth).mean(axis=(2, 3, 4))[0]
    persistence = np.square(copy_last - truth).mean(axis=(2, 3, 4))[0]
    # Content entering across the border is no one's to forecast: a floor at every lead.
    assert (error < persistence).all() and error.sum() < 0.4 * persistence.sum(), (
        error, persistence)
    # Channel 1 is channel 0 x 3, moved by the same motion.
    if baseline is pysteps_extrapolation_baseline:
        np.testing.assert_allclose(forecast[..., 1], 3 * forecast[..., 0], rtol=1e-4, atol=1e-3)


def test_dry_context_stays_dry_and_one_frame_is_copy_last():
    dry = np.zeros((2, 3, 16, 16, 1), np.float32)
    assert not sprog_baseline(dry, 2).any()
    one = _moving(frames=1, size=16, channels=1)
    np.testing.assert_array_equal(pysteps_extrapolation_baseline(one, 2),
                                  np.repeat(one, 2, axis=1))


def test_refusals_are_one_line_before_any_work(monkeypatch):
    assert [cascade_levels(n, n) for n in (8, 16, 64, 512)] == [2, 3, 5, 6]
    check_baselines(["copy_last", "sprog"], (16, 16))  # 3 octave bands: enough
    with pytest.raises(FramepredError, match=r"sprog splits each frame into a cascade of at "
                       r"least 3 .*at least 16 pixels .*data.frame_size=\[8, 12\] is smaller"):
        check_baselines(["sprog"], (8, 12))
    check_baselines(["pysteps_extrapolation"], (8, 8))  # no cascade: any size
    monkeypatch.setitem(sys.modules, "pysteps.nowcasts", None)  # import now fails
    with pytest.raises(FramepredError, match=r'the sprog baseline .*needs pysteps and OpenCV.*'
                       r'pip install "framepred\[weather\]"') as caught:
        check_baselines(["copy_last", "sprog"], (64, 64))
    assert "\n" not in str(caught.value)
    # framepred's own extrapolation moves along pysteps' motion: refused up front too.
    with pytest.raises(FramepredError, match=r"the extrapolation baseline .*needs pysteps"):
        check_baselines(["copy_last", "extrapolation"], (64, 64))


def test_sprog_with_rain_born_inside_the_context_is_extrapolation():
    """The first context frame dry, the others not: S-PROG's cascade statistics are
    undefined (pysteps raises), and the forecast is the last frame moved."""
    frames = _moving(frames=5, size=16, channels=1)
    frames[:, 0] = 0.0
    forecast = sprog_baseline(frames[:, :3], 2)
    assert np.isfinite(forecast).all()
    np.testing.assert_allclose(forecast, pysteps_extrapolation_baseline(frames[:, :3], 2),
                               rtol=1e-5, atol=1e-4)
