"""What a run shows in TensorBoard beyond Keras' epoch scalars.

Under a run's `tensorboard/` folder (`RunPaths.tensorboard`), each subfolder is
one TensorBoard "run" (one writer):

    train/, validation/  Keras' TensorBoard callback: epoch_loss, epoch_ssim,
                         epoch_psnr, epoch_mse, epoch_mae (+ epoch_learning_rate
                         in train/); the profiler's trace in train/plugins/profile
    images/              `ForecastImages`: one forecast grid per validation
                         sequence, step = epoch (0-based, as Keras' scalars)
    forecast/model/,     `log_forecast_metrics`: forecast/<metric> with step =
    forecast/copy_last/, forecast step t (1 ... H), and forecast_mean/<metric>
    forecast/background/, (mean over steps) at step 0; one chart per metric
    forecast/blank/      overlays the model and every baseline
    . (the folder itself) `HParams`: the run's hyperparameters, the session
                         the HParams tab lists

Keras 3's TensorBoard callback writes no images and no hparams, so these use
their own `tf.summary` writers.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from framepred import visualize
from framepred.metrics import forecast_entries

log = logging.getLogger(__name__)

IMAGES_RUN = "images"
FORECAST_RUN = "forecast"
# Final validation metrics the HParams tab compares: (tag, run subfolder, display name).
HPARAMS_METRICS = (
    *[(f"epoch_{name}", "validation", f"val {name} (last epoch)")
      for name in ("loss", "ssim", "psnr", "mse", "mae")],
    *[(f"forecast_mean/{name}", f"{FORECAST_RUN}/model", f"forecast {label} (mean t+1..t+H)")
      for name, label in (("ssim", "SSIM"), ("ssim_openstl", "SSIM (OpenSTL)"),
                          ("psnr", "PSNR"), ("mse", "MSE per pixel"),
                          ("mae", "MAE per pixel"), ("mse_sum", "MSE per frame (OpenSTL)"),
                          ("mae_sum", "MAE per frame (OpenSTL)"))],
)


# --- forecast images ---------------------------------------------------------------


class ForecastImages(keras.callbacks.Callback):
    """After every epoch, forecasts the same validation windows and draws each as a
    grid: context, ground-truth future, forecast, |error| (`visualize.forecast_grid`).

    Forecasts go through `models.forecast`, so next_frame models are rolled out
    from their own predictions exactly as at evaluation, not teacher-forced.

    Args:
        log_dir: The run's tensorboard folder; images go to `<log_dir>/images`.
        windows: float32 `[N, context+future, H, W, C]`, the sequences to draw.
        context_frames: Frames of each window the model sees.
        channel, colormap: How frames are drawn (`visualize.picture`).
    """

    def __init__(self, log_dir: str | Path, windows: np.ndarray, context_frames: int,
                 channel: int = 0, colormap: str = "auto"):
        super().__init__()
        self.channel, self.colormap = channel, colormap
        self.log_dir = Path(log_dir) / IMAGES_RUN
        self.windows = np.asarray(windows, dtype=np.float32)
        self.context_frames = int(context_frames)
        self.scale = visualize.display_scale(self.windows.shape[2:4])
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        from framepred import models

        context = self.windows[:, : self.context_frames]
        truth = self.windows[:, self.context_frames :]
        predicted = models.forecast(self.model, context, truth.shape[1])
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self.log_dir))
        with self._writer.as_default():
            for index in range(len(self.windows)):
                grid = visualize.forecast_grid(context[index], truth[index], predicted[index],
                                               scale=self.scale, channel=self.channel,
                                               colormap=self.colormap)
                tf.summary.image(
                    f"forecast/sequence_{index}", grid[None], step=int(epoch),
                    description="Rows: " + ", ".join(visualize.FORECAST_ROWS)
                    + f". Validation window {index}; columns are frames in time.",
                )
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def first_windows(data_cfg: Any, count: int, split: str = "val",
                  normalization=None) -> np.ndarray:
    """The first `count` windows of a split, `[N, context+future, H, W, C]` (fewer if
    the split is smaller): the same sequences every epoch and every run."""
    from framepred import data

    batches = data.windows(data_cfg, split, count, normalization=normalization)
    batch = next(iter(batches.take(1).as_numpy_iterator()))
    return np.asarray(batch, dtype=np.float32)


# --- hyperparameters -------------------------------------------------------------


def hparams_of(cfg: Any) -> dict:
    """The hyperparameters a run is compared by: plain bool/int/float/str values."""
    data, model, loss, trainer = cfg.data, cfg.model, cfg.loss, cfg.trainer
    height, width = data.frame_size
    return {
        "loss": str(loss.name),
        "loss.alpha": float(loss.alpha),
        "loss.structural": str(loss.structural),
        "loss.pixel": str(loss.pixel),
        "model.form": str(model.form),
        "model.filters": ",".join(str(f) for f in model.filters),
        "model.kernel_size": ",".join(str(k) for k in model.kernel_size),
        "model.patch_size": int(model.patch_size),
        "trainer.learning_rate": float(trainer.learning_rate),
        "trainer.batch_size": int(trainer.batch_size),
        "trainer.epochs": int(trainer.epochs),
        "trainer.optimizer": str(trainer.optimizer),
        "trainer.schedule": str(trainer.schedule),
        "trainer.precision": str(trainer.precision),
        "trainer.seed": int(trainer.seed),
        "data.source": str(data.source),
        "data.frame_size": f"{height}x{width}",
        "data.channels": int(data.channels),
        "data.context_frames": int(data.context_frames),
        "data.future_frames": int(data.future_frames),
    }


def write_hparams(log_dir: str | Path, hparams: dict, trial_id: str) -> None:
    """Records `hparams` as an HParams session in `log_dir` (the run's tensorboard
    folder), with the experiment definition listing HPARAMS_METRICS.

    Every run writes the same experiment definition (no domains, which would
    differ per run), so TensorBoard may pick any one when a sweep's runs share a
    log folder; each run is then one row of the HParams table.
    """
    from tensorboard.plugins.hparams import api as hp

    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default():
        hp.hparams_config(
            hparams=[hp.HParam(name) for name in hparams],
            metrics=[hp.Metric(tag, group=group, display_name=name)
                     for tag, group, name in HPARAMS_METRICS],
        )
        hp.hparams(hparams, trial_id=trial_id)
    writer.close()


class HParams(keras.callbacks.Callback):
    """Writes the run's hyperparameters when training starts, so a run shows in the
    HParams tab (with its epoch metrics so far) while it trains."""

    def __init__(self, log_dir: str | Path, hparams: dict, trial_id: str):
        super().__init__()
        self.log_dir, self.hparams, self.trial_id = Path(log_dir), hparams, trial_id

    def on_train_begin(self, logs=None):
        write_hparams(self.log_dir, self.hparams, self.trial_id)


def build_callbacks(cfg: Any, run, normalization=None) -> list[keras.callbacks.Callback]:
    """The dashboard callbacks for a training run: HParams, and ForecastImages when
    `trainer.forecast_images` > 0 (windows as the model sees them: normalized)."""
    callbacks = [HParams(run.tensorboard, hparams_of(cfg), trial_id=run.root.name)]
    count = int(cfg.trainer.forecast_images)
    if count > 0:
        windows = first_windows(cfg.data, count, normalization=normalization)
        callbacks.append(ForecastImages(run.tensorboard, windows, int(cfg.data.context_frames),
                                        channel=int(cfg.visualize.channel),
                                        colormap=str(cfg.visualize.colormap)))
    return callbacks


# --- per-step forecast metrics ------------------------------------------------------


def log_forecast_metrics(log_dir: str | Path, results: dict) -> None:
    """Writes `verification.evaluate_forecast` results under `<log_dir>/forecast/`, one
    TensorBoard run per entry (`forecast/model`, `forecast/copy_last`,
    `forecast/background`, `forecast/blank`): the tag `forecast/<metric>` at step
    t = 1 ... H and `forecast_mean/<metric>` (mean over steps) at step 0. The same
    tag in several runs is drawn as one line each in one chart, so every metric
    shows the model against every baseline. The verdict (`beats_best_baseline`)
    is not an entry and is left to metrics.json."""
    for entry, entry_results in forecast_entries(results).items():
        writer = tf.summary.create_file_writer(str(Path(log_dir) / FORECAST_RUN / entry))
        with writer.as_default():
            for metric, values in entry_results.items():
                for step, value in enumerate(values["per_step"], start=1):
                    tf.summary.scalar(f"forecast/{metric}", value, step=step)
                tf.summary.scalar(f"forecast_mean/{metric}", values["mean"], step=0)
        writer.close()
