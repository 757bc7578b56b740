"""Every Keras callback a training run uses, and the one list they are built in.

- `checkpoints`: best/last checkpoints, the untrained start, the resumable backup;
- `guards`: the NaN guard;
- `dashboards`: TensorBoard forecast images, hparams and forecast scores;
- `throughput`: frames/s, device and precision per epoch.
"""

from __future__ import annotations

import keras

from framepred.callbacks import dashboards
from framepred.callbacks.checkpoints import Backup, Checkpoints
from framepred.callbacks.guards import NonFiniteGuard, likely_causes
from framepred.callbacks.throughput import Throughput
from framepred.run.folder import RunPaths


def build_callbacks(cfg, run: RunPaths, windows_per_epoch: int | None = None,
                    normalization=None) -> list[keras.callbacks.Callback]:
    """The callbacks of a training run, in the order they must run. `windows_per_epoch`:
    the training windows of one pass (None when the data repeats: every batch is full),
    so that throughput counts the frames that went through."""
    trainer = cfg.trainer
    profile = tuple(trainer.profile_batch) if trainer.profile_batch else 0
    callbacks = [
        # First: a NaN step raises before anything below saves from it.
        NonFiniteGuard(likely_causes(cfg)),
        Checkpoints(run),
        keras.callbacks.TensorBoard(log_dir=str(run.tensorboard), profile_batch=profile),
        *dashboards.build_callbacks(cfg, run, normalization),  # forecast images, hparams
        Throughput.for_run(cfg, run, windows_per_epoch),  # frames/s, device, precision
    ]
    # Last: the backup marks an epoch done only once everything above has written it.
    return [*callbacks, Backup(run.backup, save_freq=trainer.backup_every_steps or "epoch",
                               flush=callbacks)]
