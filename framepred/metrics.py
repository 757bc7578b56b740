"""The metrics every table uses: SSIM, PSNR, MSE, MAE per frame and per forecast step.

One file defines them (as OpenSTL's `openstl/core/metrics.py` does), so
training, evaluation and the README report the same numbers:

- `psnr`, `ssim_openstl` and the streaming `SSIM` / `PSNR` Keras metrics, built
  on the same per-frame functions as the losses (`framepred.ssim.ssim`);
- the baselines a forecast must beat: `copy_last_baseline`,
  `background_baseline` and `blank_baseline` (`BASELINES`);
- `per_frame_metrics`, `PerStepMeans`, `beats_best_baseline` and
  `format_table` for the per-step evaluation written to `metrics.json`.

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
import textwrap

import keras
import numpy as np
from keras import ops

from framepred.ssim import check_frames, ssim, unflatten_frames

METRIC_NAMES = ("ssim", "ssim_openstl", "psnr", "mse", "mae")
# The OpenSTL-convention columns `per_frame_metrics` adds to METRIC_NAMES.
SUM_METRIC_NAMES = ("mse_sum", "mae_sum")
# Every other metric (mse, mae and the sums) is better when lower.
HIGHER_IS_BETTER = frozenset({"ssim", "ssim_openstl", "psnr"})

# The entry of `verification.evaluate_forecast`'s results that holds the model's
# scores, and the key that holds `beats_best_baseline`'s verdict beside the entries.
MODEL_ENTRY = "model"
VERDICT_KEY = "beats_best_baseline"

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


def _check_context(context, what):
    if len(context.shape) != 5:
        raise ValueError(
            f"{what} needs context [B, T, H, W, C]; got shape {tuple(context.shape)}."
        )


def _like_context(forecast, context):
    """The forecast as numpy when the context is numpy, else as the backend's tensor."""
    return ops.convert_to_numpy(forecast) if isinstance(context, np.ndarray) else forecast


def copy_last_baseline(context, future_frames):
    """The forecast that repeats the last context frame.

    Formula:

    ```python
    forecast[b, k] = context[b, -1]    for k = 1 ... future_frames
    ```

    {baseline_args}
    """
    _check_context(context, "copy_last_baseline")
    # [B, Tc, H, W, C] -> [B, 1, H, W, C] -> [B, future, H, W, C]
    return _like_context(ops.repeat(context[:, -1:], future_frames, axis=1), context)


def background_baseline(context, future_frames):
    """The forecast of the empty scene: each pixel's median over the context frames.

    Formula:

    ```python
    background[b, h, w, c] = median_over_t(context[b, t, h, w, c])
    forecast[b, k] = background[b]    for k = 1 ... future_frames
    ```

    A pixel keeps its background value unless movers cover it in half the
    context frames or more, so on moving objects this is the empty scene, and
    on a static camera the scene without its movers. With an even number of
    context frames the median is the mean of the two middle values (numpy's).

    {baseline_args}
    """
    _check_context(context, "background_baseline")
    # [B, Tc, H, W, C] -> [B, 1, H, W, C] -> [B, future, H, W, C]
    background = ops.median(context, axis=1, keepdims=True)
    return _like_context(ops.repeat(background, future_frames, axis=1), context)


def blank_baseline(context, future_frames):
    """The forecast of a constant frame at the data's background level.

    Formula:

    ```python
    level[b, c] = median_over_t_h_w(context[b, t, h, w, c])
    forecast[b, k, h, w, c] = level[b, c]    for k = 1 ... future_frames
    ```

    The level is the median, not the mean, of all context pixels: when the
    background covers more than half of them (digits on black, objects on a
    wall) the median is the background's own value, where the mean would be
    pulled toward the objects. For Moving Digits this is a black frame. It is
    taken per sequence and per channel, so a clip with a gray or colored
    background gets its own level. On dark backgrounds this empty frame scores
    better than copy_last, whose stale object is wrong twice (where it was and
    where it is now): a model should beat both.

    {baseline_args}
    """
    _check_context(context, "blank_baseline")
    # [B, Tc, H, W, C] -> [B, 1, 1, 1, C]
    level = ops.median(context, axis=(1, 2, 3), keepdims=True)
    batch, _, height, width, channels = ops.shape(context)
    # [B, 1, 1, 1, C] -> [B, future, H, W, C]
    blank = ops.broadcast_to(level, (batch, future_frames, height, width, channels))
    return _like_context(blank, context)


# The forecasts the model is scored against: `verification.evaluate_forecast`
# writes one results entry per name, beside MODEL_ENTRY.
_BASELINE_ARGS = """Args:
        context: Context frames `[B, Tc, H, W, C]` (numpy or tensor).
        future_frames: Number of frames to forecast.

    Returns:
        `[B, future_frames, H, W, C]`, of the same kind as `context`."""

for _baseline in (copy_last_baseline, background_baseline, blank_baseline):
    _baseline.__doc__ = _baseline.__doc__.replace("{baseline_args}", _BASELINE_ARGS)

BASELINES = {
    "copy_last": copy_last_baseline,
    "background": background_baseline,
    "blank": blank_baseline,
}


def forecast_entries(results):
    """The scored entries of `evaluate_forecast`'s results, without the verdict.

    Args:
        results: `{entry_name: PerStepMeans.result()}`, possibly with a
            VERDICT_KEY item (`beats_best_baseline`'s verdict).

    Returns:
        `{entry_name: PerStepMeans.result()}`: every item but VERDICT_KEY.
    """
    return {name: entry for name, entry in results.items() if name != VERDICT_KEY}


def _versus_best(value, baseline_values, higher_is_better):
    """(whether `value` is strictly better than the best baseline, that baseline's name)."""
    pick = max if higher_is_better else min
    best = pick(baseline_values, key=baseline_values.get)
    best_value = baseline_values[best]
    beats = value > best_value if higher_is_better else value < best_value
    return bool(beats), best


def _higher_is_better(metric):
    """True/False for a metric's direction; None for one with a best value in between
    (the frequency bias, best at 1), which gets no verdict."""
    if "@" in metric:  # a nowcasting score at a threshold: framepred.skill
        from framepred import skill

        name = skill.score_name(metric)
        return True if name in skill.HIGHER_IS_BETTER else (
            False if name in skill.LOWER_IS_BETTER else None)
    return metric in HIGHER_IS_BETTER


def _metric_verdict(metric, model, baselines):
    """`beats_best_baseline`'s verdict for one metric; `model` and each baseline are
    `{"per_step": [...], "mean": float}`."""
    higher = _higher_is_better(metric)
    per_step = [
        _versus_best(value, {name: b["per_step"][step] for name, b in baselines.items()}, higher)
        for step, value in enumerate(model["per_step"])
    ]
    mean_beats, mean_best = _versus_best(
        model["mean"], {name: b["mean"] for name, b in baselines.items()}, higher
    )
    return {
        "higher_is_better": higher,
        "per_step": [beats for beats, _ in per_step],
        "best_baseline": [best for _, best in per_step],
        "every_step": all(beats for beats, _ in per_step),
        "mean": mean_beats,
        "best_baseline_of_mean": mean_best,
    }


def beats_best_baseline(results):
    """Whether the model beats the best baseline, at each forecast step, per metric.

    At each step the best baseline is the one with the highest value for
    HIGHER_IS_BETTER metrics (ssim, ssim_openstl, psnr) and the lowest for the
    others (mse, mae, mse_sum, mae_sum). The model beats it only when strictly
    better: a tie is not a win.

    Args:
        results: `{entry_name: PerStepMeans.result()}` with the MODEL_ENTRY and
            baseline entries; a VERDICT_KEY item is ignored.

    Returns:
        `{metric: {"higher_is_better": bool, "per_step": [bool] * H,
        "best_baseline": [name] * H, "every_step": bool, "mean": bool,
        "best_baseline_of_mean": name}}` for each metric of the model:
        `per_step[t]` says whether the model beats `best_baseline[t]` at step
        t+1, `every_step` whether it does at all steps, and `mean` whether the
        model's mean over steps beats the best baseline mean
        (`best_baseline_of_mean`). `{}` without a model or a baseline entry.
    """
    entries = forecast_entries(results)
    model = entries.get(MODEL_ENTRY)
    baselines = {name: entry for name, entry in entries.items() if name != MODEL_ENTRY}
    if model is None or not baselines:
        return {}
    return {
        metric: _metric_verdict(metric, values, {name: b[metric] for name, b in baselines.items()})
        for metric, values in model.items() if _higher_is_better(metric) is not None
    }


# The metrics format_table shows. psnr is a function of mse frame by frame and
# the OpenSTL sums are mse and mae times H*W*C, so they are left to metrics.json,
# metrics.csv and TensorBoard to keep four entries side by side readable.
TABLE_METRICS = ("ssim", "ssim_openstl", "mse", "mae", "mse_units")
VERDICT_COLUMN = "beats best baseline?"
TABLE_WIDTH = 100  # the printed table's notes wrap here; metrics.csv has every column

_COLUMN_NOTES = {
    "ssim": "SSIM as tf.image.ssim, 11x11 Gaussian window (higher is better)",
    "ssim_openstl": "SSIM as OpenSTL reports it, scikit-image <= 0.19: 7x7 uniform window, "
    "data range 2, forecast clipped to [0, 1] (higher is better)",
    "psnr": "PSNR in dB (higher is better)",
    "mse": "MSE per pixel, mean over H*W*C (lower is better)",
    "mae": "MAE per pixel, mean over H*W*C (lower is better)",
    "mse_sum": "MSE sum per frame (OpenSTL: summed over H*W*C; lower is better)",
    "mae_sum": "MAE sum per frame (OpenSTL: summed over H*W*C; lower is better)",
    "mse_units": "MSE per pixel in data units, data.normalize undone (lower is better)",
    "mae_units": "MAE per pixel in data units, data.normalize undone (lower is better)",
}


_SKILL_NOTES = {
    "csi": "critical success index", "pod": "probability of detection",
    "far": "false alarm ratio", "ets": "equitable threat score",
    "hss": "Heidke skill score", "bias": "frequency bias (best at 1)",
    "fss": "fractions skill score",
}


def _column_note(metric):
    """What a table's metric is; nowcasting scores name their threshold and window."""
    if "@" not in metric:
        return _COLUMN_NOTES.get(metric, metric)
    name, _, at = metric.partition("@")
    threshold, _, scale = at.partition("/")
    window = f", {scale}x{scale} px window" if scale else ""
    direction = {True: "higher", False: "lower"}.get(_higher_is_better(metric))
    order = f"; {direction} is better" if direction else ""
    return (f"{_SKILL_NOTES.get(name, name)} at {threshold} data units{window}, pooled over "
            f"the split{order}")


def _format_value(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    magnitude = abs(value)
    if magnitude != 0 and (magnitude >= 1e5 or magnitude < 1e-3):
        return f"{value:.3e}"
    return f"{value:.4f}"


def _format_verdict(beats, best_baseline):
    return f"{'yes' if beats else 'no'} ({best_baseline})"


def _grid(header, rows):
    """Right-aligned columns separated by ` | `, with a rule under the header."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells):
        return " | ".join(cell.rjust(width) for cell, width in zip(cells, widths))

    rule = "-+-".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *map(line, rows)])


def _metric_table(metric, entries, verdict):
    """One metric's block: a title, then a row per step and a mean row."""
    names = [name for name in entries if metric in entries[name]]
    steps = max(len(entries[name][metric]["per_step"]) for name in names)
    rows = []
    for step in range(steps):
        row = [f"t+{step + 1}"]
        for name in names:
            per_step = entries[name][metric]["per_step"]
            row.append(_format_value(per_step[step] if step < len(per_step) else None))
        if verdict:
            row.append(_format_verdict(verdict["per_step"][step], verdict["best_baseline"][step]))
        rows.append(row)
    mean_row = ["mean", *(_format_value(entries[name][metric]["mean"]) for name in names)]
    if verdict:
        mean_row.append(_format_verdict(verdict["mean"], verdict["best_baseline_of_mean"]))
    header = ["step", *names, *([VERDICT_COLUMN] if verdict else [])]
    title = textwrap.fill(f"{metric}: {_column_note(metric)}", TABLE_WIDTH)
    return "\n".join([title, _grid(header, [*rows, mean_row])])


def format_table(results):
    """Plain-text tables of per-step results, one per headline metric.

    One block per metric of TABLE_METRICS (ssim, ssim_openstl, mse, mae) and
    per metric the table does not know, each titled with its convention: a
    row per forecast step (`t+1` ... `t+H`) and a `mean` row, a column per
    entry (model and baselines side by side), and, when the results hold the
    model and a baseline, a last column `beats best baseline?`: `yes`/`no` and
    the best baseline at that step (`beats_best_baseline`). psnr, mse_sum and
    mae_sum are left out to keep four entries readable (psnr is a function of
    mse per frame, the sums are mse and mae times H*W*C); they are in
    metrics.json, metrics.csv and TensorBoard.

    Args:
        results: `{entry_name: PerStepMeans.result()}`, for example
            `verification.evaluate_forecast`'s; a VERDICT_KEY item is ignored.

    Returns:
        The blocks, separated by blank lines, after a line that names what
        the verdict column means and which metrics are left out.
    """
    entries = forecast_entries(results)
    if not entries:
        return "(no results)"
    verdict = beats_best_baseline(entries)
    present = {key for entry in entries.values() for key in entry}
    # Of the nowcasting scores (framepred.skill), CSI at each threshold; the rest is in
    # metrics.json and metrics.csv.
    csi = sorted((key for key in present if key.startswith("csi@")),
                 key=lambda key: float(key.partition("@")[2]))
    shown = [key for key in TABLE_METRICS if key in present] + csi
    known = [*METRIC_NAMES, *SUM_METRIC_NAMES]
    left_out = [key for key in known if key in present and key not in shown] + sorted(
        key for key in present if key not in shown and key not in known)
    intro = [f"Not shown: {', '.join(left_out)} (see metrics.json and metrics.csv)."
             ] if left_out else []
    if verdict:
        intro.append(f"{VERDICT_COLUMN}: whether the model is strictly better than every "
                     "baseline at that step; the best baseline in parentheses.")
    intro = [textwrap.fill(line, TABLE_WIDTH) for line in intro]
    blocks = [_metric_table(key, entries, verdict.get(key)) for key in shown]
    return "\n\n".join(["\n".join(intro), *blocks] if intro else blocks)


__all__ = [
    "BASELINES",
    "HIGHER_IS_BETTER",
    "METRIC_NAMES",
    "MODEL_ENTRY",
    "PSNR",
    "PSNR_MIN_MSE",
    "SSIM",
    "SUM_METRIC_NAMES",
    "TABLE_METRICS",
    "VERDICT_KEY",
    "PerStepMeans",
    "background_baseline",
    "beats_best_baseline",
    "blank_baseline",
    "copy_last_baseline",
    "forecast_entries",
    "format_table",
    "per_frame_metrics",
    "psnr",
    "ssim_openstl",
]


def training_metrics(loss_cfg) -> list[keras.metrics.Metric]:
    """The metrics `fit` reports beside the loss, with the loss's SSIM settings."""
    return [
        SSIM(max_val=float(loss_cfg.max_val), filter_size=int(loss_cfg.filter_size),
             filter_sigma=float(loss_cfg.filter_sigma)),
        PSNR(max_val=float(loss_cfg.max_val)),
        keras.metrics.MeanSquaredError(name="mse"),
        keras.metrics.MeanAbsoluteError(name="mae"),
    ]
