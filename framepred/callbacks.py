"""Callbacks a run trains with: NaN guard, checkpoints, TensorBoard, resumable backup."""

from __future__ import annotations

import json
import logging
import math

import keras

from framepred import dashboards, resilience
from framepred.runs import RunPaths, atomic_write, write_json
from framepred.throughput import Throughput

log = logging.getLogger(__name__)


class Checkpoints(keras.callbacks.Callback):
    """`last.keras` after every epoch, `best.keras` at the lowest `monitor`.

    Both are written to a temporary file and renamed, so a kill mid-write keeps the
    previous good checkpoint whole. The best value goes to `best.json` beside them, so
    a resumed run does not overwrite `best.keras` with a worse epoch.
    """

    def __init__(self, run: RunPaths, monitor: str = "val_loss"):
        super().__init__()
        self.run = run
        self.monitor = monitor
        self.best = math.inf

    @property
    def record(self):
        return self.run.checkpoints / "best.json"

    def on_train_begin(self, logs=None):
        try:
            saved = json.loads(self.record.read_text())
        except (OSError, ValueError):
            return
        if saved.get("monitor") == self.monitor and self.run.best.exists():
            self.best = float(saved["value"])
            log.info("best %s so far: %.5f (epoch %s)", self.monitor, self.best,
                     saved.get("epoch"))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        atomic_write(self.run.last, self.model.save)
        value = logs.get(self.monitor)
        if value is not None and math.isfinite(value) and value < self.best:
            log.info("epoch %d: %s improved %.5f -> %.5f, saving %s",
                     epoch + 1, self.monitor, self.best, value, self.run.best)
            self.best = float(value)
            atomic_write(self.run.best, self.model.save)
            write_json(self.record, {"monitor": self.monitor, "value": self.best,
                                     "epoch": epoch + 1})


def build_callbacks(cfg, run: RunPaths) -> list[keras.callbacks.Callback]:
    trainer = cfg.trainer
    profile = tuple(trainer.profile_batch) if trainer.profile_batch else 0
    callbacks = [
        # First: a NaN step raises before anything below saves from it.
        resilience.NonFiniteGuard(resilience.likely_causes(cfg)),
        Checkpoints(run),
        keras.callbacks.TensorBoard(log_dir=str(run.tensorboard), profile_batch=profile),
        *dashboards.build_callbacks(cfg, run),  # forecast images, hparams
        Throughput.for_run(cfg, run),  # frames/s, device, precision per epoch
    ]
    # Last: the backup marks an epoch done only once everything above has written it.
    return [*callbacks, resilience.Backup(run.backup, save_freq=trainer.backup_every_steps
                                          or "epoch", flush=callbacks)]
