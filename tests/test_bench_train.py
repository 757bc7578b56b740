"""scripts/bench_train_path.py's cases, table and reading of a run's records, and
scripts/gpu_check.sh's syntax (no training here: the scripts themselves are run by hand,
see docs/performance.md)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys

import pytest

from tests.helpers.cli import REPO


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_train_path",
                                                  REPO / "scripts/bench_train_path.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_path_cases_and_table(bench):
    args = bench.parse_args(["--train-steps", "5", "--steps-per-execution",
                             "1,4", "--precisions", "float32,mixed_bfloat16",
                             "--overrides", "experiment=moving_mnist 'data.digit_size=[28,28]'"])
    cases = bench.train_path_cases(args)
    # Whole executions, at least two per epoch; the user's overrides after the fixed ones.
    assert [c["steps"] for c in cases] == [5, 5, 8, 8]
    assert cases[3]["overrides"][-4:] == ["experiment=moving_mnist", "data.digit_size=[28,28]",
                                          "trainer.precision=mixed_bfloat16",
                                          "trainer.steps_per_execution=4"]
    row = dict(model="moving_mnist", steps_per_execution=1, gflop_frame=6.0, wall_s=1.0)
    rows = [dict(row, backend="tensorflow", precision="float32", fps=100.0, achieved=1.8),
            dict(row, backend="jax", precision="float32", fps=50.0, achieved=0.9),
            dict(row, backend="jax", precision="mixed_bfloat16", fps=150.0, achieved=2.7),
            dict(backend="jax", overrides=[], error="RuntimeError: out of memory")]
    table = bench.train_path_table(rows, peak_tflops=10)
    assert table[0][5:7] == ["ratio vs TF", "bf16/f32"]
    assert table[2][5] == "0.50" and table[3][6] == "3.00" and table[3][-2] == "27%"
    assert table[4][4].startswith("failed: RuntimeError")
    # No --precisions: the config's own precision.
    assert bench.parse_args([]).precisions == []


def test_throughput_is_read_from_the_runs_own_events(bench, tmp_path):
    """The frames/s a run recorded (Throughput's scalars, epochs counted from 0 there),
    read back by TensorBoard's reader as {epoch from 1: frames/s}."""
    from framepred.callbacks.summaries import SummaryWriter
    from framepred.callbacks.throughput import TAG

    with SummaryWriter(tmp_path) as writer:
        for epoch, fps in enumerate([12.5, 40.0, 42.0]):
            writer.scalar(TAG, fps, step=epoch)
        writer.scalar("epoch_loss", 0.3, step=0)
    assert bench.run_throughput(tmp_path) == {1: 12.5, 2: 40.0, 3: 42.0}
    assert bench.run_throughput(tmp_path / "empty") == {}


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_gpu_check_script_parses():
    done = subprocess.run(["bash", "-n", str(REPO / "scripts/gpu_check.sh")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_bench_convlstm_prints_a_row_per_layer():
    """scripts/bench_convlstm.py runs end to end on a tiny shape (its timings are not
    checked: benchmarks are read by hand)."""
    result = subprocess.run(
        [sys.executable, "scripts/bench_convlstm.py", "--shape", "2,2,4,4,1", "--filters", "2",
         "--warmup", "1", "--steps", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split("|")[0].strip() for line in result.stdout.splitlines() if "|" in line]
    assert rows[1:] == ["keras", "keras unroll", "framepred"]
