"""What a start in a run folder means, and stopping so that it can resume.

- `prepare(cfg, run)`: before any work, decides what a start in an existing run
  folder means: resume, continue a finished run to more epochs, say it is complete,
  or (`trainer.resume=false`) move the earlier artifacts aside and start fresh.
- `mark_complete(run, epochs)`: the marker that makes a second start a no-op.
- `graceful_stop()`: SIGTERM / Ctrl-C ask the backup callback
  (`framepred.callbacks.checkpoints.Backup`) to finish the current step, save a
  resumable state and exit 143 / 130; a second Ctrl-C kills at once.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from framepred.errors import FramepredError
from framepred.run.folder import RunPaths, read_json, saved_states, write_json

log = logging.getLogger(__name__)

# trainer.* keys a resumed run may change; any other difference in data/model/loss/
# trainer would splice two different trainings into one run folder.
RESUMABLE_CHANGES = frozenset({
    "epochs", "resume", "verbose", "backup_every_steps", "profile_batch", "forecast_images",
    "learning_rate", "clipnorm", "validation_steps", "jit_compile", "steps_per_execution",
    # Where a job's processes meet may change from one start to the next.
    "coordinator", "process_id", "coordinator_timeout",
})


class TrainingStopped(FramepredError):
    """SIGTERM or Ctrl-C: a resumable state was saved; exit 128 + signal number."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


# --- run folder: complete, resume, continue, start fresh ---------------------------


def mark_complete(run: RunPaths, epochs: int) -> None:
    """Written last, after metrics.json, metrics.csv and the TensorBoard forecast
    scores: the run trained `epochs` epochs and was evaluated. A kill before it leaves
    a run that the next start evaluates again."""
    write_json(run.complete, {"epochs": int(epochs), "finished": time.time()})


def _has_training_state(run: RunPaths) -> bool:
    return (run.complete.exists() or any(saved_states(run.backup))
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


def prepare(cfg: Any, run: RunPaths, writes: bool = True) -> Start:
    """Looks at what an earlier start left in `run` and decides what this one does.

    Call after `config.validate` and before the config is saved, so a refused start
    changes no file of the earlier run. Only the process that `writes` (process 0 of a
    job) moves earlier files aside; every process reads the same decision.
    """
    from omegaconf import OmegaConf

    epochs = int(cfg.trainer.epochs)
    if not cfg.trainer.resume:
        if writes:
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
    marker = read_json(run.complete)
    if marker is not None:
        done = int(marker.get("epochs", 0))
        if epochs <= done:
            message = (f"run in {run.root} is already complete ({done} epochs); nothing to do. "
                       f"More epochs: trainer.epochs={done + 1} or more; a fresh run: "
                       "trainer.resume=false")
            log.info(message)
            return Start(complete=True, payload=read_json(run.metrics))
        log.info("run in %s finished %d epochs; continuing to trainer.epochs=%d",
                 run.root, done, epochs)
        if writes:
            run.complete.unlink()
    return Start()


def _move_aside(run: RunPaths) -> None:
    """trainer.resume=false: an earlier run's files go to <run>/replaced/<time>/, never
    deleted, so a finished run cannot be lost to a mistyped override."""
    present = [path for path in run.artifacts() if path.exists()]
    if not present:
        return
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    aside, count = run.replaced / stamp, 1
    while aside.exists():  # two fresh starts within one second
        count += 1
        aside = run.replaced / f"{stamp}_{count}"
    aside.mkdir(parents=True)
    for path in present:
        os.replace(path, aside / path.name)
    run.create()
    log.warning("trainer.resume=false: moved the earlier run's %s to %s; starting fresh",
                ", ".join(path.name for path in present), aside)


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


def stop_requested() -> int | None:
    """The signal number of a pending SIGTERM / Ctrl-C inside `graceful_stop`, else None."""
    return _STOP.received


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

