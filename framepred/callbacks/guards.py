"""Guards: a NaN or inf loss stops training before anything is saved from it; the
processes of a multi-process job check after every epoch that they hold the same
weights."""

from __future__ import annotations

import logging
import math
from typing import Any

import keras

from framepred.errors import FramepredError

log = logging.getLogger(__name__)


class NonFiniteLoss(FramepredError):
    """The loss became NaN or inf; nothing from the bad step was saved."""

    exit_code = 3


def likely_causes(cfg: Any) -> list[str]:
    """Hints for a non-finite loss, from the settings that often cause one."""
    trainer = cfg.trainer
    causes = []
    if trainer.precision == "mixed_float16":
        causes.append("trainer.precision=mixed_float16 can overflow float16 (max 65504); "
                      "try trainer.precision=mixed_bfloat16 or float32")
    if float(trainer.learning_rate) > 1e-2:
        causes.append(f"trainer.learning_rate={trainer.learning_rate} may be too high; try 1e-3")
    if trainer.clipnorm is None:
        causes.append("no gradient clipping; try trainer.clipnorm=1.0")
    return causes


class NonFiniteGuard(keras.callbacks.Callback):
    """Raises `NonFiniteLoss` at the first step whose loss is NaN or inf.

    It stands first among the callbacks, so no checkpoint or backup is written from
    the bad step; best.keras keeps the last good epoch.
    """

    def __init__(self, causes=()):
        super().__init__()
        self.causes = list(causes)
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        value = (logs or {}).get("loss")
        if value is None:
            return
        value = float(value)
        if not math.isfinite(value):
            hint = f"; likely cause: {' / '.join(self.causes)}" if self.causes else ""
            raise NonFiniteLoss(
                f"loss became {value} at epoch {self._epoch + 1}, step {batch + 1}; training "
                f"stopped, the checkpoints keep the last good epoch{hint}"
            )




class SameWeights(keras.callbacks.Callback):
    """After every epoch, each process of a multi-process job digests its own copy of
    the weights and the digests are compared: data parallelism keeps the replicas
    identical by construction, so a difference means a collective went wrong (or a
    host computed wrongly), and every later step would build on it. Stops the job."""

    def on_epoch_end(self, epoch, logs=None):
        from framepred.devices import fingerprints

        digests = fingerprints(self.model.weights)
        if len(set(digests)) != 1:
            raise FramepredError(
                f"after epoch {epoch + 1} the processes hold different weights (digests "
                f"{', '.join(digests)}); the job stops before saving from it")
        log.info("epoch %d: the weights are identical on all %d processes (digest %s)",
                 epoch + 1, len(digests), digests[0])
