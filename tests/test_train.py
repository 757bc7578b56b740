"""End to end: a tiny real training run writes everything README promises."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from framepred.run.folder import RunPaths
from tests.helpers.cli import run_in_one_process

METRICS = ("ssim", "ssim_openstl", "psnr", "mse", "mae", "mse_sum", "mae_sum")
ENTRIES = ("model", "copy_last", "background", "blank")


def test_fast_run_writes_its_outputs(fast_run):
    run = RunPaths(fast_run)
    for path in (run.config, run.best, run.last, run.metrics):
        assert path.is_file(), path
    assert any(run.tensorboard.rglob("events.out.tfevents.*"))


def test_metrics_json_layout(fast_run):
    payload = json.loads(RunPaths(fast_run).metrics.read_text())
    assert set(payload) >= {*ENTRIES, "beats_best_baseline"}
    for entry in ENTRIES:
        for name in METRICS:
            values = payload[entry][name]
            assert len(values["per_step"]) == 3  # debug=fast forecasts 3 frames
            assert values["mean"] == pytest.approx(sum(values["per_step"]) / 3)
    # The copy-last baseline repeats the last context frame: its error grows with the step.
    assert payload["copy_last"]["mse"]["per_step"][0] <= payload["copy_last"]["mse"]["per_step"][-1]
    for name in METRICS:
        verdict = payload["beats_best_baseline"][name]
        assert verdict["higher_is_better"] == (name in ("ssim", "ssim_openstl", "psnr"))
        assert len(verdict["per_step"]) == len(verdict["best_baseline"]) == 3
        assert all(type(beats) is bool for beats in verdict["per_step"])
        assert set(verdict["best_baseline"]) <= set(ENTRIES[1:])
        assert verdict["every_step"] == all(verdict["per_step"])
        assert type(verdict["mean"]) is bool and verdict["best_baseline_of_mean"] in ENTRIES[1:]


def test_checkpoint_reloads_with_plain_load_model(fast_run):
    """In a fresh interpreter: `import framepred` is all a checkpoint needs."""
    code = (
        "import sys, framepred, keras, numpy as np\n"
        "for path in sys.argv[1:]:\n"
        "    model = keras.models.load_model(path)\n"
        "    out = model.predict_on_batch(np.zeros((1, 3, 16, 16, 1), 'float32'))\n"
        "    assert out.shape == (1, 3, 16, 16, 1), out.shape\n"
        "    print('reloaded', path, model.loss.__class__.__name__)\n"
    )
    checkpoints = [str(fast_run / "checkpoints" / name) for name in ("best.keras", "last.keras")]
    result = subprocess.run([sys.executable, "-c", code, *checkpoints], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    for path in checkpoints:
        assert f"reloaded {path} SSIMLoss" in result.stdout


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory, request):
    """One run, and the sweep of three where its (slow) test is selected, through the
    real CLI: one import, then a forked child per command."""
    tmp = tmp_path_factory.mktemp("cli")
    cases = {"single": ["debug=fast", "loss=mse", f"hydra.run.dir={tmp / 'cli_run'}"]}
    if any(item.name == "test_sweep_runs_keep_apart" for item in request.session.items):
        cases["sweep"] = ["-m", "debug=fast", "loss=ssim,mse,blend",
                          f"hydra.sweep.dir={tmp / 'sweep'}"]
    done = run_in_one_process([{"module": "framepred.train", "args": args}
                               for args in cases.values()], tmp, timeout=900)
    return dict(zip(cases, done)), tmp


def test_cli_run_writes_log_config_and_summary(cli_runs):
    results, tmp = cli_runs
    result, run_dir = results["single"], tmp / "cli_run"
    assert result["rc"] == 0, result["stderr"][-3000:]
    assert (run_dir / "train.log").is_file()
    assert (run_dir / "config.yaml").read_text().count("name: mse") == 1
    assert f"tensorboard --logdir {run_dir.parent}" in result["stdout"] + result["stderr"]
    assert "copy_last" in result["stdout"] and "beats best baseline?" in result["stdout"]


@pytest.mark.slow
def test_sweep_runs_keep_apart(cli_runs):
    results, tmp_path = cli_runs
    result = results["sweep"]
    assert result["rc"] == 0, result["stderr"][-3000:]
    runs = sorted(p for p in (tmp_path / "sweep").iterdir() if p.is_dir())
    # Job numbers: names without `=` or `,`, which paste back as `checkpoint=<path>`.
    assert [p.name for p in runs] == ["0", "1", "2"]
    for run_dir, loss in zip(runs, ("ssim", "mse", "blend")):
        assert (run_dir / "metrics.json").is_file()
        assert (run_dir / "checkpoints" / "best.keras").is_file()
        assert (run_dir / "overrides.txt").read_text() == f"debug=fast\nloss={loss}\n"
        assert f"name: {loss}" in (run_dir / "config.yaml").read_text()


def test_best_checkpoint_never_falls_below_the_copy_last_start(tmp_path, compose_train):
    """A run whose epochs cannot beat the untrained model keeps it as best.keras: the
    copy-last forecast, exactly (to the sigmoid's 1e-3), and metrics.json scores it so."""
    import keras
    import numpy as np

    from framepred import models
    from framepred.train import train

    # Steps of 1e-12 are below float32's resolution for every weight but the head's
    # zeros, and move the loss by less than its own: no epoch beats the start.
    cfg = compose_train(["debug=fast", "trainer.epochs=2", "trainer.learning_rate=1e-12",
                         "trainer.forecast_images=0"])
    payload = train(cfg, run_dir=tmp_path)
    run = RunPaths(tmp_path)
    assert json.loads(run.best_record.read_text())["epoch"] == 0
    best = keras.models.load_model(run.best)
    context = np.random.default_rng(0).uniform(0.2, 0.8, (2, 3, 16, 16, 1)).astype("float32")
    np.testing.assert_allclose(models.forecast(best, context, 3),
                               np.repeat(context[:, -1:], 3, axis=1), atol=1.001e-3)
    for metric in ("ssim", "mse"):
        assert payload["model"][metric]["mean"] == pytest.approx(
            payload["copy_last"][metric]["mean"], abs=1e-3)
