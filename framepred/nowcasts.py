"""pysteps' own nowcasts as baselines: the forecasts radar papers report theirs against.

- `pysteps_extrapolation_baseline`: Lagrangian persistence as pysteps computes it,
  its default motion (`pysteps.motion.lucaskanade.dense_lucaskanade`: OpenCV's
  Shi-Tomasi corners tracked by pyramidal Lucas-Kanade, the vectors interpolated
  to the grid) and its semi-Lagrangian advection
  (`pysteps.extrapolation.semilagrangian.extrapolate`, Germann & Zawadzki 2002);
- `sprog_baseline`: S-PROG (Seed 2003, "A dynamic and spatial scaling approach to
  advection forecasting"), `pysteps.nowcasts.sprog.forecast`: the field split into
  a cascade of spatial scales, each advected and made to decay by its own AR(2)
  process, so small scales fade sooner than large ones; pysteps' strongest
  deterministic nowcast.

Both take the baselines' signature (`scoreboard.BASELINES`): context `[B, Tc, H, W,
C]`, in any units, -> `[B, future, H, W, C]`. Motion comes from channel 0, and every
channel is moved with it. Pixels traced from outside the frame take the sample's
minimum (0 for rain), as `framepred.extrapolation` does; pysteps leaves them NaN.

They need pysteps and OpenCV, from the weather extra; `check_baselines` refuses,
before any work, a baseline whose package is missing or a frame too small for
S-PROG's cascade, each in one line.
"""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np

from framepred.errors import FramepredError

PYSTEPS_BASELINES = ("pysteps_extrapolation", "sprog")
# framepred's own extrapolation advects along pysteps' Lucas-Kanade motion too.
NEEDS_PYSTEPS = (*PYSTEPS_BASELINES, "extrapolation")
# S-PROG's cascade: octave-wide bands (each level's scale twice the next), as many as
# the frame holds, at most pysteps' default 6; pysteps' Gaussian bandpass filter
# needs at least 3 (`pysteps.cascade.bandpass_filters.filter_gaussian`).
MAX_CASCADE_LEVELS = 6
MIN_CASCADE_LEVELS = 3
AR_ORDER = 2  # S-PROG's default: each level an AR(2) process, from 3 context frames


def cascade_levels(height: int, width: int) -> int:
    """Octave bands between the frame's largest wavelength and 2 pixels: log2(L / 2),
    L the longer side (pysteps' filter spans wavenumbers 1 ... L/2), at most 6."""
    return min(MAX_CASCADE_LEVELS, int(math.log2(max(height, width) / 2)))


def check_baselines(names, frame_size) -> None:
    """FramepredError, in one line, for a pysteps baseline that cannot run: its package
    missing, or frames too small for S-PROG's cascade. Call it before any work."""
    wanted = [name for name in names if str(name) in NEEDS_PYSTEPS]
    if not wanted:
        return
    _pysteps(wanted[0])
    height, width = (int(n) for n in frame_size)
    if "sprog" in wanted and cascade_levels(height, width) < MIN_CASCADE_LEVELS:
        smallest = 2 ** (MIN_CASCADE_LEVELS + 1)
        raise FramepredError(
            f"evaluate.baselines: sprog splits each frame into a cascade of at least "
            f"{MIN_CASCADE_LEVELS} octave-wide spatial scales, which needs frames of at "
            f"least {smallest} pixels on their longer side; data.frame_size={[height, width]} "
            "is smaller: leave sprog out of evaluate.baselines or use larger frames")


def _pysteps(baseline: str):
    """The pysteps modules the baselines use; a FramepredError naming the extra."""
    try:
        # pysteps prints where it found its configuration file on import: not ours to
        # show on evaluate's stdout.
        with contextlib.redirect_stdout(io.StringIO()):
            import cv2  # noqa: F401  (dense_lucaskanade needs it; fails late without)
            from pysteps.extrapolation import semilagrangian
            from pysteps.motion import lucaskanade
            from pysteps.nowcasts import sprog
    except ImportError as error:
        raise FramepredError(
            f"the {baseline} baseline (evaluate.baselines) needs pysteps and OpenCV "
            f"({error.name} is not installed); install the weather extra: pip install "
            '"framepred[weather]"') from None
    return lucaskanade, semilagrangian, sprog


def motion(context, baseline: str = "pysteps_extrapolation"):
    """pysteps' dense Lucas-Kanade of one sample's context [T, H, W] -> [2, H, W], (x, y)
    components in pixels per frame (pysteps' order); `baseline` names the caller in
    the error when pysteps is missing."""
    lucaskanade = _pysteps(baseline)[0]
    with contextlib.redirect_stdout(io.StringIO()):
        return lucaskanade.dense_lucaskanade(np.asarray(context, np.float64))


def _per_sample(context, future_frames, forecast_one):
    context = np.asarray(context, dtype=np.float32)
    if context.ndim != 5:
        raise ValueError(f"a baseline needs context [B, T, H, W, C]; got shape {context.shape}.")
    batch, times, height, width, channels = context.shape
    if times < 2:  # no motion to see: copy-last, [B, 1, H, W, C] -> [B, future, H, W, C]
        return np.repeat(context[:, -1:], future_frames, axis=1)
    forecast = np.empty((batch, future_frames, height, width, channels), np.float32)
    for sample in range(batch):
        # [Tc, H, W, C] -> [future, H, W, C]
        forecast[sample] = forecast_one(context[sample], future_frames)
    return forecast


def pysteps_extrapolation_baseline(context, future_frames):
    """Lagrangian persistence by pysteps: its dense Lucas-Kanade motion of the context,
    then its semi-Lagrangian advection of the last frame.

    Formula:

    ```python
    velocity = pysteps.motion.lucaskanade.dense_lucaskanade(context[b, :, :, :, 0])
    forecast[b, ..., c] = pysteps.extrapolation.semilagrangian.extrapolate(
        context[b, -1, :, :, c], velocity, future_frames, outval=min(context[b, -1, ..., c]))
    ```

    Args:
        context: Context frames `[B, Tc, H, W, C]`, in any units: the forecast keeps them.
        future_frames: Number of frames to forecast.

    Returns:
        float32 numpy `[B, future_frames, H, W, C]`.
    """
    _, semilagrangian, _ = _pysteps("pysteps_extrapolation")

    def one(frames, steps):
        velocity = motion(frames[..., 0])
        return np.stack([
            semilagrangian.extrapolate(frames[-1, :, :, c].astype(np.float64), velocity, steps,
                                       outval=float(frames[-1, :, :, c].min()))
            for c in range(frames.shape[-1])], axis=-1)

    return _per_sample(context, future_frames, one)


def sprog_baseline(context, future_frames):
    """S-PROG (Seed 2003) by pysteps: the last frames split into a cascade of spatial
    scales, each advected along pysteps' Lucas-Kanade motion and decaying by its own
    AR(2) process, the sum matched to the last frame's distribution.

    Formula:

    ```python
    velocity = pysteps.motion.lucaskanade.dense_lucaskanade(context[b, :, :, :, 0])
    forecast[b, ..., c] = pysteps.nowcasts.sprog.forecast(
        context[b, -3:, :, :, c], velocity, future_frames,
        n_cascade_levels=cascade_levels(H, W), precip_thr=min(context) + eps)
    ```

    The "precipitation" S-PROG's mask and its probability matching keep is every value
    above the context's minimum (rain above 0 mm/h, in any units or normalization).
    pysteps runs S-PROG on rain in dB; `data.normalize=log1p` gives a log field alike.
    A channel without any value above its minimum is forecast as it is (dry stays dry);
    where a context frame has none once moved to the last frame's time, S-PROG's
    autoregression is undefined and the forecast is the semi-Lagrangian extrapolation
    it would decay from.

    Args:
        context: Context frames `[B, Tc, H, W, C]`, Tc >= 2 (AR(1) with 2 frames,
            AR(2) from 3), in any units: the forecast keeps them.
        future_frames: Number of frames to forecast.

    Returns:
        float32 numpy `[B, future_frames, H, W, C]`.
    """
    _, semilagrangian, sprog = _pysteps("sprog")

    def one(frames, steps):
        height, width = frames.shape[1:3]
        levels = cascade_levels(height, width)
        if levels < MIN_CASCADE_LEVELS:
            check_baselines(["sprog"], (height, width))  # raises, naming the size
        velocity = motion(frames[..., 0], "sprog")
        order = min(AR_ORDER, frames.shape[0] - 1)
        channels = []
        for c in range(frames.shape[-1]):
            field = frames[-(order + 1):, :, :, c].astype(np.float64)
            low = float(field.min())
            if not (field[-1] > low).any():
                channels.append(np.repeat(field[-1:], steps, axis=0))
                continue
            threshold = low + 1e-6 * max(float(field.max()) - low, 1e-12)
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    forecast = sprog.forecast(field, velocity, steps, precip_thr=threshold,
                                              n_cascade_levels=levels, ar_order=order)
            except ValueError:
                # A context frame without any value above the minimum once moved to the
                # last frame's time (rain born or gone inside the context) leaves a
                # cascade level without variance, so its AR coefficients are undefined
                # (pysteps raises on the NaN): S-PROG has no decay to apply, and its
                # forecast is the Lagrangian persistence it decays from.
                forecast = semilagrangian.extrapolate(field[-1], velocity, steps,
                                                      outval=float(field[-1].min()))
            # Traced from outside the frame: the last frame's minimum, as extrapolation.
            channels.append(np.where(np.isfinite(forecast), forecast, float(field[-1].min())))
        return np.stack(channels, axis=-1)

    return _per_sample(context, future_frames, one)


BASELINES = {
    "pysteps_extrapolation": pysteps_extrapolation_baseline,
    "sprog": sprog_baseline,
}

__all__ = ["BASELINES", "cascade_levels", "check_baselines", "motion",
           "pysteps_extrapolation_baseline", "sprog_baseline"]
