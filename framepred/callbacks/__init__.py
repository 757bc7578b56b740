"""Every Keras callback a training run uses, and the one list they are built in.

- `checkpoints`: best/last checkpoints, the untrained start, the resumable backup;
- `guards`: the NaN guard;
- `dashboards`: TensorBoard epoch scalars off TensorFlow, forecast images, hparams and
  forecast scores (`summaries`: the event writer they share);
- `throughput`: frames/s, device and precision per epoch.
"""

from __future__ import annotations

import keras

from framepred.callbacks import dashboards
from framepred.callbacks.checkpoints import Backup, Checkpoints
from framepred.callbacks.guards import NonFiniteGuard, SameWeights, likely_causes
from framepred.callbacks.throughput import Throughput
from framepred.run.folder import RunPaths


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
    guards = [NonFiniteGuard(likely_causes(cfg)), *([SameWeights()] if processes > 1 else [])]
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
