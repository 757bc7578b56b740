"""Every Keras callback a training run uses, and the one list they are built in.

- `checkpoints`: best/last checkpoints, the untrained start, the resumable backup;
- `guards`: the NaN guard;
- `dashboards`: TensorBoard epoch scalars off TensorFlow, forecast images, hparams and
  forecast scores (`summaries`: the event writer they share);
- `throughput`: frames/s, device and precision per epoch.
"""

from __future__ import annotations

import atexit

import keras

from framepred.callbacks import dashboards
from framepred.callbacks.checkpoints import Backup, Checkpoints
from framepred.callbacks.guards import NonFiniteGuard, SameWeights, likely_causes
from framepred.callbacks.throughput import Throughput
from framepred.console import native_start_up
from framepred.run.folder import RunPaths


class QuietFirstSteps(keras.callbacks.Callback):
    """TensorFlow's known native lines, written while it builds the first training and
    validation step, are dropped as at start-up (framepred.console); any other line
    written then passes through at the end of that step."""

    def __init__(self):
        super().__init__()
        self._open, self._done = None, set()

    def _begin(self, kind):
        if kind not in self._done and self._open is None:
            self._open = native_start_up()
            self._open.__enter__()
            # A step that raises never reaches _end: what it wrote (the traceback, our
            # one-line error) is written through when the process exits.
            atexit.register(self._end, kind)

    def _end(self, kind):
        atexit.unregister(self._end)
        if self._open is not None:
            self._done.add(kind)
            self._open, opened = None, self._open
            opened.__exit__(None, None, None)

    def on_train_batch_begin(self, batch, logs=None):
        self._begin("train")

    def on_train_batch_end(self, batch, logs=None):
        self._end("train")

    def on_test_batch_begin(self, batch, logs=None):
        self._begin("test")

    def on_test_batch_end(self, batch, logs=None):
        self._end("test")


def build_callbacks(cfg, run: RunPaths, windows_per_epoch: int | None = None,
                    normalization=None, global_batch: int | None = None,
                    writes: bool = True, processes: int = 1,
                    start: float | None = None) -> list[keras.callbacks.Callback]:
    """The callbacks of a training run, in the order they must run. `windows_per_epoch`:
    the training windows of one pass (None when the data repeats: every batch is full),
    so that throughput counts the frames that went through. `writes`: False on the
    processes of a multi-process job other than 0, which guard, restore and join
    every collective save, but write nothing. `start`: the untrained model's
    val_loss (`keep_start_as_best`; None when resumed)."""
    trainer = cfg.trainer
    save_freq = trainer.backup_every_steps or "epoch"
    # First: a NaN step, or processes that disagree, raise before anything saves.
    guards = [QuietFirstSteps(), NonFiniteGuard(likely_causes(cfg)),
              *([SameWeights()] if processes > 1 else [])]
    if not writes:
        return [*guards, Checkpoints(run, writes=False, start=start),
                Backup(run.backup, save_freq=save_freq, writes=False)]
    profile = tuple(trainer.profile_batch) if trainer.profile_batch else 0
    if keras.backend.backend() == "tensorflow":
        epoch_scalars = keras.callbacks.TensorBoard(log_dir=str(run.tensorboard),
                                                    profile_batch=profile)
    else:  # Keras' TensorBoard callback writes with tf.summary: TensorFlow only
        epoch_scalars = dashboards.EpochScalars(run.tensorboard, profile_batch=profile)
    callbacks = [
        *guards,
        Checkpoints(run, start=start),
        epoch_scalars,  # epoch_<metric> in train/ and validation/, the profiler
        *dashboards.build_callbacks(cfg, run, normalization),  # forecast images, hparams
        # frames/s, device, precision
        Throughput.for_run(cfg, run, windows_per_epoch, global_batch),
    ]
    # Last: the backup marks an epoch done only once everything above has written it.
    return [*callbacks, Backup(run.backup, save_freq=save_freq, flush=callbacks)]
