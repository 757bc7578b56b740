"""Training that survives interruption, bad numbers and bad input (issue 7).

- `prepare(cfg, run)`: before any work, decides what a start in an existing run
  folder means: resume, continue a finished run to more epochs, say it is complete,
  or (`trainer.resume=false`) move the earlier artifacts aside and start fresh.
- `Backup`: Keras' `BackupAndRestore`, written atomically. Every save goes to its own
  `backup/state-<epoch>-<step>/` folder, filled under a temporary name and renamed, so
  a kill mid-write leaves the previous state whole; the two newest are kept and an
  unreadable newest one falls back to the one before, with a warning (none readable:
  one error line, nothing overwritten).
- `NonFiniteGuard`: a NaN or inf loss stops training before anything is saved from it.
- `graceful_stop()`: SIGTERM / Ctrl-C finish the current step, save a resumable state
  and exit 143 / 130; a second Ctrl-C kills at once.
- `mark_complete(run, epochs)`: the marker that makes a second start a no-op.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from framepred.config import option_value
from framepred.errors import FramepredError
from framepred.runs import RunPaths, write_json

log = logging.getLogger(__name__)

# trainer.* keys a resumed run may change; any other difference in data/model/loss/
# trainer would splice two different trainings into one run folder.
RESUMABLE_CHANGES = frozenset({
    "epochs", "resume", "verbose", "backup_every_steps", "profile_batch", "forecast_images",
    "learning_rate", "clipnorm", "validation_steps", "jit_compile", "steps_per_execution",
})
ARTIFACTS = ("checkpoints", "tensorboard", "backup", "metrics.json", "config.yaml",
             "complete.json")
STATES_KEPT = 2


class TrainingStopped(FramepredError):
    """SIGTERM or Ctrl-C: a resumable state was saved; exit 128 + signal number."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class NonFiniteLoss(FramepredError):
    """The loss became NaN or inf; nothing from the bad step was saved."""

    exit_code = 3


# --- run folder: complete, resume, continue, start fresh ---------------------------


def mark_complete(run: RunPaths, epochs: int) -> None:
    """Written after metrics.json: the run trained `epochs` epochs and was evaluated."""
    write_json(run.complete, {"epochs": int(epochs), "finished": time.time()})


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _has_training_state(run: RunPaths) -> bool:
    return (run.complete.exists() or any(_states(run.backup))
            or any(run.checkpoints.glob("*.keras")))


def config_differences(saved: Any, current: Any) -> list[str]:
    """`key: saved -> current` for each difference a resume cannot absorb."""
    from omegaconf import OmegaConf

    def flat(node, prefix=""):
        if isinstance(node, dict):
            for key, value in node.items():
                yield from flat(value, f"{prefix}{key}.")
        else:
            yield prefix[:-1], node

    before = dict(flat(OmegaConf.to_container(saved, resolve=True, enum_to_str=True)))
    after = dict(flat(OmegaConf.to_container(current, resolve=True, enum_to_str=True)))
    changed = []
    for key in sorted(set(before) | set(after)):
        section, _, name = key.partition(".")
        if section not in ("data", "model", "loss", "trainer"):
            continue
        if section == "trainer" and name in RESUMABLE_CHANGES:
            continue
        if key not in before:
            continue  # a key added to the schema since: the saved run used its default
        if before.get(key) != after.get(key):
            changed.append(f"{key}: {before.get(key)} -> {after.get(key)}")
    return changed


@dataclass
class Start:
    """What `prepare` decided: `complete` means there is nothing to train."""

    complete: bool = False
    payload: dict | None = None


def prepare(cfg: Any, run: RunPaths) -> Start:
    """Looks at what an earlier start left in `run` and decides what this one does.

    Call after `config.validate` and before the config is saved, so a refused start
    changes no file of the earlier run.
    """
    from omegaconf import OmegaConf

    epochs = int(cfg.trainer.epochs)
    if not cfg.trainer.resume:
        _move_aside(run)
        return Start()
    if not _has_training_state(run):
        return Start()
    if run.config.exists():
        changed = config_differences(OmegaConf.load(run.config), cfg)
        if changed:
            raise FramepredError(
                f"run folder {run.root} holds a run with another config "
                f"({'; '.join(changed[:3])}{'; ...' if len(changed) > 3 else ''}); to resume "
                "it use the same settings, or start elsewhere with hydra.run.dir=outputs/NEW, "
                "or start afresh here with trainer.resume=false (keeps the old files aside)"
            )
    marker = _read_json(run.complete)
    if marker is not None:
        done = int(marker.get("epochs", 0))
        if epochs <= done:
            message = (f"run in {run.root} is already complete ({done} epochs); nothing to do. "
                       f"More epochs: trainer.epochs={done + 1} or more; a fresh run: "
                       "trainer.resume=false")
            log.info(message)
            return Start(complete=True, payload=_read_json(run.metrics))
        log.info("run in %s finished %d epochs; continuing to trainer.epochs=%d",
                 run.root, done, epochs)
        run.complete.unlink()
    return Start()


def _move_aside(run: RunPaths) -> None:
    """trainer.resume=false: an earlier run's files go to <run>/replaced/<time>/, never
    deleted, so a finished run cannot be lost to a mistyped override."""
    present = [name for name in ARTIFACTS if (run.root / name).exists()]
    if not present:
        return
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    aside, count = run.root / "replaced" / stamp, 1
    while aside.exists():  # two fresh starts within one second
        count += 1
        aside = run.root / "replaced" / f"{stamp}_{count}"
    aside.mkdir(parents=True)
    for name in present:
        os.replace(run.root / name, aside / name)
    run.checkpoints.mkdir(exist_ok=True)
    run.tensorboard.mkdir(exist_ok=True)
    log.warning("trainer.resume=false: moved the earlier run's %s to %s; starting fresh",
                ", ".join(present), aside)


# --- the backup: BackupAndRestore, written atomically ------------------------------


def _states(backup: Path) -> list[Path]:
    """Saved states, newest first; names sort by (epoch, step)."""
    if not backup.is_dir():
        return []
    return sorted((p for p in backup.iterdir() if p.name.startswith("state-")), reverse=True)


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

    def __init__(self, backup_dir: Path, save_freq="epoch", flush=()):
        super().__init__(str(backup_dir), save_freq=save_freq, delete_checkpoint=False)
        self.backup = Path(backup_dir)
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
        received = _STOP.received
        if received is None:
            return
        if save:
            self._save_model()
        name = signal.Signals(received).name
        raise TrainingStopped(
            f"stopped by {name} {where}; resumable state saved in {self.backup}; run the "
            "same command (same hydra.run.dir) to resume",
            exit_code=128 + int(received),
        )

    def _save_model(self):
        for callback in self.flush:
            for writer in getattr(callback, "_writers", {}).values():
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
        for old in _states(self.backup)[STATES_KEPT:]:
            shutil.rmtree(old, ignore_errors=True)

    def _restore(self):
        for leftover in self.backup.glob(".staging-*"):  # a save that a kill cut short
            shutil.rmtree(leftover, ignore_errors=True)
        states = _states(self.backup)
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
            self.model._initial_epoch = epoch
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


# --- bad numbers ------------------------------------------------------------------


def likely_causes(cfg: Any) -> list[str]:
    """Hints for a non-finite loss, from the settings that often cause one."""
    trainer, loss = cfg.trainer, cfg.loss
    causes = []
    if option_value(trainer.precision) == "mixed_float16":
        causes.append("trainer.precision=mixed_float16 can overflow float16 (max 65504); "
                      "try trainer.precision=mixed_bfloat16 or float32")
    if float(trainer.learning_rate) > 1e-2:
        causes.append(f"trainer.learning_rate={trainer.learning_rate} may be too high; try 1e-3")
    if trainer.clipnorm is None:
        causes.append("no gradient clipping; try trainer.clipnorm=1.0")
    name, structural = option_value(loss.name), option_value(loss.structural)
    if name == "ms_ssim" or (name == "blend" and structural == "ms_ssim"):
        causes.append("MS-SSIM raises negative contrast terms to fractional powers, which can "
                      "give NaN early in training; try loss=blend loss.structural=ssim or "
                      "loss=ssim")
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


# --- signals ----------------------------------------------------------------------


class _StopRequest:
    def __init__(self):
        self.received: int | None = None

    def handle(self, signum, frame):
        self.received = signum
        # A second Ctrl-C (or SIGTERM) kills at once.
        signal.signal(signum, signal.SIG_DFL)
        os.write(2, (f"\nframepred: {signal.Signals(signum).name} received; finishing the "
                     "current step and saving a resumable state (again to stop at once)\n"
                     ).encode())


_STOP = _StopRequest()


@contextmanager
def graceful_stop():
    """While training: SIGTERM and SIGINT ask the `Backup` callback to stop cleanly."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _STOP.received = None
    previous = {s: signal.signal(s, _STOP.handle) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _STOP.received = None

