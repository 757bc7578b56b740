"""The Lagrangian extrapolation baseline of nowcasting: the last frame moved along its motion.

Persistence (`scoreboard.copy_last_baseline`) is too easy to beat on fields that
move (pysteps/pysteps#160); the reference forecast of radar nowcasting instead
estimates a motion field from the context and advects the last observed frame
along it. Three plain functions, NumPy and SciPy only:

- `motion_field`: a dense motion field from context frames, by dense
  Lucas-Kanade (Lucas & Kanade 1981) on a coarse-to-fine pyramid. It stands in
  for pysteps' default, `pysteps.motion.lucaskanade.dense_lucaskanade`, which
  tracks OpenCV's sparse corners and interpolates the vectors to a grid;
- `advect`: pysteps' semi-Lagrangian backward scheme,
  `pysteps.extrapolation.semilagrangian.extrapolate` (Germann & Zawadzki 2002),
  on a constant motion field;
- `extrapolation_baseline`: both, per sample, with the signature of the
  baselines in `scoreboard.BASELINES`.

Velocities are `[2, H, W]` in pixels per frame, row (y) component first:
content at `(y, x)` in one frame is at `(y + v_y, x + v_x)` in the next.
pysteps orders its velocity `(u=x, v=y)`; `advect` takes ours.

SciPy comes with the weather extra; it is imported inside the functions, so the
module imports without it and a call says what to install.
"""

from __future__ import annotations

import math

import numpy as np

from framepred.errors import FramepredError

# Dense Lucas-Kanade (see `motion_field`).
PYRAMID_LEVELS = 3  # factor 2 each: motions of about 2**(levels-1) * 1.5 px per frame
COARSEST_SIZE = 8  # no pyramid level smaller than this many pixels on a side
PRESMOOTH_SIGMA = 1.0  # px; the brightness-constancy linearization wants smooth frames
WINDOW_SIGMA = 3.0  # px at each level; the Gaussian window of the least squares
ITERATIONS = 3  # Lucas-Kanade refinements per level (warp, solve, update)
SMOOTH_SIGMA = 4.0  # px; the final normalized convolution of the field
# A pixel's 2x2 system is used only where its smaller eigenvalue is above
# MIN_EIGEN_RATIO times the largest of its frame pair (and above MIN_EIGEN, for
# frames scaled to [0, 1]): flat areas and straight edges (the aperture problem)
# are left to the interpolation, as OpenCV's `minEigThreshold` leaves them out.
MIN_EIGEN_RATIO = 1e-2
MIN_EIGEN = 1e-6
# Weight of the mean motion in the normalized convolution: far from any defined
# vector (where the Gaussian density of defined pixels falls below this) the
# field tends to the mean motion, or to zero where nothing was defined.
MEAN_MOTION_WEIGHT = 1e-2
# Pixels per chunk of frame pairs solved at once (float32 arrays of ~16 MB).
CHUNK_PIXELS = 2**22


def _ndimage():
    """scipy.ndimage, or the FramepredError that names the extra to install."""
    try:
        from scipy import ndimage
    except ImportError as error:
        raise FramepredError(
            "the extrapolation baseline (evaluate.baselines: extrapolation) needs SciPy, "
            'which comes with the weather extra: pip install "framepred[weather]"'
        ) from error
    return ndimage


def motion_field(context, smooth_sigma=SMOOTH_SIGMA):
    """The motion of a field over its context frames, by dense Lucas-Kanade.

    At every pixel, the displacement `(dy, dx)` between consecutive frames is the
    least-squares solution of the optical-flow constraint over a Gaussian window
    (Lucas & Kanade 1981, "An iterative image registration technique with an
    application to stereo vision"):

    ```python
    [[Sxx, Sxy], [Sxy, Syy]] @ [dx, dy] = -[Sxt, Syt]
    Sab = gaussian_window(Ia * Ib)       # Ix, Iy: gradients; It: frame difference
    ```

    This is a documented equivalent of pysteps' default motion method,
    `pysteps.motion.lucaskanade.dense_lucaskanade`, without OpenCV: pysteps
    solves the same system only at Shi-Tomasi corners (OpenCV's pyramidal
    `calcOpticalFlowPyrLK`) and interpolates the sparse vectors to the grid
    (inverse distance). Here it is solved at every pixel at once, and:

    - the frames are scaled to `[0, 1]` by the context's minimum and maximum (a
      linear map, so brightness constancy still holds and the thresholds below
      do not depend on the data's units; a heavy-tailed field is best given in
      log units, as `data.normalize=log1p` gives it), then smoothed (sigma 1 px);
    - a Gaussian pyramid (`PYRAMID_LEVELS`, factor 2) finds motions of several
      pixels per frame: each level starts from the coarser level's field,
      warps the second frame by it (bilinear) and refines it `ITERATIONS`
      times, with the gradients of both frames averaged;
    - a pixel's system counts only where its smaller eigenvalue (structure
      tensor) is large enough (`MIN_EIGEN_RATIO`, `MIN_EIGEN`) and its warped
      position lies inside the frame; elsewhere (flat, dry areas, straight
      edges) the field comes from the defined pixels around it;
    - each consecutive pair of context frames gives a field (pysteps pools the
      vectors of every pair too); they are averaged where defined;
    - the average is smoothed by normalized Gaussian convolution (Knutsson &
      Westin 1993) with sigma `smooth_sigma`, which also fills the undefined
      pixels, tending to the mean motion of the defined ones far from any of
      them, and to zero where none is defined.

    Args:
        context: Frames `[T, H, W]` of one field, T >= 2 (numpy or array-like).
        smooth_sigma: Width of the final smoothing, in pixels.

    Returns:
        float32 `[2, H, W]`: `(v_y, v_x)` in pixels per frame.
    """
    context = np.asarray(context, dtype=np.float32)
    if context.ndim != 3 or context.shape[0] < 2:
        raise ValueError(
            f"motion_field needs context frames [T, H, W] with T >= 2; got shape {context.shape}."
        )
    # [T, H, W] -> [1, T, H, W] -> [1, 2, H, W] -> [2, H, W]
    return _motion_fields(context[None], smooth_sigma)[0]


def _motion_fields(contexts, smooth_sigma=SMOOTH_SIGMA):
    """`motion_field` of many samples: [N, T, H, W] -> float32 [N, 2, H, W]."""
    samples, times, height, width = contexts.shape
    per_chunk = max(1, CHUNK_PIXELS // ((times - 1) * height * width))
    return np.concatenate([
        _motion_chunk(contexts[start : start + per_chunk], smooth_sigma)
        for start in range(0, samples, per_chunk)
    ])


def _motion_chunk(contexts, smooth_sigma):
    ndimage = _ndimage()
    samples, times, height, width = contexts.shape
    frames = contexts.astype(np.float32)
    low = frames.min(axis=(1, 2, 3), keepdims=True)
    span = frames.max(axis=(1, 2, 3), keepdims=True) - low
    frames = (frames - low) / np.where(span > 0, span, 1)
    frames = ndimage.gaussian_filter(frames, (0, 0, PRESMOOTH_SIGMA, PRESMOOTH_SIGMA),
                                     mode="nearest")
    # [N, T, H, W] -> [P, H, W]: P = N * (T - 1) consecutive pairs.
    pyramid = [(frames[:, :-1].reshape(-1, height, width),
                frames[:, 1:].reshape(-1, height, width))]
    levels = min(PYRAMID_LEVELS,
                 1 + max(0, int(math.log2(max(min(height, width), 1) / COARSEST_SIZE))))
    for _ in range(levels - 1):
        pyramid.append(tuple(
            ndimage.gaussian_filter(level, (0, 1.0, 1.0), mode="nearest")[:, ::2, ::2]
            for level in pyramid[-1]))

    flow = None
    for level in reversed(range(levels)):
        first, second = pyramid[level]
        if flow is None:
            flow = np.zeros((first.shape[0], 2, *first.shape[1:]), np.float32)
        else:  # the coarser field, at this level's pixels and in its units
            flow = 2 * _upsample(flow, first.shape[1:])
        for iteration in range(ITERATIONS):
            increment, defined = _lucas_kanade_step(first, second, flow, ndimage)
            flow += increment
            if level > 0 or iteration < ITERATIONS - 1:
                # A field that jumps where the system is undefined would tear the warped
                # frame (and its gradients) at the next step: fill it from around.
                flow = np.where(defined[:, None], flow,
                                _normalized_convolution(flow, defined, WINDOW_SIGMA, ndimage))

    # [P, 2, H, W] -> [N, T-1, 2, H, W]; mean over the pairs where defined.
    flow = flow.reshape(samples, times - 1, 2, height, width)
    defined = defined.reshape(samples, times - 1, height, width).astype(np.float32)
    count = defined.sum(axis=1)
    # [N, T-1, 2, H, W] -> [N, 2, H, W]
    mean_flow = (flow * defined[:, :, None]).sum(axis=1) / np.maximum(count, 1)[:, None]
    return _normalized_convolution(mean_flow, count / (times - 1), smooth_sigma, ndimage)


def _lucas_kanade_step(first, second, flow, ndimage):
    """One Lucas-Kanade refinement of `flow` [P, 2, h, w]: the increment and where
    the system was well conditioned [P, h, w]."""
    rows, cols = np.indices(first.shape[1:], dtype=np.float32)
    target_rows, target_cols = rows + flow[:, 0], cols + flow[:, 1]
    inside = ((target_rows >= 0) & (target_rows <= first.shape[1] - 1)
              & (target_cols >= 0) & (target_cols <= first.shape[2] - 1))
    warped = _bilinear(second, target_rows, target_cols)
    grad_y, grad_x = (0.5 * (a + b) for a, b in
                      zip(np.gradient(first, axis=(1, 2)), np.gradient(warped, axis=(1, 2))))
    grad_t = warped - first
    # Where the warp reads outside the frame the clamped border is no observation:
    # such pixels stay out of every window's sums.
    grad_x, grad_y, grad_t = (np.where(inside, grad, 0) for grad in (grad_x, grad_y, grad_t))
    # [5, P, h, w]: the window sums of the structure tensor and the right-hand side.
    products = np.stack([grad_x * grad_x, grad_x * grad_y, grad_y * grad_y,
                         grad_x * grad_t, grad_y * grad_t])
    sxx, sxy, syy, sxt, syt = ndimage.gaussian_filter(
        products, (0, 0, WINDOW_SIGMA, WINDOW_SIGMA), mode="nearest")
    min_eigen = 0.5 * (sxx + syy) - np.sqrt(0.25 * (sxx - syy) ** 2 + sxy**2)
    floor = np.maximum(MIN_EIGEN_RATIO * min_eigen.max(axis=(1, 2), keepdims=True), MIN_EIGEN)
    defined = (min_eigen > floor) & inside
    determinant = np.where(defined, sxx * syy - sxy**2, 1)
    increment_x = np.where(defined, (sxy * syt - syy * sxt) / determinant, 0)
    increment_y = np.where(defined, (sxy * sxt - sxx * syt) / determinant, 0)
    # [P, h, w] x 2 -> [P, 2, h, w], rows first
    return np.stack([increment_y, increment_x], axis=1).astype(np.float32), defined


def _bilinear(images, rows, cols):
    """`images` [P, h, w] sampled at (rows, cols) (broadcast to [P, h', w']), the
    border repeated outside."""
    _, height, width = images.shape
    rows = np.clip(rows, 0, height - 1)
    cols = np.clip(cols, 0, width - 1)
    row0 = np.clip(np.floor(rows).astype(np.intp), 0, max(height - 2, 0))
    col0 = np.clip(np.floor(cols).astype(np.intp), 0, max(width - 2, 0))
    row1, col1 = np.minimum(row0 + 1, height - 1), np.minimum(col0 + 1, width - 1)
    # float32 weights: an intp operand would promote every product to float64
    row_weight = (rows - row0).astype(images.dtype)
    col_weight = (cols - col0).astype(images.dtype)
    flat = images.reshape(-1)
    start = (np.arange(images.shape[0]) * height * width)[:, None, None]

    def at(row, col):
        return flat[start + row * width + col]

    top = at(row0, col0) * (1 - col_weight) + at(row0, col1) * col_weight
    bottom = at(row1, col0) * (1 - col_weight) + at(row1, col1) * col_weight
    return top * (1 - row_weight) + bottom * row_weight


def _upsample(flow, shape):
    """[P, 2, h, w] -> [P, 2, H, W]: coarse pixel i is fine pixel 2i (decimation by 2)."""
    pairs = flow.shape[0]
    # [P, 2, h, w] -> [2P, h, w]
    stacked = flow.reshape(-1, *flow.shape[2:])
    rows = (np.arange(shape[0], dtype=np.float32) / 2)[None, :, None]
    cols = (np.arange(shape[1], dtype=np.float32) / 2)[None, None, :]
    return _bilinear(stacked, rows, cols).reshape(pairs, 2, *shape).astype(np.float32)


def _normalized_convolution(flow, weight, sigma, ndimage):
    """Gaussian smoothing of `flow` [P, 2, h, w] counting each pixel by `weight`
    [P, h, w] in [0, 1], blended toward the weighted mean motion where the weight
    around a pixel is small (zero where the weight is zero everywhere)."""
    weight = weight.astype(np.float32)  # a boolean mask would filter to booleans
    total = weight.sum(axis=(1, 2))
    # [P, 2, h, w] -> [P, 2, 1, 1]
    mean = ((flow * weight[:, None]).sum(axis=(2, 3)) / np.maximum(total, 1e-12)[:, None])
    mean = np.where(total[:, None] > 0, mean, 0)[:, :, None, None]
    weighted = ndimage.gaussian_filter(flow * weight[:, None], (0, 0, sigma, sigma),
                                       mode="nearest")
    density = ndimage.gaussian_filter(weight, (0, sigma, sigma), mode="nearest")[:, None]
    return ((weighted + MEAN_MOTION_WEIGHT * mean)
            / (density + MEAN_MOTION_WEIGHT)).astype(np.float32)


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
    velocity[b] = motion_field(context[b, :, :, :, 0])
    forecast[b, :, :, :, c] = advect(context[b, -1, :, :, c], velocity[b], future_frames)
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
    context = np.asarray(context, dtype=np.float32)
    if context.ndim != 5:
        raise ValueError(
            f"extrapolation_baseline needs context [B, T, H, W, C]; got shape {context.shape}."
        )
    batch, times, height, width, channels = context.shape
    if times < 2:  # [B, 1, H, W, C] -> [B, future, H, W, C]
        return np.repeat(context[:, -1:], future_frames, axis=1)
    # [B, Tc, H, W, 0] -> [B, 2, H, W]
    velocities = _motion_fields(context[..., 0])
    forecast = np.empty((batch, future_frames, height, width, channels), np.float32)
    for sample in range(batch):
        positions = _trajectory(velocities[sample].astype(np.float64), future_frames, n_iter=1)
        for channel in range(channels):
            last = context[sample, -1, :, :, channel]
            forecast[sample, :, :, :, channel] = _read_along(last, positions, np.nanmin(last))
    return forecast


__all__ = ["advect", "extrapolation_baseline", "motion_field"]
