"""Per-step forecast evaluation, shared by `train` and `evaluate`.

Context frames go in, `future_frames` forecasts come out, and every forecast
step t+1 ... t+H is scored against the truth with the metric definitions of
`framepred.metrics`, beside the copy-last-frame baseline.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from framepred import metrics, models


def evaluate_forecast(
    model, batches: Iterable, context_frames: int, future_frames: int,
    max_batches: int | None = None,
) -> dict:
    """`batches` yields windows [B, context+future, H, W, C] (NumPy or tensors).

    Returns {"model": {...}, "copy_last": {...}}, each metric with "per_step"
    (one value per forecast step) and "mean" (over steps).
    """
    forecast_means, baseline_means = metrics.PerStepMeans(), metrics.PerStepMeans()
    for count, frames in enumerate(batches):
        if max_batches is not None and count >= max_batches:
            break
        frames = np.asarray(frames, dtype=np.float32)
        context = frames[:, :context_frames]
        truth = frames[:, context_frames : context_frames + future_frames]
        predicted = models.forecast(model, context, future_frames)
        forecast_means.update(metrics.per_frame_metrics(truth, predicted))
        baseline = metrics.copy_last_baseline(context, future_frames)
        baseline_means.update(metrics.per_frame_metrics(truth, baseline))
    return {"model": forecast_means.result(), "copy_last": baseline_means.result()}
