"""What a run shows in TensorBoard beyond Keras' epoch scalars.

Under a run's `tensorboard/` folder (`RunPaths.tensorboard`), each subfolder is
one TensorBoard "run" (one writer):

    train/, validation/  Keras' TensorBoard callback (TensorFlow backend) or
                         `EpochScalars` (other backends): epoch_loss, epoch_ssim,
                         epoch_psnr, epoch_mse, epoch_mae (+ epoch_learning_rate
                         in train/); the profiler's trace in train/plugins/profile
    images/              `ForecastImages`: one forecast grid per validation
                         sequence, step = epoch (0-based, as Keras' scalars); a
                         motion-head model's grid adds its motion as a last row
    forecast/model/,     `log_forecast_metrics`: forecast/<metric> with step =
    forecast/copy_last/, forecast step t (1 ... H), and forecast_mean/<metric>
    forecast/background/, (mean over steps) at step 0; one chart per metric
    forecast/blank/      overlays the model and every baseline
    . (the folder itself) `HParams`: the run's hyperparameters, the session
                         the HParams tab lists

Keras 3's TensorBoard callback writes no images and no hparams, so these use
their own writers, `summaries.SummaryWriter`, which need no TensorFlow.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import keras
import numpy as np

from framepred import visualize
from framepred.callbacks.summaries import SummaryWriter
from framepred.scoreboard import forecast_entries

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


# --- epoch scalars -----------------------------------------------------------------


class EpochScalars(keras.callbacks.Callback):
    """What Keras' TensorBoard callback writes, for backends without TensorFlow:
    `epoch_<metric>` at step = epoch in train/ and (`val_` dropped) validation/,
    `epoch_learning_rate` in train/, and after every validation
    `evaluation_<metric>_vs_iterations` in validation/ at step = optimizer steps.

    `profile_batch` (first, last): under JAX, `jax.profiler` traces these training
    batches (counted from 1 over the whole fit, as Keras counts them) into
    train/plugins/profile, where Keras' callback puts TensorFlow's trace; other
    backends have no profiler here and ignore it with a warning.
    """

    def __init__(self, log_dir: str | Path, profile_batch: tuple[int, int] | int = 0):
        super().__init__()
        self.log_dir = Path(log_dir)
        self._profile = tuple(profile_batch) if profile_batch else (0, 0)
        if self._profile[0] and keras.backend.backend() != "jax":
            log.warning("trainer.profile_batch is ignored: no profiler for the %s backend",
                        keras.backend.backend())
            self._profile = (0, 0)
        # Named as in Keras' TensorBoard callback: Backup flushes both through
        # keras_internals.summary_writers before it saves a resume point.
        self._writers: dict[str, SummaryWriter] = {}
        self._batch = 0
        self._tracing = False

    def _writer(self, run: str) -> SummaryWriter:
        if run not in self._writers:
            self._writers[run] = SummaryWriter(self.log_dir / run)
        return self._writers[run]

    def on_train_begin(self, logs=None):
        self._batch = 0

    def on_train_batch_begin(self, batch, logs=None):
        self._batch += 1
        if self._batch == self._profile[0]:
            import jax

            try:
                jax.profiler.start_trace(str(self.log_dir / "train"))
                self._tracing = True
            except RuntimeError as error:  # a trace already running: train on, as Keras does
                log.error("could not start the profiler: %s", error)

    def on_train_batch_end(self, batch, logs=None):
        if self._tracing and self._batch >= self._profile[1]:
            self._stop_trace()

    def _stop_trace(self):
        import jax

        jax.profiler.stop_trace()
        self._tracing = False

    def on_test_end(self, logs=None):
        optimizer = self.model.optimizer
        if not logs or optimizer is None:
            return
        step = int(keras.ops.convert_to_numpy(optimizer.iterations))
        for name, value in logs.items():
            self._writer("validation").scalar(f"evaluation_{name}_vs_iterations", value, step)

    def on_epoch_end(self, epoch, logs=None):
        if not logs:
            return
        train = {name: value for name, value in logs.items() if not name.startswith("val_")}
        train.update(_learning_rates(self.model.optimizer))
        validation = {name[4:]: value for name, value in logs.items()
                      if name.startswith("val_")}
        for run, values in (("train", train), ("validation", validation)):
            for name, value in values.items():
                self._writer(run).scalar(f"epoch_{name}", value, step=epoch)

    def on_train_end(self, logs=None):
        if self._tracing:
            self._stop_trace()
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


def _learning_rates(optimizer) -> dict[str, float]:
    """The learning rate now, named as Keras' TensorBoard callback names it."""
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer
    if hasattr(optimizer, "optimizers"):
        return {f"learning_rate_{inner.name}": float(
            keras.ops.convert_to_numpy(inner.learning_rate)) for inner in optimizer.optimizers}
    if isinstance(optimizer, keras.optimizers.Optimizer):
        return {"learning_rate": float(keras.ops.convert_to_numpy(optimizer.learning_rate))}
    return {}


# --- forecast images ---------------------------------------------------------------


class ForecastImages(keras.callbacks.Callback):
    """After every epoch, forecasts the same validation windows and draws each as a
    grid: context, ground-truth future, forecast, |error| (`visualize.forecast_grid`),
    and, for a model with a motion head, the motion it forecast with
    (`models.motion_fields`) in flow colours (`visualize.flow_to_rgb`).

    Forecasts go through `models.forecast`, so next_frame models are rolled out
    from their own predictions exactly as at evaluation, not teacher-forced.

    Args:
        log_dir: The run's tensorboard folder; images go to `<log_dir>/images`.
        windows: float32 `[N, context+future, H, W, C]`, the sequences to draw.
        context_frames: Frames of each window the model sees.
        channel, colormap: How frames are drawn (`visualize.picture`).
        motion_radius: The motion head's largest shift in pixels (`model.motion_radius`),
            drawn at full colour, so that every step and epoch shares one scale; None
            scales each grid by its own longest shift. Unused without a motion head.
        checkpoint: The epoch's `last.keras` (saved before this runs): under a JAX
            job's distribution the forecast reads it onto this process alone, since
            forecasting with the job's model would be a step every process must join.
    """

    def __init__(self, log_dir: str | Path, windows: np.ndarray, context_frames: int,
                 channel: int = 0, colormap: str = "auto", checkpoint: Path | None = None,
                 motion_radius: float | None = None):
        super().__init__()
        self.checkpoint, self.motion_radius = checkpoint, motion_radius
        self.channel, self.colormap = channel, colormap
        self.log_dir = Path(log_dir) / IMAGES_RUN
        self.windows = np.asarray(windows, dtype=np.float32)
        self.context_frames = int(context_frames)
        self.scale = visualize.display_scale(self.windows.shape[2:4])
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        context = self.windows[:, : self.context_frames]
        truth = self.windows[:, self.context_frames :]
        if keras.distribution.distribution() is None or self.checkpoint is None:
            predicted, motion = _forecast_and_motion(self.model, context, truth.shape[1])
        else:
            from framepred.devices import undistributed

            with undistributed():
                local = keras.models.load_model(self.checkpoint)
                predicted, motion = _forecast_and_motion(local, context, truth.shape[1])
        if self._writer is None:
            self._writer = SummaryWriter(self.log_dir)
        rows = list(visualize.FORECAST_ROWS)
        if motion is not None:
            full = f"{self.motion_radius:g} px" if self.motion_radius else "the longest shift"
            rows.append(f"{visualize.MOTION_ROW} (flow colours: right red, down yellow, left "
                        f"cyan-blue, up violet; white = still, full colour = {full})")
        for index in range(len(self.windows)):
            grid = visualize.forecast_grid(
                context[index], truth[index], predicted[index], scale=self.scale,
                channel=self.channel, colormap=self.colormap,
                motion=None if motion is None else motion[index],
                max_displacement=self.motion_radius)
            self._writer.image(
                f"forecast/sequence_{index}", visualize.to_uint8(grid), step=int(epoch),
                description="Rows: " + ", ".join(rows)
                + f". Validation window {index}; columns are frames in time.",
            )
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _forecast_and_motion(model, context, steps: int):
    """(forecast [N, steps, H, W, C], motion [N, steps, H, W, 2] or None without a
    motion head), from the same rollout."""
    from framepred import models

    predicted = models.forecast(model, context, steps)
    return predicted, models.motion_fields(model, context, steps, forecasts=predicted)


def first_windows(data_cfg: Any, count: int, split: str = "val",
                  normalization=None) -> np.ndarray:
    """The first `count` windows of a split, `[N, context+future, H, W, C]` (fewer if
    the split is smaller): the same sequences every epoch and every run."""
    from framepred import data

    batches = data.window_batches(data_cfg, split, count, normalization=normalization)
    return np.asarray(batches.first(), dtype=np.float32)


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
    with SummaryWriter(log_dir) as writer:
        writer.hparams_config(hparams, HPARAMS_METRICS)
        writer.hparams(hparams, trial_id=trial_id)


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
                                        colormap=str(cfg.visualize.colormap),
                                        checkpoint=run.last,
                                        motion_radius=int(cfg.model.motion_radius)))
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
        with SummaryWriter(Path(log_dir) / FORECAST_RUN / entry) as writer:
            for metric, values in entry_results.items():
                for step, value in enumerate(values["per_step"], start=1):
                    writer.scalar(f"forecast/{metric}", value, step=step)
                writer.scalar(f"forecast_mean/{metric}", values["mean"], step=0)
