"""What a start in a run folder means, and stopping so that it can resume.

- `prepare(cfg, run)`: before any work, decides what a start in an existing run
  folder means: resume, continue a finished run to more epochs, say it is complete,
  or (`trainer.resume=false`) move the earlier artifacts aside and start fresh.
- `mark_complete(run, epochs)`: the marker that makes a second start a no-op.
- `graceful_stop()`: SIGTERM / Ctrl-C ask the backup callback
  (`framepred.callbacks.checkpoints.Backup`) to finish the current step, save a
  resumable state and exit 143 / 130; a second Ctrl-C kills at once, and so does a
  stop not done within `STOP_WAIT_S` (a step that waits on another
  process of a job may never end).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
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
# How long a stop may take to finish the current step and save. In a job of several
# processes both are steps that every process joins, so a process that got no signal,
# or is gone, would hold the others forever; past this the process exits unsaved.
STOP_WAIT_S = 60.0


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
                     f"current step and saving a resumable state (at most {STOP_WAIT_S:g} s; "
                     "again to stop at once)\n").encode())


_STOP = _StopRequest()
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class _Watchdog:
    """Ends the process when a stop that a signal asked for is not done in `wait_s`.

    It hears of the signal through `signal.set_wakeup_fd`, which the interpreter's
    C-level handler writes to on arrival, not from `_StopRequest.handle`: that runs
    only when the main thread runs Python, and a step waiting on another process
    holds the main thread in native code. For the same reason it also ends the
    process at a second signal, which the Python handler would otherwise leave to
    the default action.
    """

    def __init__(self, wait_s: float):
        self.wait_s = float(wait_s)
        self._lock = threading.Lock()  # disarm and give-up exclude each other
        self._disarmed = False
        self._reader, writer = socket.socketpair()
        writer.setblocking(False)  # set_wakeup_fd requires it
        self._writer = writer
        self._previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        self._thread = threading.Thread(target=self._watch, name="framepred-stop-watchdog",
                                        daemon=True)
        self._thread.start()

    def disarm(self) -> None:
        """The stop is done, or training ended without one: nothing more to watch."""
        with self._lock:
            self._disarmed = True
        signal.set_wakeup_fd(self._previous)
        self._writer.close()  # the watching thread reads the end of the stream and returns
        self._thread.join(timeout=1.0)

    def _watch(self) -> None:
        first, deadline = None, None
        with self._reader:
            while True:
                wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                self._reader.settimeout(wait)
                try:
                    received = self._reader.recv(16)  # one byte per signal: its number
                except TimeoutError:
                    self._give_up(first, f"did not finish within {self.wait_s:g} s")
                    return
                if not received:
                    return
                for signum in received:
                    if signum not in _STOP_SIGNALS:
                        continue
                    if first is not None:
                        self._give_up(signum, "were cut short by a second signal")
                        return
                    first, deadline = signum, time.monotonic() + self.wait_s

    def _give_up(self, signum: int, why: str) -> None:
        with self._lock:
            if self._disarmed:
                return
            # os._exit drops what Python still buffers; the main thread may hold a
            # stream's lock, so the flush gets a thread of its own and a time limit.
            flusher = threading.Thread(target=_flush_output, daemon=True)
            flusher.start()
            flusher.join(2.0)
            os.write(2, (f"framepred: error: stopped by {signal.Signals(signum).name}: the "
                         f"current step and the save of a resumable state {why} (in a job of "
                         "several processes every step waits for all of them), so this state "
                         "was not saved; the same command resumes from the last one that "
                         "was\n").encode())
            os._exit(128 + int(signum))


def _flush_output() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass  # closed or replaced: nothing left to keep


def stop_requested() -> int | None:
    """The signal number of a pending SIGTERM / Ctrl-C inside `graceful_stop`, else None."""
    return _STOP.received


@contextmanager
def graceful_stop():
    """While training: SIGTERM and SIGINT ask the `Backup` callback to stop cleanly,
    within `STOP_WAIT_S` seconds, or the process exits unsaved (`_Watchdog`)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _STOP.received = None
    previous = {s: signal.signal(s, _STOP.handle) for s in _STOP_SIGNALS}
    watchdog = _Watchdog(STOP_WAIT_S)
    try:
        yield
    finally:
        watchdog.disarm()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _STOP.received = None
