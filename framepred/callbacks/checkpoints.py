"""Every file a run saves its model to, written by callbacks.

- `Checkpoints`: `last.keras` after every epoch, `best.keras` at the lowest val_loss.
- `keep_start_as_best`: a fresh run's `best.keras` starts as the untrained model.
- `Backup`: Keras' `BackupAndRestore`, written atomically. Every save goes to its own
  `backup/state-<epoch>-<step>/` folder, filled under a temporary name and renamed, so
  a kill mid-write leaves the previous state whole; the two newest are kept and an
  unreadable newest one falls back to the one before, with a warning (none readable:
  one error line, nothing overwritten).

Reading a trained run back is `framepred.run.trained`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shlex
import shutil
import signal
import tempfile
import time
import zipfile
from pathlib import Path

import keras

from framepred import keras_internals
from framepred.errors import FramepredError
from framepred.run.folder import (
    RUN_MEMBERS,
    RunPaths,
    atomic_write,
    saved_states,
    scratch_write,
    write_json,
)
from framepred.run.resume import TrainingStopped, stop_requested

STATES_KEPT = 2

log = logging.getLogger(__name__)


class Checkpoints(keras.callbacks.Callback):
    """`last.keras` after every epoch, `best.keras` at the lowest `monitor`.

    Both are written to a temporary file and renamed, so a kill mid-write keeps the
    previous good checkpoint whole. The best value goes to `best.json` beside them
    (`RunPaths.best_record`), so a resumed run does not overwrite `best.keras` with a
    worse epoch.

    `writes=False` (processes of a job other than 0): every save still runs, since
    reading sharded variables is a collective step, but into a throwaway file.
    """

    def __init__(self, run: RunPaths, monitor: str = "val_loss", writes: bool = True,
                 start: float | None = None):
        super().__init__()
        self.run = run
        self.monitor = monitor
        self.best = math.inf
        self.writes = writes
        # The untrained model's score (`keep_start_as_best`), known to every process
        # of a job at once, where best.json, written by process 0 only, might not yet be.
        self.start = start
        self._write = atomic_write if writes else scratch_write

    def on_train_begin(self, logs=None):
        if self.start is not None:
            self.best = self.start
            return
        try:
            saved = json.loads(self.run.best_record.read_text())
        except (OSError, ValueError):
            return
        if saved.get("monitor") == self.monitor and self.run.best.exists():
            self.best = float(saved["value"])
            log.info("best %s so far: %.5f (epoch %s)", self.monitor, self.best,
                     saved.get("epoch"))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self._write(self.run.last, self._save)
        self.keep_if_best(logs.get(self.monitor), epoch + 1)

    def _save(self, path) -> None:
        """The model, with the run's config inside, so a copied checkpoint travels."""
        self.model.save(path)
        if self.writes:
            embed_run_config(path, self.run)

    def keep_if_best(self, value, epoch: int) -> None:
        """Saves the model as `best.keras` if `value` beats the best so far; epoch 0 is
        the model before training."""
        if value is not None and math.isfinite(value) and value < self.best:
            if self.writes and math.isfinite(self.best):
                log.info("epoch %d: %s improved %.5f -> %.5f, saving %s",
                         epoch, self.monitor, self.best, value, self.run.best)
            elif self.writes:
                log.info("epoch %d: %s %.5f, saving %s", epoch, self.monitor, value,
                         self.run.best)
            self.best = float(value)
            self._write(self.run.best, self._save)
            if self.writes:
                write_json(self.run.best_record, {"monitor": self.monitor, "value": self.best,
                                         "epoch": epoch})


def embed_run_config(checkpoint, run: RunPaths) -> None:
    """Adds the run's composed config (`config.yaml`) and its normalization statistics
    (`normalization.json`) to a saved `.keras` zip (`RUN_MEMBERS`); Keras' loader reads
    only its own members and skips them. `evaluate` and `predict` then know the data a
    checkpoint was trained on even when it was copied out of its run folder
    (`framepred.run.trained`)."""
    with zipfile.ZipFile(checkpoint, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, member in RUN_MEMBERS.items():
            if (run.root / name).is_file():
                archive.write(run.root / name, member)


def keep_start_as_best(model, run: RunPaths, validation, steps=None,
                       writes: bool = True) -> float | None:
    """A fresh run's `best.keras` starts as the untrained model, scored on `validation`.

    The model starts as the copy-last-frame forecast (`models.init_head`), so training
    has to beat copy-last on the validation loss before `best.keras`, which evaluate and
    predict read, changes: on footage where little moves, a run can only improve on
    doing nothing. Every process of a job scores and saves (collective steps); only
    the one that `writes` keeps the file. Returns the score (None when resumed).
    """
    if run.best.exists():  # resumed: the best so far stands
        # One validation step builds the compiled loss and metrics as a fresh start's
        # scoring does. Otherwise fit builds them from a peek at the first training
        # batch, and a resumed run's data stream would run one batch ahead.
        model.evaluate(validation, steps=1, verbose=0)
        return None
    # Built now, so that best.keras holds the optimizer's slots as later saves do,
    # and loading it does not warn that they are missing.
    model.optimizer.build(model.trainable_variables)
    start = model.evaluate(validation, steps=steps, verbose=0, return_dict=True)["loss"]
    if writes:
        log.info("before training: val_loss %.5f (the starting point best.keras keeps "
                 "until an epoch beats it)", start)
    checkpoints = Checkpoints(run, writes=writes)
    checkpoints.set_model(model)
    checkpoints.keep_if_best(float(start), epoch=0)
    return float(start)


def resume_epoch(backup: Path) -> int:
    """The epoch `Backup` will resume at: the newest saved state's (0: none)."""
    for state in saved_states(backup):
        try:
            return int(json.loads((state / "training_metadata.json").read_text())["epoch"])
        except (OSError, ValueError, KeyError):
            continue  # Backup falls back to the one before, with a warning
    return 0


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Backup(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` whose saves are atomic and double.

    Keras writes `latest.weights.h5` and `training_metadata.json` in place, so a kill
    mid-write can leave a truncated file, or new weights with an old epoch number.
    Here each state is a folder `state-<epoch>-<step>/` written under a temporary
    name and renamed whole. Restore tries the newest state, then the one before.

    On SIGTERM / Ctrl-C (`graceful_stop`) it saves the state after the current step
    and raises `TrainingStopped`. A mid-epoch state resumes with the weights of that
    step and repeats the epoch from its first batch (Keras restores epochs, not steps).
    """

    def __init__(self, backup_dir: Path, save_freq="epoch", flush=(), writes: bool = True):
        super().__init__(str(backup_dir), save_freq=save_freq, delete_checkpoint=False)
        self.backup = Path(backup_dir)
        self.writes = writes  # False on the processes of a job other than 0
        self.flush = flush  # callbacks with writers to flush first (TensorBoard)
        self._step = 0  # steps done in the current epoch

    def on_train_begin(self, logs=None):
        self._restore()

    def on_epoch_begin(self, epoch, logs=None):
        # Keras counts from 0 in every fit(), so a mid-epoch save after a resume would
        # record epoch 0; the epoch fit() says is the true one.
        self._current_epoch = epoch
        self._step = 0

    def on_epoch_end(self, epoch, logs=None):
        self._step = 0
        super().on_epoch_end(epoch, logs)
        if self.save_freq != "epoch":
            self._save_model()  # every epoch end is a resume point
        self._stop_if_asked(f"after epoch {epoch + 1}", save=False)

    def on_train_batch_end(self, batch, logs=None):
        self._step = batch + 1
        super().on_train_batch_end(batch, logs)
        self._stop_if_asked(f"at epoch {self._current_epoch + 1}, step {batch + 1}")

    def on_test_batch_end(self, batch, logs=None):
        self._stop_if_asked(f"during validation of epoch {self._current_epoch + 1}")

    def on_train_end(self, logs=None):
        pass  # keep the state: trainer.epochs=<more> continues a finished run from it

    def _stop_if_asked(self, where: str, save: bool = True):
        received = stop_requested()
        if received is None:
            return
        if save:
            self._save_model()
        name = signal.Signals(received).name
        # Without hydra.run.dir a rerun would start a new timestamped folder: name it.
        folder = shlex.quote(f"hydra.run.dir={self.backup.parent.resolve()}")
        raise TrainingStopped(
            f"stopped by {name} {where}; resumable state saved in {self.backup}; to resume, "
            f"run the same command with {folder}",
            exit_code=128 + int(received),
        )

    def _save_model(self):
        if not self.writes:  # the collective read of the weights, into a throwaway file
            scratch_write(Path("latest.weights.h5"),
                          lambda path: self.model.save_weights(path, overwrite=True))
            return
        for callback in self.flush:
            for writer in keras_internals.summary_writers(callback):
                writer.flush()
        state = {"epoch": int(self._current_epoch), "batch": int(self._step),
                 "saved": time.time()}
        name = f"state-{state['epoch']:06d}-{state['batch']:08d}"
        try:
            self.backup.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.backup))
            try:
                weights = staging / "latest.weights.h5"
                self.model.save_weights(str(weights), overwrite=True)
                (staging / "training_metadata.json").write_text(json.dumps(state))
                for path in (weights, staging / "training_metadata.json", staging):
                    _fsync(path)
                final = self.backup / name
                if final.exists():  # the same point saved again (a stop right after a save)
                    shutil.rmtree(final)
                os.replace(staging, final)
                _fsync(self.backup)
            finally:
                if staging.exists():
                    shutil.rmtree(staging, ignore_errors=True)
        except OSError as error:
            raise FramepredError(
                f"could not save the training backup in {self.backup} "
                f"({error.strerror or error}); the previous backup is kept"
            ) from None
        for old in saved_states(self.backup)[STATES_KEPT:]:
            shutil.rmtree(old, ignore_errors=True)

    def _restore(self):
        for leftover in self.backup.glob(".staging-*") if self.writes else ():
            shutil.rmtree(leftover, ignore_errors=True)  # a save that a kill cut short
        states = saved_states(self.backup)
        if not states:
            return
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        reason = ""
        for state in states:
            try:
                meta = json.loads((state / "training_metadata.json").read_text())
                epoch, batch = int(meta["epoch"]), int(meta["batch"])
                self.model.load_weights(str(state / "latest.weights.h5"))
            except Exception as error:  # noqa: BLE001  (h5py, OSError, ValueError, KeyError...)
                reason = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
                log.warning("backup %s is unreadable (%s); falling back to the previous one",
                            state, reason)
                continue
            keras_internals.set_initial_epoch(self.model, epoch)
            self._current_epoch = epoch
            where = f"after epoch {epoch}" if batch == 0 else \
                f"at epoch {epoch + 1}, step {batch} (repeating epoch {epoch + 1} from its start)"
            log.info("resuming from %s: %s; %d of %d epochs done",
                     state, where, epoch, self.params.get("epochs", 0))
            return
        # Training from the start here would overwrite last.keras and restart the
        # TensorBoard steps of a run that had progressed; the user decides instead.
        raise FramepredError(
            f"no backup in {self.backup} can be loaded into this model ({reason}); the "
            "files are damaged or the model code changed since. Start afresh in this folder "
            "with trainer.resume=false (the old files are kept aside) or use another "
            "hydra.run.dir"
        )
