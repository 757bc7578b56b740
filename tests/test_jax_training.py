"""`python -m framepred.train` under KERAS_BACKEND=jax on a machine without TensorFlow:
train -> evaluate -> predict, data parallelism on virtual CPU devices, a two-process
job on localhost (gloo), and the mistakes that stop such a run.

TensorFlow is made unimportable (`tests.helpers.cli.without_tensorflow`), so any
import of it on these paths fails the test. The one-device run is the reference the
data-parallel and two-process runs must match: the same global batch of the same
windows gives the same loss, up to the order of the float sums.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.cli import (
    FAST_FLOW,
    REPO,
    error_lines,
    run_in_one_process,
    without_tensorflow,
)
from tests.helpers.events import accumulator, plugin_name, scalars
from tests.helpers.run_if import run_if

pytestmark = run_if(extra="jax")

TRAIN = "framepred.train"
# The default model's flow head, as users train it (debug=fast alone: the residual head).
FAST = [*FAST_FLOW, "trainer.epochs=2", "trainer.verbose=0"]
# The same global batch of 4 as FAST's one device with batch_size=4.
TWO_DEVICES = ["trainer.distribution=data_parallel", "trainer.virtual_cpu_devices=2",
               "trainer.batch_size=2"]
# Two processes, one device and 2 windows each: also a global batch of 4.
TWO_PROCESSES = ["trainer.distribution=data_parallel", "trainer.batch_size=2",
                 "trainer.num_processes=2"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def epoch_losses(run, split: str = "train") -> dict[int, float]:
    return scalars(accumulator(run / "tensorboard" / split), "epoch_loss")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return without_tensorflow(tmp_path_factory.mktemp("env"))


@pytest.fixture(scope="module")
def jax_runs(tmp_path_factory, env):
    """One import under JAX without TensorFlow, then each command in a forked child."""
    tmp = tmp_path_factory.mktemp("jax_runs")
    clip = np.random.default_rng(0).uniform(size=(5, 16, 16, 1)).astype(np.float32)
    np.save(tmp / "clip.npy", clip)
    one, two = tmp / "one", tmp / "two"
    cases = {
        "one": (TRAIN, [*FAST, f"hydra.run.dir={one}"]),
        "two": (TRAIN, [*FAST, *TWO_DEVICES, f"hydra.run.dir={two}"]),
        "evaluate": ("framepred.evaluate", [f"checkpoint={one}/checkpoints/best.keras",
                                            f"hydra.run.dir={tmp / 'evaluated'}"]),
        "predict": ("framepred.predict", [f"checkpoint={one}/checkpoints/best.keras",
                                          f"input={tmp / 'clip.npy'}",
                                          f"output={tmp / 'predicted'}", "predict.steps=4"]),
        "mirrored-on-jax": (TRAIN, ["debug=fast", "trainer.distribution=mirrored",
                                    f"hydra.run.dir={tmp / 'bad-mirrored'}"]),
        "process-id-too-high": (TRAIN, ["debug=fast", *TWO_PROCESSES, "trainer.process_id=2",
                                        "trainer.coordinator=127.0.0.1:1",
                                        f"hydra.run.dir={tmp / 'bad-process'}"]),
        "coordinator-unreachable": (TRAIN, [
            "debug=fast", *TWO_PROCESSES, "trainer.process_id=1",
            f"trainer.coordinator=127.0.0.1:{free_port()}", "trainer.coordinator_timeout=2",
            f"hydra.run.dir={tmp / 'bad-coordinator'}"]),
        # Two devices drop a short last batch: 2 validation windows give no batch of 4.
        "val-split-without-a-batch": (TRAIN, ["debug=fast", *TWO_DEVICES,
                                              "data.val_sequences=2",
                                              f"hydra.run.dir={tmp / 'bad-val'}"]),
    }
    order = list(cases)
    results = run_in_one_process([{"module": m, "args": a} for m, a in cases.values()], tmp,
                                 env=env, timeout=600)
    return dict(zip(order, results)), tmp


def test_train_evaluate_predict_under_jax_without_tensorflow(jax_runs):
    results, tmp = jax_runs
    for name in ("one", "evaluate", "predict"):
        assert results[name]["rc"] == 0, (name, results[name]["stderr"][-3000:])
    run = tmp / "one"
    assert "device: 1 CPU" in results["one"]["stdout"]  # Hydra logs to stdout
    for name in ("best.keras", "last.keras"):
        assert (run / "checkpoints" / name).is_file()
    assert (run / "metrics.json").is_file() and (run / "complete.json").is_file()
    # Every dashboard of a TensorFlow run, written without TensorFlow.
    assert sorted(epoch_losses(run)) == [0, 1]
    assert sorted(epoch_losses(run, "validation")) == [0, 1]
    train_events = accumulator(run / "tensorboard" / "train")
    assert sorted(scalars(train_events, "epoch_learning_rate")) == [0, 1]
    assert sorted(scalars(train_events, "throughput/frames_per_second")) == [0, 1]
    images = accumulator(run / "tensorboard" / "images")
    assert plugin_name(images, "forecast/sequence_0") == "images"
    forecast = accumulator(run / "tensorboard" / "forecast" / "model")
    assert sorted(scalars(forecast, "forecast/ssim")) == [1, 2, 3]
    hparams = accumulator(run / "tensorboard")
    assert {plugin_name(hparams, tag) for tag in hparams.Tags()["tensors"]} == {"hparams"}

    assert "beats best baseline?" in results["evaluate"]["stdout"]
    assert (tmp / "evaluated" / "metrics.json").is_file()
    forecast = np.load(tmp / "predicted" / "forecast.npy")
    assert forecast.shape == (4, 16, 16, 1) and np.isfinite(forecast).all()


def test_data_parallel_on_two_devices_matches_one_device(jax_runs):
    results, tmp = jax_runs
    assert results["two"]["rc"] == 0, results["two"]["stderr"][-3000:]
    assert "replicas: 2 | global batch 4 (2 per replica x 2 replicas)" in results["two"]["stdout"]
    for split in ("train", "validation"):
        one, two = epoch_losses(tmp / "one", split), epoch_losses(tmp / "two", split)
        assert sorted(one) == sorted(two) == [0, 1]
        for epoch in one:
            assert abs(one[epoch] - two[epoch]) < 1e-4, (split, epoch, one, two)


@pytest.mark.parametrize("case, expect", [
    ("mirrored-on-jax", ["trainer.distribution=mirrored", "data_parallel"]),
    ("process-id-too-high", ["trainer.process_id=2", "trainer.num_processes=2"]),
    ("coordinator-unreachable", ["trainer.coordinator=127.0.0.1:",
                                 "trainer.coordinator_timeout=2"]),
    ("val-split-without-a-batch", ["the val split has 2 window(s)", "global batch of 4",
                                   "trainer.batch_size=2 x 2 devices"]),
])
def test_bad_distributed_input_stops_with_one_line(jax_runs, case, expect):
    results, tmp = jax_runs
    result = results[case]
    lines = error_lines(result["stderr"])
    assert result["rc"] == 2, result["stderr"][-3000:]
    assert len(lines) == 1 and lines[0].startswith("framepred: error:"), lines
    assert all(text in lines[0] for text in expect), lines[0]
    folder = tmp / f"bad-{case.split('-')[0]}"
    written = [path.relative_to(folder) for path in folder.rglob("*") if path.is_file()
               and ".hydra" not in path.parts and path.name != "train.log"]
    assert written == []  # Hydra's own record and log only: framepred wrote nothing


def start_job(args: list[str], env: dict, logs: Path, processes: int = 2,
              extra=None, timeout: float = 300) -> list[dict]:
    """Starts `processes` CLI processes of one job; returns their finished results.
    Output goes to files: a process blocked on a full pipe would stall the others at
    their next collective step. A job still running after `timeout` s is killed and
    fails the test."""
    port = free_port()
    logs.mkdir(parents=True, exist_ok=True)
    started = []
    for index in range(processes):
        out, err = (open(logs / f"{index}.{kind}", "w+") for kind in ("out", "err"))
        started.append((subprocess.Popen(
            [sys.executable, "-m", TRAIN, *args, f"trainer.process_id={index}",
             f"trainer.coordinator=127.0.0.1:{port}", *(extra or {}).get(index, [])],
            cwd=REPO, env={**_base_env(), **env}, stdout=out, stderr=err, text=True),
            out, err))
    finished = []
    for process, out, err in started:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for other, *_ in started:
                other.kill()  # a job waiting on itself: no process of it may outlive the test
            pytest.fail(f"the job still ran after {timeout} s; see {logs}")
        out.seek(0), err.seek(0)
        finished.append({"rc": process.returncode, "stdout": out.read(), "stderr": err.read()})
        out.close(), err.close()
    return finished


def _base_env() -> dict:
    import os

    return {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}


@pytest.mark.slow
def test_two_processes_on_localhost_train_resume_and_agree(jax_runs, env, tmp_path):
    results, tmp = jax_runs
    run = tmp_path / "job"
    job = [*FAST_FLOW, "trainer.verbose=0", *TWO_PROCESSES, f"hydra.run.dir={run}"]
    first = start_job([*job, "trainer.epochs=1"], env, tmp_path / "first")
    for index, result in enumerate(first):
        assert result["rc"] == 0, (index, result["stderr"][-3000:])
    # Killed or finished, a job restarts with the same command: every process resumes.
    second = start_job([*job, "trainer.epochs=2"], env, tmp_path / "second")
    digests = []
    for index, result in enumerate(second):
        assert result["rc"] == 0, (index, result["stderr"][-3000:])
        assert "resuming from" in result["stdout"], result["stdout"][-2000:]
        digests.append([line.rsplit("digest ", 1)[1] for line in result["stdout"].splitlines()
                        if "weights are identical on all 2 processes" in line])
    assert len(digests[0]) == 1 and digests[0] == digests[1]  # epoch 2, both processes

    # Process 0 alone wrote the run; its losses are the one-device run's.
    assert (run / "metrics.json").is_file() and (run / ".hydra").is_dir()
    assert "process 1" not in (run / "train.log").read_text()
    one = epoch_losses(tmp / "one")
    job_losses = epoch_losses(run)
    assert sorted(job_losses) == [0, 1]
    for epoch in job_losses:
        assert abs(job_losses[epoch] - one[epoch]) < 1e-4, (epoch, job_losses, one)


def test_uneven_devices_over_processes_stop_both(env, tmp_path):
    """One device on process 0, two on process 1: a global batch of 3 windows cannot be
    split evenly over the two processes."""
    job = ["debug=fast", "trainer.distribution=data_parallel", "trainer.batch_size=1",
           "trainer.num_processes=2", f"hydra.run.dir={tmp_path / 'job'}"]
    results = start_job(job, env, tmp_path / "logs",
                        extra={1: ["trainer.virtual_cpu_devices=2"]})
    for result in results:
        lines = error_lines(result["stderr"])
        assert result["rc"] == 2, result["stderr"][-3000:]
        assert len(lines) == 1 and "global batch of 3" in lines[0], lines
    assert not (tmp_path / "job" / "checkpoints").exists()


def test_a_split_without_a_batch_stops_both_processes(env, tmp_path):
    """Issue 22: 4 validation windows, a global batch of 8 over two processes. A
    sharded batch drops a short remainder, so validation would get no batch, and
    both processes waited for it forever; now both stop before any step."""
    run = tmp_path / "job"
    job = ["debug=fast", "trainer.epochs=2", "trainer.distribution=data_parallel",
           "trainer.num_processes=2", f"hydra.run.dir={run}"]
    results = start_job(job, env, tmp_path / "logs", timeout=120)
    for result in results:
        lines = error_lines(result["stderr"])
        assert result["rc"] == 2, result["stderr"][-3000:]
        assert len(lines) == 1 and lines[0].startswith("framepred: error: the val split has "
                                                       "4 window(s)"), lines
        assert "global batch of 8" in lines[0], lines
    assert not (run / "config.yaml").exists()  # refused before the run was recorded
