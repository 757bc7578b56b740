"""Interruption: resume after SIGKILL / SIGTERM with the right epoch count and
TensorBoard steps, finished runs left alone, atomic saves that keep the last good file."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from framepred import callbacks as framepred_callbacks
from framepred.callbacks import Checkpoints
from framepred.errors import FramepredError
from framepred.run import resume
from framepred.run.folder import RunPaths
from tests.helpers.cli import FAST_FLOW, REPO, error_lines, run_jax_script
from tests.helpers.files import snapshot

# Epochs of ~1-2 s on 2 CPU cores: long enough to kill a run between two of them.
SLOW_EPOCHS = ["debug=fast", "trainer.epochs=3", "data.train_sequences=32",
               "trainer.forecast_images=0"]


def epoch_steps(run: Path, tag: str = "epoch_loss") -> dict[str, list[int]]:
    """The steps of `tag` in every event file of train/ and validation/, read with
    TensorBoard's own loader (no purging of restarted steps, unlike EventAccumulator)."""
    steps = {}
    for split in ("train", "validation"):
        found = []
        for events in sorted((run / "tensorboard" / split).glob("events.out.tfevents.*"),
                             key=lambda p: p.stat().st_mtime_ns):
            for event in EventFileLoader(str(events)).Load():
                found += [event.step for value in event.summary.value if value.tag == tag]
        steps[split] = found
    return steps


# --- finished runs, changed configs, trainer.resume=false ---------------------------


def test_finished_run_is_left_alone(fast_run, compose_train, caplog):
    from framepred.train import train

    before = snapshot(fast_run)
    with caplog.at_level(logging.INFO, logger="framepred"):
        payload = train(compose_train([*FAST_FLOW]), run_dir=fast_run)
    assert payload == json.loads((fast_run / "metrics.json").read_text())
    assert snapshot(fast_run) == before
    assert f"run in {fast_run} is already complete (1 epochs); nothing to do" in caplog.text


def test_more_epochs_continue_a_finished_run(fast_run, compose_train, tmp_path, caplog):
    from framepred.train import train

    run = tmp_path / "run"
    shutil.copytree(fast_run, run)
    with caplog.at_level(logging.INFO, logger="framepred"):
        train(compose_train([*FAST_FLOW, "trainer.epochs=2"]), run_dir=run)
    assert "finished 1 epochs; continuing to trainer.epochs=2" in caplog.text
    assert json.loads((run / "complete.json").read_text())["epochs"] == 2
    assert epoch_steps(run) == {"train": [0, 1], "validation": [0, 1]}


def test_kill_during_final_evaluation_resumes_to_evaluation_only(fast_run, compose_train,
                                                                tmp_path):
    """All epochs backed up, no complete.json: the next start trains nothing more."""
    from framepred.train import train

    run = tmp_path / "run"
    shutil.copytree(fast_run, run)
    (run / "complete.json").unlink()
    (run / "metrics.json").unlink()
    train(compose_train([*FAST_FLOW]), run_dir=run)
    assert json.loads((run / "complete.json").read_text())["epochs"] == 1
    assert epoch_steps(run) == {"train": [0], "validation": [0]}


def test_no_loadable_backup_stops_without_touching_the_checkpoints(fast_run, compose_train,
                                                                  tmp_path):
    """Training from the start would overwrite last.keras and restart TensorBoard steps."""
    from framepred.train import train

    run = tmp_path / "run"
    shutil.copytree(fast_run, run)
    (run / "complete.json").unlink()
    (state,) = (run / "backup").iterdir()
    (state / "latest.weights.h5").write_bytes(b"\x89HDF\r\n")
    before = snapshot(run / "checkpoints")
    with pytest.raises(FramepredError, match=r"no backup in .* can be loaded .*"
                                             r"trainer\.resume=false"):
        train(compose_train([*FAST_FLOW, "trainer.epochs=2"]), run_dir=run)
    assert snapshot(run / "checkpoints") == before


def test_resume_with_another_model_is_refused(fast_run, compose_train, tmp_path):
    from framepred.train import train

    run = tmp_path / "run"
    shutil.copytree(fast_run, run)
    before = snapshot(run)
    with pytest.raises(FramepredError, match=r"model\.filters: \[4\] -> \[8\].*"
                                             r"trainer\.resume=false"):
        train(compose_train([*FAST_FLOW, "model.filters=[8]"]), run_dir=run)
    assert snapshot(run) == before


def test_resume_false_moves_the_finished_run_aside(fast_run, compose_train, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(fast_run, run)
    before = snapshot(run)
    resume.prepare(compose_train([*FAST_FLOW, "trainer.resume=false"]), RunPaths(run))
    (aside,) = (run / "replaced").iterdir()
    # Every file is still there, byte for byte, under replaced/<time>/.
    moved = snapshot(aside)
    artifacts = {path.name for path in RunPaths(run).artifacts()}
    assert {k: v[0] for k, v in moved.items()} == {
        k: v[0] for k, v in before.items() if k.split("/")[0] in artifacts}
    assert not (run / "metrics.json").exists() and not (run / "complete.json").exists()
    assert not any((run / "checkpoints").iterdir())


def test_fresh_start_leaves_no_normalization_of_the_run_it_replaces(compose_train, tmp_path):
    """Issue 22: a zscore run, then trainer.resume=false without normalization in the same
    folder. The second run's checkpoint must carry no statistics: evaluate and predict
    would scale its inputs by the first run's."""
    import zipfile

    from framepred.run import trained
    from framepred.train import train

    run = RunPaths(tmp_path / "run2")
    train(compose_train(["debug=fast", "data.normalize=zscore",
                         "model.output_activation=linear"]), run_dir=run.root)
    assert json.loads(run.normalization.read_text())["kind"] == "zscore"
    train(compose_train(["debug=fast", "trainer.resume=false"]), run_dir=run.root)

    (aside,) = run.replaced.iterdir()
    assert json.loads((aside / "normalization.json").read_text())["kind"] == "zscore"
    assert not run.normalization.exists()
    for checkpoint in (run.best, run.last):
        with zipfile.ZipFile(checkpoint) as archive:
            assert "framepred/config.yaml" in archive.namelist()
            assert "framepred/normalization.json" not in archive.namelist()
        assert not trained.normalization(checkpoint, channels=1).active


def test_complete_json_comes_after_the_tensorboard_scores(fast_run, compose_train, tmp_path,
                                                          monkeypatch):
    """A kill while the forecast scores go to TensorBoard leaves the run incomplete, so
    the next start evaluates it again instead of calling it done."""
    from framepred.callbacks import dashboards
    from framepred.train import train

    class Killed(Exception):
        pass

    def killed(*args, **kwargs):
        raise Killed

    run = tmp_path / "run"
    shutil.copytree(fast_run, run)
    (run / "complete.json").unlink()  # all epochs done: this start only evaluates
    monkeypatch.setattr(dashboards, "log_forecast_metrics", killed)
    with pytest.raises(Killed):
        train(compose_train([*FAST_FLOW]), run_dir=run)
    assert (run / "metrics.json").is_file() and not (run / "complete.json").exists()


# --- checkpoints: the best value survives a resume, a failed save keeps the old file -


def tiny_model(value: float) -> keras.Model:
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1, kernel_initializer="zeros",
                                                   bias_initializer="zeros")(inputs))
    model.set_weights([np.zeros((2, 1)), np.full((1,), value)])
    return model


def test_resumed_checkpoints_remember_the_best(tmp_path):
    run = RunPaths(tmp_path).create()
    first = Checkpoints(run)
    first.set_model(tiny_model(1.0))
    first.on_train_begin()
    first.on_epoch_end(0, {"val_loss": 0.2})
    resumed = Checkpoints(run)  # a new process: the best comes from best.json
    resumed.set_model(tiny_model(2.0))
    resumed.on_train_begin()
    resumed.on_epoch_end(1, {"val_loss": 0.5})
    assert keras.models.load_model(run.best).get_weights()[1][0] == 1.0
    assert keras.models.load_model(run.last).get_weights()[1][0] == 2.0


def test_disk_full_names_the_path_and_keeps_the_best(tmp_path, monkeypatch):
    run = RunPaths(tmp_path).create()
    checkpoints = Checkpoints(run)
    model = tiny_model(1.0)
    checkpoints.set_model(model)
    checkpoints.on_epoch_end(0, {"val_loss": 0.5})
    good = run.best.read_bytes()

    def full_disk(path, *args, **kwargs):
        Path(path).write_bytes(b"PK\x03\x04 half a zip")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(model, "save", full_disk)
    with pytest.raises(FramepredError, match=r"could not write .*last\.keras .*No space left "
                                             r"on device.*previous version is kept"):
        checkpoints.on_epoch_end(1, {"val_loss": 0.1})
    assert run.best.read_bytes() == good
    assert [p.name for p in run.checkpoints.iterdir() if p.name.startswith(".")] == []
    assert keras.models.load_model(run.last).get_weights()[1][0] == 1.0


# --- graceful stop in-process, unreadable newest backup ---------------------------


class SendSignal(keras.callbacks.Callback):
    """Test-only: the process signals itself after step `step` of epoch `epoch`."""

    def __init__(self, epoch: int, step: int, signum=signal.SIGTERM):
        super().__init__()
        self.epoch, self.step, self.signum, self.current = epoch, step, signum, -1

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.current, batch + 1) == (self.epoch, self.step):
            os.kill(os.getpid(), self.signum)


def test_sigterm_saves_state_and_a_corrupt_newest_backup_falls_back(
        tmp_path, compose_train, monkeypatch, caplog):
    from framepred.train import train

    cfg = compose_train(["debug=fast", "trainer.epochs=2", "trainer.forecast_images=0"])
    original = framepred_callbacks.build_callbacks
    monkeypatch.setattr(framepred_callbacks, "build_callbacks",
                        lambda *args, **kwargs: [SendSignal(epoch=1, step=1),
                                                 *original(*args, **kwargs)])
    with pytest.raises(resume.TrainingStopped) as stopped:
        train(cfg, run_dir=tmp_path)
    assert stopped.value.exit_code == 143
    assert "stopped by SIGTERM at epoch 2, step 1" in str(stopped.value)
    # The hint names the folder to resume in, quoted for the shell.
    assert f"run the same command with hydra.run.dir={tmp_path.resolve()}" in str(stopped.value)
    # Signal handling is back to normal once fit() has returned.
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    states = sorted(p.name for p in (tmp_path / "backup").iterdir())
    assert states == ["state-000001-00000000", "state-000001-00000001"]

    # A kill mid-write cannot truncate a state (they are renamed whole), but a disk
    # can: break the newest and resume from the one before.
    (tmp_path / "backup" / states[-1] / "latest.weights.h5").write_bytes(b"\x89HDF\r\n")
    monkeypatch.setattr(framepred_callbacks, "build_callbacks", original)
    with caplog.at_level("INFO", logger="framepred"):
        train(cfg, run_dir=tmp_path)
    assert "state-000001-00000001 is unreadable" in caplog.text
    assert "falling back to the previous one" in caplog.text
    assert re.search(r"resuming from \S+state-000001-00000000: after epoch 1", caplog.text)
    assert json.loads((tmp_path / "complete.json").read_text())["epochs"] == 2
    assert epoch_steps(tmp_path) == {"train": [0, 1], "validation": [0, 1]}


# --- real processes: SIGKILL and SIGTERM, then the same command again -------------


def start(run: Path, *extra: str, folder_given: bool = True) -> tuple[subprocess.Popen, Path]:
    """`python -m framepred.train` into `run`; with `folder_given=False`, run from inside
    `run` without hydra.run.dir, as a user who did not pick a folder."""
    log = run.parent / f"{run.name}-{time.monotonic_ns()}.out"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    folder = [f"hydra.run.dir={run}"] if folder_given else []
    if not folder_given:
        run.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "framepred.train", *SLOW_EPOCHS, *folder, *extra],
        cwd=REPO if folder_given else run, env=env, stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
    )
    return process, log


def wait_for_state(run: Path, process: subprocess.Popen, name: str, timeout=240) -> None:
    deadline = time.monotonic() + timeout
    while not (run / "backup" / name).is_dir():
        assert process.poll() is None, "training ended before the state was saved"
        assert time.monotonic() < deadline, f"no {name} after {timeout} s"
        time.sleep(0.02)


def finish(run: Path, *extra: str) -> str:
    process, log = start(run, *extra)
    assert process.wait(timeout=300) == 0, log.read_text()[-3000:]
    return log.read_text()


@pytest.mark.slow
def test_sigkill_then_same_command_resumes_and_finishes(tmp_path):
    run = tmp_path / "run"
    process, _ = start(run)
    wait_for_state(run, process, "state-000001-00000000")
    process.kill()
    process.wait()
    assert not (run / "complete.json").exists()

    output = finish(run)
    assert re.search(r"resuming from \S+state-00000[12]-00000000: after epoch [12]", output)
    assert "resuming from" in (run / "train.log").read_text()
    assert json.loads((run / "complete.json").read_text())["epochs"] == 3
    assert epoch_steps(run) == {"train": [0, 1, 2], "validation": [0, 1, 2]}
    keras.models.load_model(run / "checkpoints" / "best.keras")
    # A finished run started again is left alone (test_finished_run_is_left_alone);
    # with more epochs it goes on (test_more_epochs_continue_a_finished_run).


@pytest.mark.slow
def test_sigterm_stops_cleanly_then_resumes(tmp_path):
    """Without hydra.run.dir the run lands in a timestamped folder; the stop message
    names it, and the command it prints resumes there."""
    process, log = start(tmp_path / "work", folder_given=False)
    deadline = time.monotonic() + 240
    while not list((tmp_path / "work").glob("outputs/framepred/*/backup/state-000001-*")):
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 143
    output = log.read_text()
    assert "SIGTERM received; finishing the current step" in output
    assert re.search(r"framepred: error: stopped by SIGTERM .*resumable state saved", output)
    assert "Traceback" not in output
    (run,) = (tmp_path / "work" / "outputs" / "framepred").iterdir()
    assert f"to resume, run the same command with hydra.run.dir={run}" in output

    output = finish(run)
    assert "resuming from" in output
    assert json.loads((run / "complete.json").read_text())["epochs"] == 3
    assert epoch_steps(run) == {"train": [0, 1, 2], "validation": [0, 1, 2]}


def test_first_ctrl_c_asks_to_stop_and_the_second_would_kill():
    before = signal.getsignal(signal.SIGINT)
    with resume.graceful_stop():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)  # Python runs the handler at the next bytecode boundary
        assert resume._STOP.received == signal.SIGINT
        # Not our handler any more: a second Ctrl-C ends the process at once.
        assert signal.getsignal(signal.SIGINT) == signal.SIG_DFL
        assert signal.getsignal(signal.SIGTERM) == resume._STOP.handle
    assert signal.getsignal(signal.SIGINT) == before
    assert resume._STOP.received is None


# A stop in time leaves the process alone; then a step that never returns (in a job, a
# collective step that a gone process never joins) while a SIGTERM waits on it.
_STOP_NEVER_DONE = """
import os, signal, threading, time
from framepred.run import resume

resume.STOP_WAIT_S = 0.5
with resume.graceful_stop():
    os.kill(os.getpid(), signal.SIGTERM)
    while resume.stop_requested() is None:
        time.sleep(0.01)
time.sleep(1.0)  # past the bound: a watchdog left armed would end the process here
print("a stop in time: the process goes on", flush=True)
with resume.graceful_stop():
    os.kill(os.getpid(), signal.SIGTERM)
    threading.Event().wait(60)
print("the step returned", flush=True)
"""


def test_a_stop_that_cannot_finish_exits_unsaved_within_the_bound():
    result = run_jax_script(_STOP_NEVER_DONE, timeout=120)
    assert result.returncode == 143, result.stderr[-3000:]
    assert "a stop in time: the process goes on" in result.stdout
    assert "the step returned" not in result.stdout
    last = error_lines(result.stderr)[-1]
    assert last.startswith("framepred: error: stopped by SIGTERM: ") and \
        "did not finish within 0.5 s" in last and "this state was not saved" in last, last
