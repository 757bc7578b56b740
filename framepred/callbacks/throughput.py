"""Training throughput, in frames per second, logged each epoch.

A frame is one predicted (target) frame: a step trains on global batch x target
time steps of them. The clock runs over the training steps of an epoch only, from
the end of its first execution to the end of its last, so neither the first
epoch's tracing/compilation nor validation counts. An epoch of a single execution
is timed whole (tracing included, and the log says so).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import keras

from framepred.callbacks.summaries import SummaryWriter

log = logging.getLogger(__name__)

TAG = "throughput/frames_per_second"


def target_frames(data_cfg, form: str) -> int:
    """Time steps a training example predicts (see framepred.data.split_window)."""
    if form == "next_frame":
        return int(data_cfg.context_frames) + int(data_cfg.future_frames) - 1
    return int(data_cfg.future_frames)


class Throughput(keras.callbacks.Callback):
    """Logs device, precision and training frames/s per epoch (log file and TensorBoard).

    Args:
        batch_size: per-replica batch; without `global_batch`, the global batch is this
            x the replicas of the model's TensorFlow strategy, read when training starts.
        global_batch: the run's global batch (every device of every process), where
            known (a JAX distribution has no strategy to read it from).
        target_frames: predicted time steps per example (`target_frames()`).
        log_dir: the TensorBoard folder for the scalar `throughput/frames_per_second`
            (the run's tensorboard/train, next to Keras' own train scalars); None: log only.
        windows_per_epoch: training windows in one epoch, so that a short last batch
            (or a split smaller than one batch) counts the windows it really holds;
            None when every batch is full (the data repeats).
    """

    def __init__(self, batch_size: int, target_frames: int, log_dir: str | Path | None = None,
                 windows_per_epoch: int | None = None, global_batch: int | None = None):
        super().__init__()
        self.batch_size = int(batch_size)
        self.known_global_batch = global_batch  # every device of every process
        self.windows_per_epoch = windows_per_epoch
        self.target_frames = int(target_frames)
        self.log_dir = None if log_dir is None else str(log_dir)
        self.history: list[float] = []
        self._writer = None

    @classmethod
    def for_run(cls, cfg, run, windows_per_epoch: int | None = None,
                global_batch: int | None = None) -> Throughput:
        return cls(cfg.trainer.batch_size, target_frames(cfg.data, cfg.model.form),
                   log_dir=run.tensorboard / "train", windows_per_epoch=windows_per_epoch,
                   global_batch=global_batch)

    def on_train_begin(self, logs=None):
        if self.known_global_batch:
            self.global_batch = int(self.known_global_batch)
        else:  # a TensorFlow strategy's replicas
            strategy = getattr(self.model, "distribute_strategy", None)
            self.global_batch = self.batch_size * int(getattr(strategy,
                                                              "num_replicas_in_sync", 1))
        self.precision = self.model.dtype_policy.name
        from framepred.devices import describe_devices

        self.device = describe_devices()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        self._first_end = None  # (time, steps) after the first execution
        self._last_end = None

    def on_train_batch_end(self, batch, logs=None):
        # `batch` is the last step of the execution (steps_per_execution >= 1).
        mark = (time.perf_counter(), int(batch) + 1)
        if self._first_end is None:
            self._first_end = mark
        self._last_end = mark

    def on_epoch_end(self, epoch, logs=None):
        if self._last_end is None:
            return
        (first_time, first_steps), (last_time, last_steps) = self._first_end, self._last_end
        if last_steps > first_steps:
            steps, seconds, note = last_steps - first_steps, last_time - first_time, ""
            windows = self._windows(last_steps) - self._windows(first_steps)
        else:
            steps, seconds = last_steps, last_time - self._epoch_start
            windows = self._windows(last_steps)
            note = " (one execution: tracing included)"
        frames_per_second = windows * self.target_frames / max(seconds, 1e-9)
        self.history.append(frames_per_second)
        log.info("epoch %d: %.1f frames/s | device: %s | precision: %s | %d step(s), %d "
                 "window(s) x %d target steps (global batch %d) in %.2f s%s", epoch + 1,
                 frames_per_second, self.device, self.precision, steps, windows,
                 self.target_frames, self.global_batch, seconds, note)
        self._write(epoch, frames_per_second)

    def _windows(self, steps: int) -> int:
        """Windows in the first `steps` steps of an epoch: full batches, but no more
        than the epoch holds (its last batch may be short)."""
        windows = steps * self.global_batch
        return windows if self.windows_per_epoch is None else min(windows,
                                                                  self.windows_per_epoch)

    def _write(self, epoch: int, frames_per_second: float) -> None:
        if self.log_dir is None:
            return
        if self._writer is None:
            self._writer = SummaryWriter(self.log_dir)
        self._writer.scalar(TAG, frames_per_second, step=epoch,
                            description="training frames (batch x target steps) per second")
        self._writer.text("throughput/runtime",
                          f"device: {self.device} | precision: {self.precision}", step=epoch)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
