"""Rain Cells: procedural nowcasting sequences of rain rate in mm/h, no download.

A toy of what a weather radar sees, for trying data=hdf5/netcdf's pipeline (data units,
`data.normalize=log1p`, thresholds in mm/h) without a file. Sequence `i` of a split
is drawn from `numpy.random.default_rng([seed, i])`, whatever order or process asks
for it; the splits use seeds seed, seed+1, seed+2, as Moving Digits.

The model, per sequence:

- Wind: an affine flow `v(p, t) = U + A(t) (p - centre)`. `U`, the mean wind, has a
  speed drawn from `data.speed` (px per frame; data=rain_cells sets [0.5, 3]) and
  a random direction; `A(t) = omega(t) J + shear(t) S` turns (J, a rotation) and
  shears (S, x-wind growing with y) the field, each a small constant plus a slow
  sinusoid. An affine flow moves points affinely, `p(t) = M(t) p(0) + b(t)`, so every
  cell's path follows from one integration of (M, b) per sequence.
- Cells: births form a Poisson process whose rate keeps, on average, `CELLS_ALIVE`
  cells alive per 64x64 area (a per-sequence "storminess" draws the mean from that
  range, so some sequences are nearly dry and some stormy). Each lives
  `LIFETIME` frames; its intensity rises and falls as sin(pi tau)^1.5 of its
  life's phase tau in [0, 1] and its size as 0.5 + 0.5 sin(pi tau)^0.5, so cells
  appear and disappear smoothly, also inside a sequence. Each sits where a uniform
  draw over the frame puts it at the middle of its life (or the sequence's nearest
  frame), and moves with the wind before and after.
- Shape: an anisotropic Gaussian, exp(-q / 2) with q the squared Mahalanobis distance
  from the centre; the major axis `SIGMA` px at 64 px (sizes scale with the frame's
  shorter side), aspect `ASPECT`, a random orientation. Peak rates are lognormal
  (median `PEAK_MEDIAN` mm/h, log-spread `PEAK_SPREAD`, clipped to `PEAK_RANGE`): most
  cells bring light to moderate rain, a few heavy convective rain.
- Texture: `TEXTURED` of the cells carry small-scale structure: they are multiplied
  by a lognormal random field of mean 1 (a Gaussian field smoothed over
  `TEXTURE_SCALE` px, exp(kappa g - kappa^2 / 2)), periodic over the frame's size,
  that drifts with the mean wind.
- Cells add up (where they overlap, with texture, a few pixels pass 100 mm/h;
  data=rain_cells clips at 100); rates under `DRY` mm/h are set to 0, so 60-90% of
  the pixels are dry on average (tests/test_weather_sources.py measures it).

Everything is NumPy on arrays of the (frame, cell) pairs alive: a 64x64 sequence of
20 frames takes about 2.5 ms on our 2-core CPU (3.0 ms before the texture became
periodic, 2026-12-06); over 200 such sequences 79% of the pixels are dry.
"""

from __future__ import annotations

import numpy as np

from framepred.data.source import SequenceSource
from framepred.errors import FramepredError

REFERENCE = 64  # sizes below are in px of a 64-px frame; they scale with the frame
CELLS_ALIVE = (2.0, 8.0)  # mean cells alive at once per 64x64 area: a sequence's storminess
LIFETIME = (8.0, 40.0)  # frames from a cell's appearance to its disappearance
SIGMA = (3.0, 8.0)  # px: a mature cell's major axis (Gaussian sigma) at 64 px
ASPECT = (1.0, 2.5)  # major / minor axis
PEAK_MEDIAN, PEAK_SPREAD = 5.0, 0.9  # mm/h: lognormal peak rate of a mature cell
PEAK_RANGE = (1.0, 50.0)  # mm/h
TEXTURED = 0.6  # share of cells with small-scale structure
TEXTURE_SCALE = 2.0  # px at 64 px: the smoothing of the texture field
TEXTURE_KAPPA = 0.7  # log-spread of the texture field
ROTATION, SHEAR = 0.01, 0.01  # rad / frame, 1 / frame: the spread of A(t)'s parts
DRY = 0.1  # mm/h: less is no rain


def flow_map(rng: np.random.Generator, frames: int, centre: np.ndarray,
             wind: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(M [T, 2, 2], b [T, 2]): a point at p (y, x) in frame 0 is at M[t] p + b[t] in
    frame t, under the affine flow of the module docstring."""
    speed, angle = rng.uniform(*wind), rng.uniform(0.0, 2.0 * np.pi)
    mean_wind = speed * np.array([np.sin(angle), np.cos(angle)])  # (dy, dx) per frame
    base, swing = rng.normal(0.0, 1.0, 2) * (ROTATION, SHEAR), rng.normal(0.0, 1.0, 2) * (
        ROTATION, SHEAR)
    period, phase = rng.uniform(20.0, 80.0), rng.uniform(0.0, 2.0 * np.pi, 2)
    turn = np.array([[0.0, -1.0], [1.0, 0.0]])
    shear = np.array([[0.0, 0.0], [1.0, 0.0]])  # x-wind grows with y
    omega, strain = (base + swing * np.sin(
        2.0 * np.pi * np.arange(frames)[:, None] / period + phase)).T  # [T] each
    gradients = omega[:, None, None] * turn + strain[:, None, None] * shear  # A(t): [T, 2, 2]
    steps = np.eye(2) + gradients
    drive = mean_wind - gradients @ centre  # [T, 2]
    # p' = p + U + A (p - c): (M, b) -> ((I + A) M, (I + A) b + U - A c); only this
    # recurrence is a loop (the sequence's cost was a tenth in its 2x2 NumPy calls).
    matrices = np.empty((frames, 2, 2))
    offsets = np.empty((frames, 2))
    matrix, offset = np.eye(2), np.zeros(2)
    for t in range(frames):
        matrices[t], offsets[t] = matrix, offset
        matrix, offset = steps[t] @ matrix, steps[t] @ offset + drive[t]
    return matrices, offsets


def texture_field(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """A lognormal field of mean 1, smooth over `scale` px and periodic over `shape`:
    float32 [h, w]."""
    noise = np.fft.rfft2(rng.standard_normal(shape))
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    smooth = np.fft.irfft2(noise * np.exp(-2.0 * (np.pi * scale) ** 2 * (fy ** 2 + fx ** 2)),
                           s=shape)
    gauss = smooth / max(float(smooth.std()), 1e-12)
    return np.exp(TEXTURE_KAPPA * gauss - TEXTURE_KAPPA ** 2 / 2.0).astype(np.float32)


def drifted(texture: np.ndarray, corners: np.ndarray, height: int, width: int) -> np.ndarray:
    """[F, height, width] windows of the periodic `texture` whose top-left corners are
    `corners` [F, 2] (y, x; fractional: bilinear; wrapping around the texture's edges)."""
    whole = np.floor(corners).astype(np.int64)
    fy, fx = (corners - whole).astype(np.float32).T[:, :, None, None]  # [F, 1, 1] each
    tiled = np.pad(texture, ((0, height + 1), (0, width + 1)), mode="wrap")
    windows = np.lib.stride_tricks.sliding_window_view(tiled, (height + 1, width + 1))
    block = windows[whole[:, 0] % texture.shape[0], whole[:, 1] % texture.shape[1]]
    block = (1 - fy) * block[:, :-1] + fy * block[:, 1:]  # [F, height, width + 1]
    return (1 - fx) * block[:, :, :-1] + fx * block[:, :, 1:]


def gaussians(frame_of: np.ndarray, where: np.ndarray, size: np.ndarray, aspect: np.ndarray,
              angle: np.ndarray, amplitude: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """float32 [T, H, W]: the sum, per frame, of anisotropic Gaussians, one per pair
    (frame `frame_of`, centre `where` (y, x), major sigma `size`, major / minor
    `aspect`, major axis `angle` from the x axis, peak `amplitude`), sorted by frame."""
    frames, height, width = shape
    if not len(frame_of):
        return np.zeros(shape, dtype=np.float32)
    # Inverse covariance of the rotated ellipse: q = a dy^2 + 2 b dy dx + c dx^2.
    major, minor = size, size / aspect
    cos, sin = np.cos(angle), np.sin(angle)
    a = cos ** 2 / major ** 2 + sin ** 2 / minor ** 2
    c = sin ** 2 / major ** 2 + cos ** 2 / minor ** 2
    b = cos * sin * (1.0 / major ** 2 - 1.0 / minor ** 2)
    dy = (np.arange(height)[None, :] - where[:, :1]).astype(np.float32)  # [P, H]
    dx = (np.arange(width)[None, :] - where[:, 1:]).astype(np.float32)  # [P, W]
    # amplitude * exp(-q / 2) = exp(row + col + cross * dx): the peak folded into the
    # exponent, each [P, H, W] pass in place (four passes, not six: the generator's
    # cost is these passes; scripts/bench_data.py).
    row = (-0.5 * a[:, None] * dy ** 2 + np.log(amplitude)[:, None]).astype(np.float32)
    col = (-0.5 * c[:, None] * dx ** 2).astype(np.float32)  # [P, W]
    cross = (-b[:, None] * dy).astype(np.float32)  # [P, H]
    cells = np.multiply(cross[:, :, None], dx[:, None, :])  # [P, H, W]
    cells += row[:, :, None]
    cells += col[:, None, :]
    np.exp(cells, out=cells)
    # The sum per frame, over each frame's run of pairs: 0.29 ms for 100 pairs of 64x64
    # on our 2-core CPU; np.add.reduceat took 0.84 ms, a [T, P] @ [P, H*W] product 6.4 ms
    # (BLAS threads on busy cores).
    video = np.zeros(shape, dtype=np.float32)
    bounds = np.searchsorted(frame_of, np.arange(frames + 1))
    for t in np.flatnonzero(np.diff(bounds)):
        np.sum(cells[bounds[t]:bounds[t + 1]], axis=0, out=video[t])
    return video


class RainCells(SequenceSource):
    """`num_sequences` sequences of `frames` frames of rain rate, float32 [T, H, W, 1]
    in mm/h (>= 0; 0 where dry)."""

    units = "mm/h"

    def __init__(self, num_sequences: int, frames: int, frame_size: tuple[int, int] = (64, 64),
                 channels: int = 1, wind: tuple[float, float] = (0.5, 3.0), seed: int = 0):
        if int(channels) != 1:
            raise FramepredError(
                f"data=rain_cells makes one channel, rain rate in mm/h, but "
                f"data.channels={channels}; set data.channels=1")
        self.num_sequences = int(num_sequences)
        self.frames = int(frames)
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        self.wind = (float(wind[0]), float(wind[1]))
        self.seed = int(seed)

    def __len__(self) -> int:
        return self.num_sequences

    def num_frames(self, index: int) -> int:
        return self.frames

    def read(self, index: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        stop = self.frames if stop is None else stop
        rng = np.random.default_rng([self.seed, int(index)])
        height, width = self.frame_size
        frames = self.frames
        scale = min(height, width) / REFERENCE
        centre = np.array([height, width], dtype=np.float64) / 2.0
        matrices, offsets = flow_map(rng, frames, centre, self.wind)

        # Cells: a Poisson process of births over [-longest life, frames).
        alive = rng.uniform(*CELLS_ALIVE) * height * width / REFERENCE ** 2 / scale ** 2
        count = rng.poisson(alive * (frames + LIFETIME[1]) / np.mean(LIFETIME))
        life = rng.uniform(*LIFETIME, count)
        birth = rng.uniform(-LIFETIME[1], frames, count)
        sigma = rng.uniform(*SIGMA, count) * scale
        aspect = rng.uniform(*ASPECT, count)
        angle = rng.uniform(0.0, np.pi, count)
        peak = np.clip(rng.lognormal(np.log(PEAK_MEDIAN), PEAK_SPREAD, count), *PEAK_RANGE)
        textured = rng.uniform(size=count) < TEXTURED
        margin = 0.1 * np.array([height, width])
        placed = rng.uniform(-margin, np.array([height, width]) + margin, (count, 2))
        # The texture drifts with the wind at the frame's centre: [T, 2] (y, x).
        # The texture is periodic over the frame's size, so the windows wrap instead of
        # reading a field padded by the whole drift (an FFT up to 9x the frame's area:
        # a fifth of a sequence's cost; scripts/bench_data.py).
        drift = matrices @ centre + offsets - centre
        texture = texture_field(rng, (height, width), TEXTURE_SCALE * scale)
        # Where each cell sits in frame 0, from where it sits mid-life.
        middle = np.clip(np.rint(birth + life / 2.0), 0, frames - 1).astype(np.int64)
        origin = np.linalg.solve(matrices[middle], (placed - offsets[middle])[..., None])[..., 0]

        t = np.arange(frames, dtype=np.float64)
        phase = (t[:, None] - birth[None, :]) / life[None, :]  # [T, N]
        frame_of, cell = np.nonzero((phase > 0.0) & (phase < 1.0))  # the (frame, cell) alive
        bloom = np.sin(np.pi * phase[frame_of, cell])
        amplitude = peak[cell] * bloom ** 1.5
        size = sigma[cell] * (0.5 + 0.5 * np.sqrt(bloom))
        # [P, 2]: each pair's cell centre in its frame (y, x)
        where = np.einsum("pij,pj->pi", matrices[frame_of], origin[cell]) + offsets[frame_of]
        # Leave out pairs that wet no pixel: too weak, or too far outside the frame.
        reach = 4.0 * size[:, None]
        seen = ((amplitude >= DRY / 10) & (where > -reach).all(axis=1)
                & (where < np.array([height, width]) + reach).all(axis=1))
        shapes = (size, aspect[cell], angle[cell], amplitude)
        plain, marked = (seen & ~textured[cell]), (seen & textured[cell])
        video = gaussians(frame_of[plain], where[plain], *(v[plain] for v in shapes),
                          (frames, height, width))
        video += gaussians(frame_of[marked], where[marked], *(v[marked] for v in shapes),
                           (frames, height, width)) * drifted(texture, -drift, height, width)
        video[video < DRY] = 0.0
        return video[start:stop, :, :, None]  # [T, H, W] -> [T, H, W, 1]
