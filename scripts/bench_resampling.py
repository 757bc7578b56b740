"""How much a forecast loses by moving its previous frame again at every step.

Run:

    .venv/bin/python scripts/bench_resampling.py            # 80 digits, 10 steps

An oracle that knows each digit's true velocity moves the last observed frame of a
Moving Digits glyph (one glyph, Pillow-rendered as data=moving_digits draws them, on
black, moving 2.5 to 4.5 px a frame at a random angle, its positions rounded to whole
pixels as the data set rounds them) ten steps ahead, three ways:

- `steps, bilinear`: each step moves the step before by the velocity, bilinear (the
  flow head's default, `model.head=flow`);
- `steps, cubic`: the same with Keys' cubic kernel (a = -0.5, Catmull-Rom);
- `once, bilinear`: every step moves the observed frame once, by velocity x steps.

Bilinear weights at a fractional shift are a low-pass filter, and applied step after
step the blur compounds. The table gives SSIM (Gaussian window 11, sigma 1.5, as the
loss) per step against the true frame, on a 64x64 crop around the digit, with
`copy_last` and `blank` (black) as the bars. Needs scipy and scikit-image (the `dev`
extra).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.metrics import structural_similarity

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from framepred.data.moving_digits import MovingDigits  # noqa: E402

CANVAS, CROP = 128, slice(32, 96)


def keys(distance: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' (1981) cubic convolution kernel."""
    t = np.abs(distance)
    return np.where(t <= 1, (a + 2) * t**3 - (a + 3) * t**2 + 1,
                    np.where(t < 2, a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a, 0.0))


def shift_cubic(image: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """`image` moved by `shift` (dy, dx) px with Keys' kernel, one axis after the other,
    the border repeated."""
    for axis in (0, 1):
        whole = np.floor(shift[axis])
        moved = np.zeros_like(image)
        for k in (-1, 0, 1, 2):
            offset = [whole + k if a == axis else 0 for a in (0, 1)]
            moved += keys(k - (shift[axis] - whole)) * ndimage.shift(
                image, offset, order=0, mode="nearest")
        image = moved
    return image


def ssim(forecast: np.ndarray, truth: np.ndarray) -> float:
    return structural_similarity(forecast[CROP, CROP], truth[CROP, CROP], data_range=1.0,
                                 gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False)


def frame(glyph: np.ndarray, start: np.ndarray, velocity: np.ndarray, k: int) -> np.ndarray:
    """The glyph at step k, at its position rounded to whole pixels, as the data set."""
    canvas = np.zeros((CANVAS, CANVAS), np.float32)
    y, x = np.rint(start + k * velocity).astype(int)
    canvas[y:y + glyph.shape[0], x:x + glyph.shape[1]] = glyph
    return canvas


def run(digits: int, steps: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    names = ("steps, bilinear", "steps, cubic", "once, bilinear", "copy_last", "blank")
    scores = {name: np.zeros(steps) for name in names}
    # The data set's own glyph draw and speed range (data=moving_digits' defaults).
    source = MovingDigits(num_sequences=digits, frames=steps + 1)
    for _ in range(digits):
        glyph = source.glyphs(rng)
        angle = rng.uniform(0, 2 * np.pi)
        velocity = rng.uniform(*source.speed) * np.array([np.sin(angle), np.cos(angle)])
        start = (np.array([CANVAS / 2, CANVAS / 2]) - np.array(glyph.shape) / 2
                 - steps / 2 * velocity)
        observed = frame(glyph, start, velocity, 0)
        bilinear = cubic = observed
        for k in range(1, steps + 1):
            truth = frame(glyph, start, velocity, k)
            bilinear = ndimage.shift(bilinear, velocity, order=1, mode="nearest")
            cubic = np.clip(shift_cubic(cubic, velocity), 0.0, 1.0)
            once = ndimage.shift(observed, k * velocity, order=1, mode="nearest")
            for name, forecast in zip(names, (bilinear, cubic, once, observed, 0 * truth)):
                scores[name][k - 1] += ssim(forecast, truth) / digits
    return scores


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", type=int, default=80)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    scores = run(args.digits, args.steps, args.seed)
    steps = " | ".join(f"t+{k}" for k in range(1, args.steps + 1))
    print(f"| oracle move | {steps} | mean |")
    print("|---" * (args.steps + 2) + "|")
    for name, values in scores.items():
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in values) + f" | {values.mean():.3f} |")


if __name__ == "__main__":
    main()
