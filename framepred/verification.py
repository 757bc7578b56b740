"""Per-step forecast verification, shared by `train` and `evaluate`.

Context frames go in, `future_frames` forecasts come out, and every forecast
step t+1 ... t+H is scored against the truth with the metric definitions of
`framepred.metrics`, beside each baseline of `scoreboard.BASELINES` (copy-last
frame, background, blank frame), with a verdict on whether the model beats
the best of them (`scoreboard.beats_best_baseline`).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from framepred import metrics, models, scoreboard
from framepred.run.folder import atomic_write, write_json


def evaluate_forecast(
    model, batches: Iterable, context_frames: int, future_frames: int,
    max_batches: int | None = None, normalization=None, thresholds=(), fss_scales=(),
    baselines=tuple(scoreboard.BASELINES),
) -> dict:
    """Scores the model and every baseline on `batches` of windows.

    Args:
        model: The forecaster (`models.forecast` rolls it out).
        batches: Windows `[B, context+future, H, W, C]` (NumPy or tensors), as the
            model sees them (normalized where the run normalizes).
        context_frames: Frames of each window the forecasts see.
        future_frames: Frames forecast and scored.
        max_batches: Stop after this many batches; None reads them all.
        normalization: The run's `framepred.data.normalize.DataStatistics`; when it
            scales, `mse_units` and `mae_units` are added, in data units.
        thresholds: Nowcasting thresholds in data units (`framepred.skill`): CSI, POD,
            FAR, ETS, HSS and frequency bias at each, per step.
        fss_scales: FSS window sizes in pixels, at each threshold.
        baselines: The trivial forecasts to score: names of `scoreboard.BASELINES` and
            `extrapolation` (`framepred.extrapolation`), `pysteps_extrapolation` and
            `sprog` (`framepred.nowcasts`, pysteps'): the weather extra.

    Returns:
        The metrics.json layout: `{"model": ..., <baseline>: ...}`, each
        `{metric: {"per_step": [...], "mean": float}}` (`PerStepMeans.result()`), and
        under `"beats_best_baseline"` (`scoreboard.VERDICT_KEY`) the verdict of
        `scoreboard.beats_best_baseline`, with the paired bootstrap interval of the
        model's margin over the best baseline at each step.
        `scoreboard.forecast_entries` gives the entries without the verdict.
    """
    forecasters = {name: _baseline(name) for name in baselines}
    names = (scoreboard.MODEL_ENTRY, *forecasters)
    means = {name: metrics.PerStepMeans() for name in names}
    skill = None
    if thresholds:
        from framepred.skill import SkillMeans

        skill = {name: SkillMeans(list(thresholds), list(fss_scales)) for name in names}
    units = normalization is not None and normalization.kind != "none"
    for count, frames in enumerate(batches):
        if max_batches is not None and count >= max_batches:
            break
        frames = np.asarray(frames, dtype=np.float32)
        context = frames[:, :context_frames]
        truth = frames[:, context_frames : context_frames + future_frames]
        forecasts = {scoreboard.MODEL_ENTRY: models.forecast(model, context, future_frames)}
        for name, baseline in forecasters.items():
            forecasts[name] = baseline(context, future_frames)
        truth_units = normalization.inverse(truth) if units else truth
        for name, forecast in forecasts.items():
            scores = metrics.per_frame_metrics(truth, forecast)
            forecast_units = normalization.inverse(np.asarray(forecast)) if units else None
            if units:  # [B, T, H, W, C] -> [B, T], in data units
                error = np.asarray(forecast_units, np.float64) - truth_units
                scores["mse_units"] = np.square(error).mean(axis=(2, 3, 4))
                scores["mae_units"] = np.abs(error).mean(axis=(2, 3, 4))
            means[name].update(scores)
            if skill is not None:
                skill[name].update(truth_units, forecast_units if units else np.asarray(forecast))
    results = {}
    for name in names:
        results[name] = means[name].result()
        if skill is not None:
            results[name].update(skill[name].result())
    # Each sequence's scores, for the verdict's paired intervals.
    samples = {name: means[name].per_sequence() for name in names}
    verdict = scoreboard.beats_best_baseline(results, samples=samples)
    return {**results, scoreboard.VERDICT_KEY: verdict}


def _baseline(name: str):
    """The forecast function of a baseline name, from the module it lives in."""
    from framepred import extrapolation, nowcasts

    for baselines in (scoreboard.BASELINES, extrapolation.BASELINES, nowcasts.BASELINES):
        if name in baselines:
            return baselines[name]
    raise KeyError(name)


def write_csv(path: Path, results: dict) -> None:
    """One row per (entry, step): entry (model, then each baseline), step (1 ... H,
    then "mean"), every metric. The verdict (`beats_best_baseline`) is in
    metrics.json only."""
    entries = scoreboard.forecast_entries(results)
    metric_names = list(next(iter(entries.values())))

    def write(tmp):
        with open(tmp, "w", newline="") as handle:
            table = csv.writer(handle)
            table.writerow(["entry", "step", *metric_names])
            for entry, values in entries.items():
                steps = len(values[metric_names[0]]["per_step"])
                for step in range(steps):
                    table.writerow([entry, step + 1, *(
                        f"{values[name]['per_step'][step]:.6g}" for name in metric_names)])
                table.writerow([entry, "mean", *(
                    f"{values[name]['mean']:.6g}" for name in metric_names)])

    atomic_write(path, write)


def write_scores(out, results: dict, about: dict, units: str | None) -> dict:
    """Where `train` and `evaluate` put `evaluate_forecast`'s `results`: metrics.json
    (the results and `about`, what was scored), metrics.csv and the TensorBoard
    forecast scalars of the run folder `out` (`run.folder.RunPaths`), then the
    per-step tables in `units` on stdout and in the command's log. Returns the
    metrics.json payload."""
    # Late: TensorBoard's writer and the console are the commands', not the scoring's
    # (scripts/bench_quality.py scores without them).
    from framepred.callbacks.dashboards import log_forecast_metrics
    from framepred.console import to_log_file

    payload = {**results, **about}
    write_json(out.metrics, payload)
    write_csv(out.metrics_csv, results)
    log_forecast_metrics(out.tensorboard, results)
    table = scoreboard.format_table(results, units=units)
    print(table, flush=True)
    to_log_file(table)
    return payload
