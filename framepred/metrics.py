"""The metrics every table uses: SSIM, PSNR, MSE, MAE per frame and per forecast step.

One file defines them (as OpenSTL's `openstl/core/metrics.py` does), so
training, evaluation and the README report the same numbers:

- `psnr`, `ssim_openstl` and the streaming `SSIM` / `PSNR` Keras metrics, built
  on the same per-frame functions as the losses (`framepred.ssim.ssim`);
- `training_metrics`, the metrics `fit` reports beside the loss;
- `per_frame_metrics` and `PerStepMeans` for the per-step evaluation written to
  `metrics.json`.

The baselines, the verdict against them and the printed tables are in
`framepred.scoreboard`.

Conventions, stated wherever a number is shown:

- `ssim`: `tf.image.ssim` (11x11 Gaussian window, data range `max_val`).
- `ssim_openstl`: SSIM as OpenSTL reports it (scikit-image's 7x7 uniform
  window, data range 2), see `ssim_openstl`.
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

from framepred import keras_internals
from framepred.ssim import (
    DEFAULT_FILTER_SIGMA,
    DEFAULT_FILTER_SIZE,
    DEFAULT_MAX_VAL,
    check_frames,
    ssim,
    unflatten_frames,
)

METRIC_NAMES = ("ssim", "ssim_openstl", "psnr", "mse", "mae")
# The OpenSTL-convention columns `per_frame_metrics` adds to METRIC_NAMES.
SUM_METRIC_NAMES = ("mse_sum", "mae_sum")
# Every other metric (mse, mae and the sums) is better when lower.
HIGHER_IS_BETTER = frozenset({"ssim", "ssim_openstl", "psnr"})

# scikit-image's `structural_similarity` defaults that OpenSTL's SSIM inherits.
OPENSTL_SSIM_WINDOW = 7
OPENSTL_SSIM_DATA_RANGE = 2.0

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
    check_frames(y_true, y_pred, 1, "psnr")
    error = ops.cast(y_true, "float32") - ops.cast(y_pred, "float32")
    # [..., H, W, C] -> [...]
    mse_frame = ops.maximum(ops.mean(ops.square(error), axis=(-3, -2, -1)), PSNR_MIN_MSE)
    return (10.0 / math.log(10.0)) * ops.log(float(max_val) ** 2 / mse_frame)


def ssim_openstl(y_true, y_pred, max_val=1.0):
    """SSIM of each frame computed the way OpenSTL's tables compute it.

    OpenSTL's `metric()` (`openstl/core/metrics.py` in chengtan9907/OpenSTL,
    commit 0d74406) clips the forecast to `[0, 1]`, leaves the truth as it is,
    and calls scikit-image's `structural_similarity(pred[b, f].swapaxes(0, 2),
    true[b, f].swapaxes(0, 2), multichannel=True)` on each `[C, H, W]` frame.
    OpenSTL pins `scikit-image<=0.19.3` (`requirements/runtime.txt`), whose
    defaults for float frames are a 7x7 uniform window, the sample covariance,
    K1=0.01, K2=0.03 and a data range of 2 (the width of `[-1, 1]`, which it
    assumed for any float image), although the frames span `[0, 1]`. The
    swapaxes turns `[C, H, W]` into a transposed `[W, H, C]` frame; SSIM with a
    square uniform window is the same on transposed frames, so this works on
    `[H, W, C]` directly.

    Formula:

    ```python
    mu_x, mu_y, mean_xx, mean_yy, mean_xy = uniform_mean_7x7(x, y, x*x, y*y, x*y)
    var_x = 49 / 48 * (mean_xx - mu_x**2)       # likewise var_y, cov_xy
    c1, c2 = (0.01 * 2)**2, (0.03 * 2)**2
    ssim_map = ((2 mu_x mu_y + c1) * (2 cov_xy + c2)
                / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)))
    ssim_openstl = mean_over_channels(mean_over_valid_pixels(ssim_map))
    ```

    where the valid pixels are those whose whole window lies in the frame
    (scikit-image crops 3 pixels from each border), `x` is the truth and `y`
    the forecast clipped to `[0, 1]`, both divided by `max_val` first.

    Args:
        y_true: Frames `[..., H, W, C]`, values in `[0, max_val]`; H, W >= 7.
        y_pred: Frames of the same shape.
        max_val: Dynamic range of the pixel values; frames are scaled to
            `[0, 1]` by it, as OpenSTL's data are.

    Returns:
        float32 SSIM per frame, shape `[...]`: `[B, T]` for `[B, T, H, W, C]`.
    """
    check_frames(y_true, y_pred, OPENSTL_SSIM_WINDOW, "ssim_openstl", static_frame=True)
    frame = tuple(a if a is not None else b for a, b in zip(y_pred.shape[-3:], y_true.shape[-3:]))
    # [..., H, W, C] -> [N, H, W, C]
    truth = ops.reshape(ops.cast(y_true, "float32"), (-1, *frame)) / max_val
    forecast = ops.clip(ops.reshape(ops.cast(y_pred, "float32"), (-1, *frame)) / max_val, 0, 1)

    def window_mean(maps):
        # [N, H, W, C] -> [N, H-6, W-6, C]: the valid region scikit-image keeps.
        return ops.average_pool(maps, OPENSTL_SSIM_WINDOW, strides=1, padding="valid")

    # (Co)variances do not change when a frame is shifted; centering each frame
    # on its mean first keeps E[x*x] - mu**2 from cancelling in float32 (up to
    # 2e-5 off scikit-image's float64 SSIM on flat bright regions, 1e-7 centered).
    # [N, H, W, C] -> [N, 1, 1, C]
    truth_mean = ops.mean(truth, axis=(1, 2), keepdims=True)
    forecast_mean = ops.mean(forecast, axis=(1, 2), keepdims=True)
    x, y = truth - truth_mean, forecast - forecast_mean
    pixels = OPENSTL_SSIM_WINDOW**2
    sample = pixels / (pixels - 1)
    mu_xc, mu_yc = window_mean(x), window_mean(y)
    var_x = sample * (window_mean(x * x) - mu_xc * mu_xc)
    var_y = sample * (window_mean(y * y) - mu_yc * mu_yc)
    cov_xy = sample * (window_mean(x * y) - mu_xc * mu_yc)
    mu_x, mu_y = mu_xc + truth_mean, mu_yc + forecast_mean
    c1 = (0.01 * OPENSTL_SSIM_DATA_RANGE) ** 2
    c2 = (0.03 * OPENSTL_SSIM_DATA_RANGE) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / (
        (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    )
    # [N, H-6, W-6, C] -> [N]: every channel has as many valid pixels, so the
    # mean over all of them is scikit-image's mean of the per-channel means.
    values = ops.mean(ssim_map, axis=(1, 2, 3))
    # [N] -> [...]
    return unflatten_frames(values, y_pred)


@keras.saving.register_keras_serializable(package="framepred")
class SSIM(keras.metrics.MeanMetricWrapper):
    """Mean SSIM over every frame seen (`framepred.ssim.ssim` per frame).

    Args:
        max_val: Dynamic range of the pixel values.
        filter_size: Width of the Gaussian window.
        filter_sigma: Standard deviation of the Gaussian window.
        name: Name of the metric.
        dtype: Dtype of the metric's result.
    """

    def __init__(self, max_val=DEFAULT_MAX_VAL, filter_size=DEFAULT_FILTER_SIZE,
                 filter_sigma=DEFAULT_FILTER_SIGMA, name="ssim", dtype=None):
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
        keras_internals.set_higher_is_better(self)

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
        keras_internals.set_higher_is_better(self)

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
        `{"ssim", "ssim_openstl", "psnr", "mse", "mae", "mse_sum", "mae_sum"}`
        -> float32 numpy `[B, T]`. `ssim` is `tf.image.ssim`'s, `ssim_openstl`
        OpenSTL's (`ssim_openstl`); `mse`/`mae` are per-pixel means;
        `mse_sum`/`mae_sum` sum the error over the H*W*C pixels of each frame
        (OpenSTL convention).
    """
    y_true = ops.cast(ops.convert_to_tensor(y_true), "float32")
    y_pred = ops.cast(ops.convert_to_tensor(y_pred), "float32")
    check_frames(y_true, y_pred, 1, "per_frame_metrics")
    error = y_true - y_pred
    axes = (-3, -2, -1)
    # [B, T, H, W, C] -> [B, T] for every entry.
    values = {
        "ssim": ssim(y_true, y_pred, max_val=max_val),
        "ssim_openstl": ssim_openstl(y_true, y_pred, max_val=max_val),
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
    (`per_step`, length T) and the mean over steps (`mean`), as plain floats;
    `per_sequence` every sequence's scores, which the verdict's paired intervals
    resample (`scoreboard.beats_best_baseline`).
    """

    def __init__(self):
        self._rows = {}  # metric -> the [B, T] float64 arrays of every batch

    def update(self, frame_metrics):
        counts = set()
        for key, values in frame_metrics.items():
            values = np.asarray(values, dtype=np.float64)
            if values.ndim != 2:
                raise ValueError(
                    f"PerStepMeans.update needs [B, T] arrays; got {key} of shape {values.shape}."
                )
            earlier = self._rows.setdefault(key, [])
            if earlier and earlier[0].shape[1] != values.shape[1]:
                raise ValueError(
                    f"PerStepMeans.update got {key} with {values.shape[1]} steps; "
                    f"earlier batches had {earlier[0].shape[1]}."
                )
            earlier.append(values)
            counts.add(values.shape[0])
        if len(counts) > 1:
            raise ValueError(
                f"PerStepMeans.update needs one batch size for all metrics; got {sorted(counts)}."
            )

    def per_sequence(self):
        """`{metric: [N, T]}`: each sequence's scores, in the order they came."""
        return {key: np.concatenate(rows) for key, rows in self._rows.items()}

    def result(self):
        results = {}
        for key, values in self.per_sequence().items():
            per_step = values.mean(axis=0)
            results[key] = {
                "per_step": [float(v) for v in per_step],
                "mean": float(per_step.mean()),
            }
        return results


def training_metrics(loss_cfg) -> list[keras.metrics.Metric]:
    """The metrics `fit` reports beside the loss, with the loss's SSIM settings."""
    return [
        SSIM(max_val=float(loss_cfg.max_val), filter_size=int(loss_cfg.filter_size),
             filter_sigma=float(loss_cfg.filter_sigma)),
        PSNR(max_val=float(loss_cfg.max_val)),
        keras.metrics.MeanSquaredError(name="mse"),
        keras.metrics.MeanAbsoluteError(name="mae"),
    ]


__all__ = [
    "HIGHER_IS_BETTER",
    "METRIC_NAMES",
    "PSNR",
    "PSNR_MIN_MSE",
    "SSIM",
    "SUM_METRIC_NAMES",
    "PerStepMeans",
    "per_frame_metrics",
    "psnr",
    "ssim_openstl",
    "training_metrics",
]
