"""The metrics every table uses: SSIM, PSNR, MSE, MAE per frame and per forecast step.

One file defines them (as OpenSTL's `openstl/core/metrics.py` does), so
training, evaluation and the README report the same numbers:

- `psnr` and the streaming `SSIM` / `PSNR` Keras metrics, built on the same
  per-frame functions as the losses (`framepred.losses.ssim`);
- `per_frame_metrics`, `PerStepMeans` and `format_table` for the per-step
  evaluation written to `metrics.json`, with the copy-last-frame baseline.

Conventions, stated wherever a number is shown:

- `mse`, `mae`: mean over the pixels of a frame (H*W*C values), "per pixel".
- `mse_sum`, `mae_sum`: error summed over the pixels of a frame, then averaged
  over frames: the OpenSTL convention that Moving MNIST tables report
  (Tan et al. 2023, "OpenSTL: A Comprehensive Benchmark of Spatio-Temporal
  Predictive Learning").

Only `keras.ops` and numpy are used, never TensorFlow.
"""

import math

import keras
import numpy as np
from keras import ops

from framepred.losses import _check_frames, ssim

METRIC_NAMES = ("ssim", "psnr", "mse", "mae")
# The OpenSTL-convention columns `per_frame_metrics` adds to METRIC_NAMES.
SUM_METRIC_NAMES = ("mse_sum", "mae_sum")

# PSNR of identical frames would be +inf; the MSE is floored here instead, which
# caps PSNR at 10*log10(max_val**2) + 100 dB (100 dB for max_val=1.0).
PSNR_MIN_MSE = 1e-10


def psnr(y_true, y_pred, max_val=1.0):
    """Peak signal-to-noise ratio of each frame, in dB.

    Formula:

    ```python
    psnr = 10 * log10(max_val**2 / max(mse_frame, 1e-10))
    ```

    Equal to `tf.image.psnr` except for identical frames, where it is capped at
    `10 * log10(max_val**2) + 100` dB instead of being infinite.

    Args:
        y_true: Frames `[..., H, W, C]`.
        y_pred: Frames of the same shape.
        max_val: Dynamic range of the pixel values.

    Returns:
        float32 PSNR per frame, shape `[...]`.
    """
    _check_frames(y_true, y_pred, 1, "psnr")
    error = ops.cast(y_true, "float32") - ops.cast(y_pred, "float32")
    # [..., H, W, C] -> [...]
    mse_frame = ops.maximum(ops.mean(ops.square(error), axis=(-3, -2, -1)), PSNR_MIN_MSE)
    return (10.0 / math.log(10.0)) * ops.log(float(max_val) ** 2 / mse_frame)


@keras.saving.register_keras_serializable(package="framepred")
class SSIM(keras.metrics.MeanMetricWrapper):
    """Mean SSIM over every frame seen (`framepred.losses.ssim` per frame).

    Args:
        max_val: Dynamic range of the pixel values.
        filter_size: Width of the Gaussian window.
        filter_sigma: Standard deviation of the Gaussian window.
        name: Name of the metric.
        dtype: Dtype of the metric's result.
    """

    def __init__(self, max_val=1.0, filter_size=11, filter_sigma=1.5, name="ssim", dtype=None):
        super().__init__(
            ssim,
            name=name,
            dtype=dtype,
            max_val=float(max_val),
            filter_size=int(filter_size),
            filter_sigma=float(filter_sigma),
        )
        self.max_val = float(max_val)
        self.filter_size = int(filter_size)
        self.filter_sigma = float(filter_sigma)
        self._direction = "up"

    def get_config(self):
        return {
            "name": self.name,
            "dtype": self.dtype,
            "max_val": self.max_val,
            "filter_size": self.filter_size,
            "filter_sigma": self.filter_sigma,
        }


@keras.saving.register_keras_serializable(package="framepred")
class PSNR(keras.metrics.MeanMetricWrapper):
    """Mean PSNR (dB) over every frame seen (`framepred.metrics.psnr` per frame).

    Args:
        max_val: Dynamic range of the pixel values.
        name: Name of the metric.
        dtype: Dtype of the metric's result.
    """

    def __init__(self, max_val=1.0, name="psnr", dtype=None):
        super().__init__(psnr, name=name, dtype=dtype, max_val=float(max_val))
        self.max_val = float(max_val)
        self._direction = "up"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "max_val": self.max_val}


# ---------------------------------------------------------------------------
# Per-step evaluation
# ---------------------------------------------------------------------------


def per_frame_metrics(y_true, y_pred, max_val=1.0):
    """Every table metric for every frame, as numpy.

    Args:
        y_true: Target frames `[B, T, H, W, C]` (numpy or tensor).
        y_pred: Forecast frames of the same shape.
        max_val: Dynamic range of the pixel values.

    Returns:
        `{"ssim", "psnr", "mse", "mae", "mse_sum", "mae_sum"}` -> float32 numpy
        `[B, T]`. `mse`/`mae` are per-pixel means; `mse_sum`/`mae_sum` sum the
        error over the H*W*C pixels of each frame (OpenSTL convention).
    """
    y_true = ops.cast(ops.convert_to_tensor(y_true), "float32")
    y_pred = ops.cast(ops.convert_to_tensor(y_pred), "float32")
    _check_frames(y_true, y_pred, 1, "per_frame_metrics")
    error = y_true - y_pred
    axes = (-3, -2, -1)
    # [B, T, H, W, C] -> [B, T] for every entry.
    values = {
        "ssim": ssim(y_true, y_pred, max_val=max_val),
        "psnr": psnr(y_true, y_pred, max_val=max_val),
        "mse": ops.mean(ops.square(error), axis=axes),
        "mae": ops.mean(ops.abs(error), axis=axes),
        "mse_sum": ops.sum(ops.square(error), axis=axes),
        "mae_sum": ops.sum(ops.abs(error), axis=axes),
    }
    return {key: np.asarray(ops.convert_to_numpy(value)) for key, value in values.items()}


class PerStepMeans:
    """Accumulates per-frame metrics into a mean per forecast step.

    `update` takes the dict of `[B, T]` arrays from `per_frame_metrics`;
    `result` gives, for each metric, the mean over all sequences of each step
    (`per_step`, length T) and the mean over steps (`mean`), as plain floats.
    """

    def __init__(self):
        self._totals = {}
        self._count = 0

    def update(self, frame_metrics):
        counts = set()
        for key, values in frame_metrics.items():
            values = np.asarray(values, dtype=np.float64)
            if values.ndim != 2:
                raise ValueError(
                    f"PerStepMeans.update needs [B, T] arrays; got {key} of shape {values.shape}."
                )
            # [B, T] -> [T]
            step_sums = values.sum(axis=0)
            if key in self._totals and self._totals[key].shape != step_sums.shape:
                raise ValueError(
                    f"PerStepMeans.update got {key} with {step_sums.shape[0]} steps; "
                    f"earlier batches had {self._totals[key].shape[0]}."
                )
            self._totals[key] = self._totals.get(key, 0.0) + step_sums
            counts.add(values.shape[0])
        if len(counts) > 1:
            raise ValueError(
                f"PerStepMeans.update needs one batch size for all metrics; got {sorted(counts)}."
            )
        if counts:
            self._count += counts.pop()

    def result(self):
        results = {}
        for key, totals in self._totals.items():
            per_step = totals / max(self._count, 1)
            results[key] = {
                "per_step": [float(v) for v in per_step],
                "mean": float(per_step.mean()),
            }
        return results


def copy_last_baseline(context, future_frames):
    """The forecast that repeats the last context frame.

    Args:
        context: Context frames `[B, Tc, H, W, C]` (numpy or tensor).
        future_frames: Number of frames to forecast.

    Returns:
        `[B, future_frames, H, W, C]`, of the same kind as `context`.
    """
    if len(context.shape) != 5:
        raise ValueError(
            f"copy_last_baseline needs context [B, T, H, W, C]; got shape {tuple(context.shape)}."
        )
    if isinstance(context, np.ndarray):
        # [B, Tc, H, W, C] -> [B, 1, H, W, C] -> [B, future, H, W, C]
        return np.repeat(context[:, -1:], future_frames, axis=1)
    return ops.repeat(context[:, -1:], future_frames, axis=1)


_COLUMN_NOTES = {
    "ssim": "SSIM (higher is better)",
    "psnr": "PSNR in dB (higher is better)",
    "mse": "MSE per pixel (mean over H*W*C)",
    "mae": "MAE per pixel (mean over H*W*C)",
    "mse_sum": "MSE sum per frame (OpenSTL: summed over H*W*C)",
    "mae_sum": "MAE sum per frame (OpenSTL: summed over H*W*C)",
}


def _format_value(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    magnitude = abs(value)
    if magnitude != 0 and (magnitude >= 1e5 or magnitude < 1e-3):
        return f"{value:.3e}"
    return f"{value:.4f}"


def format_table(results):
    """A plain-text table of per-step results, entries side by side.

    Args:
        results: `{entry_name: PerStepMeans.result()}`, for example
            `{"model": ..., "copy_last": ...}`.

    Returns:
        A header naming each metric's convention, then one row per forecast
        step (`t+1` ... `t+H`) and a `mean` row; columns `metric entry` for
        each metric (METRIC_NAMES order, then the OpenSTL sums) and entry.
    """
    entries = list(results)
    if not entries:
        return "(no results)"
    known = [*METRIC_NAMES, *SUM_METRIC_NAMES]
    present = {key for entry in entries for key in results[entry]}
    metric_keys = [k for k in known if k in present] + sorted(present - set(known))
    steps = max(len(results[e][k]["per_step"]) for e in entries for k in results[e])

    columns = [(key, entry) for key in metric_keys for entry in entries]
    header = ["step"] + [f"{key} {entry}" for key, entry in columns]
    rows = []
    for step in range(steps):
        row = [f"t+{step + 1}"]
        for key, entry in columns:
            per_step = results[entry].get(key, {}).get("per_step", [])
            row.append(_format_value(per_step[step] if step < len(per_step) else None))
        rows.append(row)
    rows.append(
        ["mean"]
        + [_format_value(results[entry].get(key, {}).get("mean")) for key, entry in columns]
    )

    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells):
        return " | ".join(cell.rjust(width) for cell, width in zip(cells, widths))

    notes = [f"  {key}: {_COLUMN_NOTES.get(key, key)}" for key in metric_keys]
    rule = "-+-".join("-" * width for width in widths)
    return "\n".join(["Columns:", *notes, "", line(header), rule, *map(line, rows)])


__all__ = [
    "METRIC_NAMES",
    "PSNR",
    "PSNR_MIN_MSE",
    "SSIM",
    "SUM_METRIC_NAMES",
    "PerStepMeans",
    "copy_last_baseline",
    "format_table",
    "per_frame_metrics",
    "psnr",
]
