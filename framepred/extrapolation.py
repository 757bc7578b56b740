"""The Lagrangian extrapolation baseline of nowcasting: the last frame moved along its motion.

Persistence (`scoreboard.copy_last_baseline`) is too easy to beat on fields that
move (pysteps/pysteps#160); the reference forecast of radar nowcasting instead
estimates a motion field from the context and advects the last observed frame
along it:

- the motion is pysteps' default, `pysteps.motion.lucaskanade.dense_lucaskanade`
  (OpenCV's corners tracked by pyramidal Lucas-Kanade, interpolated to the grid;
  `framepred.nowcasts`). It replaced a hand-written dense Lucas-Kanade that scored
  lower on `experiment=rain_cells` at every threshold (docs/weather.md);
- `advect`: pysteps' semi-Lagrangian backward scheme,
  `pysteps.extrapolation.semilagrangian.extrapolate` (Germann & Zawadzki 2002),
  on a constant motion field, in NumPy and SciPy (equal to pysteps' in the tests);
- `extrapolation_baseline`: both, per sample, with the signature of the
  baselines in `scoreboard.BASELINES`.

Velocities are `[2, H, W]` in pixels per frame, row (y) component first:
content at `(y, x)` in one frame is at `(y + v_y, x + v_x)` in the next.
pysteps orders its velocity `(u=x, v=y)`; `advect` takes ours.

SciPy and pysteps come with the weather extra; they are imported inside the
functions, so the module imports without them and a call says what to install.
"""

from __future__ import annotations

import numpy as np

from framepred.errors import FramepredError


def _ndimage():
    """scipy.ndimage, or the FramepredError that names the extra to install."""
    try:
        from scipy import ndimage
    except ImportError as error:
        raise FramepredError(
            "the extrapolation baseline (evaluate.baselines: extrapolation) needs SciPy, "
            "pysteps and OpenCV, which come with the weather extra: "
            'pip install "framepred[weather]"'
        ) from error
    return ndimage


def advect(frame, velocity, steps, outval=None, n_iter=1):
    """Semi-Lagrangian backward extrapolation of a frame along a constant motion field.

    The scheme of `pysteps.extrapolation.semilagrangian.extrapolate` (Germann &
    Zawadzki 2002) for integer time steps, with its defaults: each step traces
    every pixel back along the field, by the velocity interpolated at the
    midpoint of the step (`n_iter` = 1; 0 uses the velocity at the start of the
    step), and reads the frame there by bilinear interpolation
    (`scipy.ndimage.map_coordinates`, order 1):

    ```python
    displacement = 0
    for k in 1 ... steps:
        for _ in range(n_iter):
            increment = velocity_at(position + displacement - increment / 2) / n_iter
            displacement -= increment
            increment = velocity_at(position + displacement) / n_iter
        forecast[k] = frame_at(position + displacement)
    ```

    The velocity is read with the border repeated; the frame reads `outval`
    outside.

    Args:
        frame: `[H, W]`, the field to move.
        velocity: `[2, H, W]`, `(v_y, v_x)` in pixels per step (pysteps'
            `velocity[::-1]`).
        steps: Number of steps to forecast.
        outval: The value read from outside the frame; None: the frame's
            minimum (0 for rain). pysteps' default is NaN.
        n_iter: pysteps' inner iterations of the midpoint rule.

    Returns:
        `[steps, H, W]`, float, the frame's dtype if it is a float.
    """
    frame = np.asarray(frame)
    if not np.issubdtype(frame.dtype, np.floating):
        frame = frame.astype(np.float64)
    velocity = np.asarray(velocity, dtype=np.float64)
    if frame.ndim != 2 or velocity.shape != (2, *frame.shape):
        raise ValueError(f"advect needs a frame [H, W] and a velocity [2, H, W]; got shapes "
                         f"{frame.shape} and {velocity.shape}.")
    if int(steps) != steps or steps < 0:
        raise ValueError(f"advect needs a whole number of steps >= 0; got {steps!r}.")
    positions = _trajectory(velocity, int(steps), n_iter)
    if outval is None:
        outval = np.nanmin(frame)
    return _read_along(frame, positions, outval)


def _trajectory(velocity, steps, n_iter):
    """Where each pixel's value comes from after 1 ... steps steps: [steps, 2, H, W],
    rows first (`advect`'s scheme)."""
    ndimage = _ndimage()
    grid = np.indices(velocity.shape[1:], dtype=np.float64)

    def velocity_at(displacement):
        position = grid + displacement
        speed = np.stack([ndimage.map_coordinates(component, position, mode="nearest",
                                                  order=1, prefilter=False)
                          for component in velocity])
        return speed / n_iter if n_iter > 1 else speed

    displacement = np.zeros_like(velocity)
    increment = velocity.copy()
    positions = []
    for step in range(steps):
        if n_iter > 0:
            for _ in range(n_iter):
                increment = velocity_at(displacement - increment / 2)
                displacement = displacement - increment
                increment = velocity_at(displacement)
        else:
            if step > 0:
                increment = velocity_at(displacement)
            displacement = displacement - increment
        positions.append(grid + displacement)
    # steps x [2, H, W] -> [steps, 2, H, W]
    return np.stack(positions) if positions else np.empty((0, *velocity.shape))


def _read_along(frame, positions, outval):
    """`frame` [H, W] read at each step's positions [steps, 2, H, W] -> [steps, H, W]."""
    ndimage = _ndimage()
    reads = [ndimage.map_coordinates(frame, position, mode="constant", cval=outval, order=1,
                                     prefilter=False) for position in positions]
    # steps x [H, W] -> [steps, H, W]
    return np.stack(reads) if reads else np.empty((0, *frame.shape), frame.dtype)


def extrapolation_baseline(context, future_frames):
    """The Lagrangian extrapolation forecast: the last context frame moved along the
    context's motion.

    Formula:

    ```python
    velocity[b] = pysteps.motion.lucaskanade.dense_lucaskanade(context[b, :, :, :, 0])
    forecast[b, :, :, :, c] = advect(context[b, -1, :, :, c], velocity[b][::-1], future_frames)
    ```

    The nowcasting reference that persistence is too easy a bar beside
    (pysteps/pysteps#160). The motion of each sample is estimated from channel 0
    (the field itself, where further channels are auxiliary) and every channel is
    moved with it; pixels traced from outside the frame take that channel's
    minimum in the last context frame (0 for rain). With a single context frame
    there is no motion to see, and the forecast is copy-last.

    Args:
        context: Context frames `[B, Tc, H, W, C]` (numpy, or anything
            `np.asarray` takes), in any units: the forecast keeps them.
        future_frames: Number of frames to forecast.

    Returns:
        float32 numpy `[B, future_frames, H, W, C]`.
    """
    from framepred.nowcasts import motion

    context = np.asarray(context, dtype=np.float32)
    if context.ndim != 5:
        raise ValueError(
            f"extrapolation_baseline needs context [B, T, H, W, C]; got shape {context.shape}."
        )
    batch, times, height, width, channels = context.shape
    if times < 2:  # [B, 1, H, W, C] -> [B, future, H, W, C]
        return np.repeat(context[:, -1:], future_frames, axis=1)
    _ndimage()  # the extra's error before any work
    forecast = np.empty((batch, future_frames, height, width, channels), np.float32)
    for sample in range(batch):
        # pysteps' (x, y) -> ours (y, x)
        velocity = motion(context[sample, :, :, :, 0], "extrapolation")[::-1]
        positions = _trajectory(np.ascontiguousarray(velocity, np.float64), future_frames,
                                n_iter=1)
        for channel in range(channels):
            last = context[sample, -1, :, :, channel]
            forecast[sample, :, :, :, channel] = _read_along(last, positions, np.nanmin(last))
    return forecast


# The baseline this module gives evaluate.baselines (framepred.verification).
BASELINES = {"extrapolation": extrapolation_baseline}

__all__ = ["BASELINES", "advect", "extrapolation_baseline"]
