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
        self.keep_if_best(logs.get(self.monitor), epoch + 1)

    def keep_if_best(self, value, epoch: int) -> None:
        """Saves the model as `best.keras` if `value` beats the best so far; epoch 0 is
        the model before training."""
        if value is not None and math.isfinite(value) and value < self.best:
            if math.isfinite(self.best):
                log.info("epoch %d: %s improved %.5f -> %.5f, saving %s",
                         epoch, self.monitor, self.best, value, self.run.best)
            else:
                log.info("epoch %d: %s %.5f, saving %s", epoch, self.monitor, value,
                         self.run.best)
            self.best = float(value)
            atomic_write(self.run.best, self.model.save)
            write_json(self.record, {"monitor": self.monitor, "value": self.best,
                                     "epoch": epoch})


def keep_start_as_best(model, run: RunPaths, validation, steps=None) -> None:
    """A fresh run's `best.keras` starts as the untrained model, scored on `validation`.

    The model starts as the copy-last-frame forecast (`models.init_head`), so training
    has to beat copy-last on the validation loss before `best.keras`, which evaluate and
    predict read, changes: on footage where little moves, a run can only improve on
    doing nothing.
    """
    if run.best.exists():  # resumed: the best so far stands
        return
    # Built now, so that best.keras holds the optimizer's slots as later saves do,
    # and loading it does not warn that they are missing.
    model.optimizer.build(model.trainable_variables)
    start = model.evaluate(validation, steps=steps, verbose=0, return_dict=True)["loss"]
    log.info("before training: val_loss %.5f (the starting point best.keras keeps "
             "until an epoch beats it)", start)
    checkpoints = Checkpoints(run)
    checkpoints.set_model(model)
    checkpoints.keep_if_best(float(start), epoch=0)


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
