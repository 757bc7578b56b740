"""The scoreboard: the baselines a forecast must beat, the verdict, the printed tables.

`framepred.metrics` defines what a number is (SSIM, PSNR, MSE, MAE per frame and
their per-step means); this module says what the numbers mean side by side:

- the trivial forecasts a model is scored against: `copy_last_baseline`,
  `background_baseline` and `blank_baseline` (`BASELINES`);
- `beats_best_baseline`: whether the model is strictly better than the best of
  them, per step and per metric (the verdict in `metrics.json`), and, from the
  scores of each sequence, a paired bootstrap interval of that margin
  (`margin_interval`): whether this many sequences settle the verdict's sign;
- `format_table`: the plain-text tables `train` and `evaluate` print.

Only `keras.ops` and numpy are used, never TensorFlow.
"""

import math
import textwrap

import numpy as np
from keras import ops

from framepred.metrics import HIGHER_IS_BETTER, METRIC_NAMES, SUM_METRIC_NAMES

# The entry of `verification.evaluate_forecast`'s results that holds the model's
# scores, and the key that holds `beats_best_baseline`'s verdict beside the entries.
MODEL_ENTRY = "model"
VERDICT_KEY = "beats_best_baseline"


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

    Args:
        context: Context frames `[B, Tc, H, W, C]` (numpy or tensor).
        future_frames: Number of frames to forecast.

    Returns:
        `[B, future_frames, H, W, C]`, of the same kind as `context`.
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

    Args and returns: as `copy_last_baseline`'s.
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

    Args and returns: as `copy_last_baseline`'s.
    """
    _check_context(context, "blank_baseline")
    # [B, Tc, H, W, C] -> [B, 1, 1, 1, C]
    level = ops.median(context, axis=(1, 2, 3), keepdims=True)
    batch, _, height, width, channels = ops.shape(context)
    # [B, 1, 1, 1, C] -> [B, future, H, W, C]
    blank = ops.broadcast_to(level, (batch, future_frames, height, width, channels))
    return _like_context(blank, context)


# The forecasts the model is scored against, by name (config.Baseline's choices;
# `extrapolation` is framepred.extrapolation's, which needs the weather extra):
# `verification.evaluate_forecast` writes one results entry per name, beside MODEL_ENTRY.
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
    scored = {name: v for name, v in baseline_values.items() if _has_value(v)}
    if not _has_value(value) or not scored or all(v == value for v in scored.values()):
        # Every entry ties (CSI 0 everywhere at a threshold no forecast reaches), or
        # there is no value to compare (NaN: no event forecast or seen): no best
        # baseline to name, and no win.
        return False, None
    pick = max if higher_is_better else min
    best = pick(scored, key=scored.get)
    best_value = scored[best]
    beats = value > best_value if higher_is_better else value < best_value
    return bool(beats), best


def _has_value(value):
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _higher_is_better(metric):
    """True/False for a metric's direction; None for one with a best value in between
    (the frequency bias, best at 1), which gets no verdict."""
    if "@" in metric:  # a nowcasting score at a threshold: framepred.skill
        from framepred import skill

        name = skill.score_name(metric)
        return True if name in skill.HIGHER_IS_BETTER else (
            False if name in skill.LOWER_IS_BETTER else None)
    return metric in HIGHER_IS_BETTER


# The verdict's intervals: a paired percentile bootstrap over sequences (Efron &
# Tibshirani 1993), the resampling test forecast verification uses to tell two
# forecasts apart (Hamill 1999, "Hypothesis tests for evaluating numerical
# precipitation forecasts"). Each resampled sequence keeps its model and baseline
# scores together, so what the two forecasts share (a hard sequence is hard for both)
# cancels out of the margin.
CONFIDENCE = 0.95
RESAMPLES = 2000
_RESAMPLE_CHUNK = 100  # resamples drawn at once: bounds the memory at N x T x 100


def margin_interval(margins, confidence=CONFIDENCE, resamples=RESAMPLES, seed=0):
    """The percentile bootstrap interval of the mean of per-sequence `margins`.

    Formula:

    ```python
    for r in 1 ... resamples:
        drawn = N sequences drawn from the N with replacement
        means[r] = mean(margins[drawn], axis=0)
    low, high = percentiles (1 - confidence) / 2 and (1 + confidence) / 2 of means
    ```

    Args:
        margins: `[N, ...]`: one value per sequence (and per step), e.g. the model's
            score minus a baseline's.
        confidence: The interval's coverage.
        resamples: Bootstrap resamples; the seed fixes them, so a verdict is
            reproducible.

    Returns:
        `(low, high)`, each of shape `margins.shape[1:]`.
    """
    margins = np.asarray(margins, np.float64)
    count = len(margins)
    if count == 0:
        raise ValueError("margin_interval needs at least one sequence.")
    rng = np.random.default_rng(seed)
    means = np.empty((resamples, *margins.shape[1:]))
    for start in range(0, resamples, _RESAMPLE_CHUNK):
        drawn = rng.integers(0, count, size=(min(_RESAMPLE_CHUNK, resamples - start), count))
        means[start : start + len(drawn)] = margins[drawn].mean(axis=1)
    tail = 50.0 * (1.0 - confidence)
    low, high = np.percentile(means, [tail, 100.0 - tail], axis=0)
    return low, high


def _settled(low, high):
    """Whether an interval keeps off zero: the sign of the margin is settled."""
    return bool((low > 0 or high < 0) and math.isfinite(low) and math.isfinite(high))


def _intervals(higher, model, baselines, best_per_step, best_of_mean):
    """The verdict's interval fields, from per-sequence scores `[N, T]` of the model
    and of each baseline: the model's margin over the best baseline of each step
    and of the mean, signed so that positive means the model is better."""
    sign = 1.0 if higher else -1.0
    model = np.asarray(model, np.float64)
    steps = model.shape[1]
    # The best baseline's scores at each step; a step with no best one gets NaN.
    best = np.stack([np.asarray(baselines[name], np.float64)[:, step] if name is not None
                     else np.full(len(model), np.nan) for step, name in enumerate(best_per_step)],
                    axis=1)
    low, high = margin_interval(sign * (model - best))
    fields = {
        "sequences": len(model),
        "confidence": CONFIDENCE,
        "margin_interval": [[float(lo), float(hi)] for lo, hi in zip(low, high)],
        "settled": [_settled(lo, hi) for lo, hi in zip(low, high)],
    }
    if best_of_mean is not None:
        margin = sign * (model.mean(axis=1)
                         - np.asarray(baselines[best_of_mean], np.float64)[:, :steps].mean(axis=1))
        lo, hi = margin_interval(margin)
        fields.update(margin_interval_of_mean=[float(lo), float(hi)],
                      settled_mean=_settled(lo, hi))
    else:
        fields.update(margin_interval_of_mean=[math.nan, math.nan], settled_mean=False)
    return fields


def _metric_verdict(metric, model, baselines, samples=None):
    """`beats_best_baseline`'s verdict for one metric; `model` and each baseline are
    `{"per_step": [...], "mean": float}`; `samples`, when given, each entry's
    per-sequence scores `[N, T]` of this metric."""
    higher = _higher_is_better(metric)
    per_step = [
        _versus_best(value, {name: b["per_step"][step] for name, b in baselines.items()}, higher)
        for step, value in enumerate(model["per_step"])
    ]
    mean_beats, mean_best = _versus_best(
        model["mean"], {name: b["mean"] for name, b in baselines.items()}, higher
    )
    verdict = {
        "higher_is_better": higher,
        "per_step": [beats for beats, _ in per_step],
        "best_baseline": [best for _, best in per_step],
        "every_step": all(beats for beats, _ in per_step),
        "mean": mean_beats,
        "best_baseline_of_mean": mean_best,
    }
    if samples is not None and all(name in samples for name in (MODEL_ENTRY, *baselines)):
        verdict.update(_intervals(higher, samples[MODEL_ENTRY],
                                  {name: samples[name] for name in baselines},
                                  verdict["best_baseline"], mean_best))
    return verdict


def beats_best_baseline(results, samples=None):
    """Whether the model beats the best baseline, at each forecast step, per metric.

    At each step the best baseline is the one with the highest value for
    HIGHER_IS_BETTER metrics (ssim, ssim_openstl, psnr) and the lowest for the
    others (mse, mae, mse_sum, mae_sum). The model beats it only when strictly
    better: a tie is not a win. Where every entry, the model's included, has the
    same value, or the model or every baseline has none (NaN), no baseline is
    best: the best baseline is None and the model does not beat it.

    With `samples`, each metric's verdict also says how sure it is: the model's margin
    over the best baseline, per sequence, signed so that positive means the model is
    better, and its `margin_interval` (`margin_interval`, a paired bootstrap). Where
    that interval holds zero, the sequences scored do not settle whether the model
    or the baseline is better there (`settled` is False), whatever the means say.

    Args:
        results: `{entry_name: PerStepMeans.result()}` with the MODEL_ENTRY and
            baseline entries; a VERDICT_KEY item is ignored.
        samples: `{entry_name: {metric: [N, T] per-sequence scores}}` of the same
            sequences, or None. Metrics without them (the pooled nowcasting scores)
            get no interval.

    Returns:
        `{metric: {"higher_is_better": bool, "per_step": [bool] * H,
        "best_baseline": [name or None] * H, "every_step": bool, "mean": bool,
        "best_baseline_of_mean": name or None}}` for each metric of the model:
        `per_step[t]` says whether the model beats `best_baseline[t]` at step
        t+1, `every_step` whether it does at all steps, and `mean` whether the
        model's mean over steps beats the best baseline mean
        (`best_baseline_of_mean`). With `samples`, also `"sequences": N,
        "confidence": CONFIDENCE, "margin_interval": [[low, high]] * H,
        "settled": [bool] * H, "margin_interval_of_mean": [low, high],
        "settled_mean": bool`. `{}` without a model or a baseline entry.
    """
    entries = forecast_entries(results)
    model = entries.get(MODEL_ENTRY)
    baselines = {name: entry for name, entry in entries.items() if name != MODEL_ENTRY}
    if model is None or not baselines:
        return {}
    samples = samples or {}

    def of(metric):
        found = {name: entry[metric] for name, entry in samples.items() if metric in entry}
        return found or None

    return {
        metric: _metric_verdict(metric, values, {name: b[metric] for name, b in baselines.items()},
                                of(metric))
        for metric, values in model.items() if _higher_is_better(metric) is not None
    }


# The metrics format_table shows. psnr is a function of mse frame by frame and
# the OpenSTL sums are mse and mae times H*W*C, so they are left to metrics.json,
# metrics.csv and TensorBoard to keep four entries side by side readable.
TABLE_METRICS = ("ssim", "ssim_openstl", "mse", "mae", "mse_units")
VERDICT_COLUMN = "beats best baseline?"
ALL_TIE = "- (all tie)"  # the verdict column where no baseline is best
UNSETTLED = "?"  # after yes/no where the margin's interval holds zero
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
    "mse_units": "MSE per pixel in {units} squared, data.normalize undone (lower is better)",
    "mae_units": "MAE per pixel in {units}, data.normalize undone (lower is better)",
}
# What a value is in where neither the source nor normalization.json names a unit.
UNKNOWN_UNITS = "data units"


_SKILL_NOTES = {
    "csi": "critical success index", "pod": "probability of detection",
    "far": "false alarm ratio", "ets": "equitable threat score",
    "hss": "Heidke skill score", "bias": "frequency bias (best at 1)",
    "fss": "fractions skill score",
}


def _column_note(metric, units):
    """What a table's metric is; nowcasting scores name their threshold, in `units`,
    and window."""
    if "@" not in metric:
        return _COLUMN_NOTES.get(metric, metric).format(units=units)
    name, _, at = metric.partition("@")
    threshold, _, scale = at.partition("/")
    window = f", {scale}x{scale} px window" if scale else ""
    direction = {True: "higher", False: "lower"}.get(_higher_is_better(metric))
    order = f"; {direction} is better" if direction else ""
    return (f"{_SKILL_NOTES.get(name, name)} at {threshold} {units}{window}, pooled over "
            f"the split{order}")


def _format_value(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    magnitude = abs(value)
    if magnitude != 0 and (magnitude >= 1e5 or magnitude < 1e-3):
        return f"{value:.3e}"
    return f"{value:.4f}"


def _format_verdict(beats, best_baseline, settled=True):
    if best_baseline is None:
        return ALL_TIE
    return f"{'yes' if beats else 'no'}{'' if settled else UNSETTLED} ({best_baseline})"


def _grid(header, rows):
    """Right-aligned columns separated by ` | `, with a rule under the header."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells):
        return " | ".join(cell.rjust(width) for cell, width in zip(cells, widths))

    rule = "-+-".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *map(line, rows)])


def _score_order(metric):
    """Nowcasting scores by name, then threshold and window as numbers ("csi@2" before
    "csi@10"); other metrics by name."""
    name, _, at = metric.partition("@")
    threshold, _, scale = at.partition("/")
    return (name, float(threshold or 0), int(scale or 0))


def _metric_table(metric, entries, verdict, units):
    """One metric's block: a title, then a row per step and a mean row."""
    names = [name for name in entries if metric in entries[name]]
    steps = max(len(entries[name][metric]["per_step"]) for name in names)
    settled = verdict.get("settled", [True] * steps) if verdict else None
    rows = []
    for step in range(steps):
        row = [f"t+{step + 1}"]
        for name in names:
            per_step = entries[name][metric]["per_step"]
            row.append(_format_value(per_step[step] if step < len(per_step) else None))
        if verdict:
            row.append(_format_verdict(verdict["per_step"][step], verdict["best_baseline"][step],
                                       settled[step]))
        rows.append(row)
    mean_row = ["mean", *(_format_value(entries[name][metric]["mean"]) for name in names)]
    if verdict:
        mean_row.append(_format_verdict(verdict["mean"], verdict["best_baseline_of_mean"],
                                        verdict.get("settled_mean", True)))
    header = ["step", *names, *([VERDICT_COLUMN] if verdict else [])]
    title = textwrap.fill(f"{metric}: {_column_note(metric, units)}", TABLE_WIDTH)
    return "\n".join([title, _grid(header, [*rows, mean_row])])


def format_table(results, units=None):
    """Plain-text tables of per-step results, one per headline metric.

    One block per metric of TABLE_METRICS present (ssim, ssim_openstl, mse, mae,
    mse_units: five) and per nowcasting threshold its CSI (`csi@<t>`, thresholds
    in numeric order), each titled with its convention: a row per forecast step
    (`t+1` ... `t+H`) and a `mean` row, a column per entry (model and baselines
    side by side), and, when the results hold the model and a baseline, a last
    column `beats best baseline?`: `yes`/`no` and the best baseline at that step
    (`beats_best_baseline`), or ALL_TIE where no baseline is best. psnr, mse_sum,
    mae_sum and the other nowcasting scores are left out to keep the entries
    readable (psnr is a function of mse per frame, the sums are mse and mae times
    H*W*C); they are in metrics.json, metrics.csv and TensorBoard.

    Args:
        results: `{entry_name: PerStepMeans.result()}`, for example
            `verification.evaluate_forecast`'s; a VERDICT_KEY item is ignored.
        units: The unit of the data's values (`"mm/h"`), named by the thresholds
            and the data-unit errors; None: UNKNOWN_UNITS.

    Returns:
        The blocks, separated by blank lines, after a line that names what
        the verdict column means and which metrics are left out.
    """
    entries = forecast_entries(results)
    if not entries:
        return "(no results)"
    verdict = beats_best_baseline(entries)
    # The verdict the results carry has the intervals, where they were scored with them.
    carried = results.get(VERDICT_KEY)
    for metric, fields in (carried.items() if isinstance(carried, dict) else ()):
        if metric in verdict and isinstance(fields, dict) and "settled" in fields:
            verdict[metric] = fields
    present = {key for entry in entries.values() for key in entry}
    # Of the nowcasting scores (framepred.skill), CSI at each threshold; the rest is in
    # metrics.json and metrics.csv.
    csi = sorted((key for key in present if key.startswith("csi@")), key=_score_order)
    shown = [key for key in TABLE_METRICS if key in present] + csi
    known = [*METRIC_NAMES, *SUM_METRIC_NAMES]
    left_out = [key for key in known if key in present and key not in shown] + sorted(
        (key for key in present if key not in shown and key not in known), key=_score_order)
    intro = [f"Not shown: {', '.join(left_out)} (see metrics.json and metrics.csv)."
             ] if left_out else []
    if verdict:
        intro.append(f"{VERDICT_COLUMN}: whether the model is strictly better than every "
                     f"baseline at that step; the best baseline in parentheses; {ALL_TIE} "
                     "where every entry has the same value, or none.")
        sure = next((v for v in verdict.values() if "settled" in v), None)
        if sure is not None:
            intro.append(
                f"{UNSETTLED} after yes/no: the {sure['confidence']:.0%} interval of the "
                f"model's margin over that baseline (a paired bootstrap over the "
                f"{sure['sequences']} sequences scored) holds zero, so they do not settle "
                "which is better; metrics.json has the intervals.")
    intro = [textwrap.fill(line, TABLE_WIDTH) for line in intro]
    blocks = [_metric_table(key, entries, verdict.get(key), units or UNKNOWN_UNITS)
              for key in shown]
    return "\n\n".join(["\n".join(intro), *blocks] if intro else blocks)


__all__ = [
    "BASELINES",
    "MODEL_ENTRY",
    "TABLE_METRICS",
    "VERDICT_KEY",
    "background_baseline",
    "beats_best_baseline",
    "blank_baseline",
    "copy_last_baseline",
    "forecast_entries",
    "format_table",
    "margin_interval",
]
