"""Callbacks a run trains with: checkpoints, TensorBoard."""

from __future__ import annotations

import logging
import math

import keras

from framepred.runs import RunPaths, atomic_write

log = logging.getLogger(__name__)


class Checkpoints(keras.callbacks.Callback):
    """`last.keras` after every epoch, `best.keras` at the lowest `monitor`.

    Both are written to a temporary file and renamed, so a kill mid-write keeps the
    previous good checkpoint whole.
    """

    def __init__(self, run: RunPaths, monitor: str = "val_loss"):
        super().__init__()
        self.run = run
        self.monitor = monitor
        self.best = math.inf

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        atomic_write(self.run.last, self.model.save)
        value = logs.get(self.monitor)
        if value is not None and math.isfinite(value) and value < self.best:
            log.info("epoch %d: %s improved %.5f -> %.5f, saving %s",
                     epoch + 1, self.monitor, self.best, value, self.run.best)
            self.best = float(value)
            atomic_write(self.run.best, self.model.save)


def build_callbacks(cfg, run: RunPaths) -> list[keras.callbacks.Callback]:
    trainer = cfg.trainer
    profile = tuple(trainer.profile_batch) if trainer.profile_batch else 0
    return [
        Checkpoints(run),
        keras.callbacks.TensorBoard(log_dir=str(run.tensorboard), profile_batch=profile),
    ]
