"""`evaluate` and `predict` on the checkpoint of a finished debug=fast run."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from framepred.errors import FramepredError
from framepred.metrics import SUM_METRIC_NAMES
from framepred.scoreboard import BASELINES, MODEL_ENTRY, VERDICT_KEY
from tests.helpers.events import accumulator
from tests.helpers.motion import HEAD, PAN, RADIUS, panning_model

# debug=fast (configs/debug/fast.yaml): 16x16 gray frames, 3 context, 3 future.
CONTEXT, FUTURE, SIZE = 3, 3, 16
ENTRIES = ("model", "copy_last", "background", "blank")
METRICS = ("ssim", "ssim_openstl", "psnr", "mse", "mae", *SUM_METRIC_NAMES)


def _windows(compose_train, split="test", count=1):
    """Moving Digits windows as the debug=fast run sees them: [N, 6, 16, 16, 1]."""
    from framepred.callbacks import dashboards

    cfg = compose_train(["debug=fast"])
    return dashboards.first_windows(cfg.data, count, split=split)


def _evaluate(compose_train, checkpoint, out_dir, *overrides):
    from framepred.evaluate import evaluate

    cfg = compose_train([f"checkpoint={checkpoint}", *overrides], config_name="evaluate")
    return evaluate(cfg, out_dir=out_dir)


def _predict(compose_train, checkpoint, input_path, output, *overrides):
    from framepred.predict import predict

    cfg = compose_train([f"checkpoint={checkpoint}", f"input={input_path}",
                         f"output={output}", *overrides], config_name="predict")
    return predict(cfg)


# --- evaluate ------------------------------------------------------------------------


def test_evaluate_reproduces_the_runs_own_validation_metrics(compose_train, fast_run, tmp_path):
    payload = _evaluate(compose_train, fast_run / "checkpoints" / "best.keras", tmp_path)
    trained = json.loads((fast_run / "metrics.json").read_text())
    assert payload["split"] == "val"
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert (MODEL_ENTRY, *BASELINES) == ENTRIES
    for entry in ENTRIES:
        for metric in METRICS:
            # Same checkpoint, same validation windows as training's final evaluation.
            np.testing.assert_allclose(written[entry][metric]["per_step"],
                                       trained[entry][metric]["per_step"], rtol=1e-4)
    assert written["data"]["frame_size"] == [SIZE, SIZE]  # from the run's config.yaml
    assert set(written[VERDICT_KEY]) == set(METRICS)
    _check_verdict(written)


def _check_verdict(payload):
    """The verdict names, per step, the best baseline and whether the model beats it."""
    for metric in ("ssim", "mse"):
        verdict = payload[VERDICT_KEY][metric]
        pick = max if metric == "ssim" else min
        for step in range(FUTURE):
            scores = {entry: payload[entry][metric]["per_step"][step] for entry in ENTRIES[1:]}
            best = pick(scores, key=scores.get)
            model = payload["model"][metric]["per_step"][step]
            assert verdict["best_baseline"][step] == best
            assert verdict["per_step"][step] == (model > scores[best] if metric == "ssim"
                                                 else model < scores[best])
        assert verdict["every_step"] == all(verdict["per_step"])
        # The paired bootstrap interval of the model's margin over that baseline holds
        # the margin of the means, and settles the sign only where it keeps off zero.
        sign = 1.0 if metric == "ssim" else -1.0
        for step, (low, high) in enumerate(verdict["margin_interval"]):
            best = verdict["best_baseline"][step]
            margin = sign * (payload["model"][metric]["per_step"][step]
                             - payload[best][metric]["per_step"][step])
            assert low - 1e-9 <= margin <= high + 1e-9
            assert verdict["settled"][step] == (low > 0 or high < 0)
        assert len(verdict["margin_interval"]) == FUTURE and verdict["sequences"] >= 2


def test_evaluate_test_split_writes_json_csv_and_tensorboard(compose_train, fast_run, tmp_path):
    payload = _evaluate(compose_train, fast_run / "checkpoints" / "last.keras", tmp_path,
                        "evaluate.split=test", "data.test_sequences=6", "evaluate.batch_size=4")
    assert payload["split"] == "test" and payload["data"]["test_sequences"] == 6
    assert len(payload["model"]["ssim"]["per_step"]) == FUTURE
    with open(tmp_path / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["entry"], r["step"]) for r in rows] == [
        (entry, step) for entry in ENTRIES for step in ("1", "2", "3", "mean")]
    assert list(rows[0]) == ["entry", "step", *METRICS]
    for row in rows:
        expected = payload[row["entry"]]["ssim_openstl"]
        value = expected["mean"] if row["step"] == "mean" else (
            expected["per_step"][int(row["step"]) - 1])
        assert float(row["ssim_openstl"]) == pytest.approx(value, rel=1e-5)
    assert float(rows[0]["mse_sum"]) == pytest.approx(payload["model"]["mse_sum"]["per_step"][0],
                                                      rel=1e-5)
    runs = sorted(p.name for p in (tmp_path / "tensorboard" / "forecast").iterdir())
    assert runs == sorted(ENTRIES)
    for entry in ENTRIES:
        events = accumulator(tmp_path / "tensorboard" / "forecast" / entry)
        for metric in METRICS:
            assert [e.step for e in events.Tensors(f"forecast/{metric}")] == [1, 2, 3]


def test_evaluate_errors_name_the_mismatch(compose_train, fast_run, tmp_path):
    checkpoint = fast_run / "checkpoints" / "best.keras"
    with pytest.raises(FramepredError, match=r"32x32.*trained on 16x16"):
        _evaluate(compose_train, checkpoint, tmp_path, "data.frame_size=[32,32]")
    with pytest.raises(FramepredError, match=r"3 channel\(s\) \(RGB\).*takes 1 \(gray\)"):
        _evaluate(compose_train, checkpoint, tmp_path, "data.channels=3")
    with pytest.raises(FramepredError, match="reads exactly 3"):
        _evaluate(compose_train, checkpoint, tmp_path, "data.context_frames=5")
    with pytest.raises(FramepredError, match="does not exist"):
        _evaluate(compose_train, tmp_path / "missing.keras", tmp_path)
    (tmp_path / "weights.h5").write_bytes(b"")
    with pytest.raises(FramepredError, match=r"not a \.keras file"):
        _evaluate(compose_train, tmp_path / "weights.h5", tmp_path)
    (tmp_path / "broken.keras").write_text("not a zip")
    with pytest.raises(FramepredError, match="cannot be read as a Keras model"):
        _evaluate(compose_train, tmp_path / "broken.keras", tmp_path)


def test_evaluate_error_names_the_checkpoint_and_what_to_give(compose_train, tmp_path):
    """The message itself; the command line prints it as one line with exit 2
    (test_bad_input's evaluate-missing-checkpoint)."""
    with pytest.raises(FramepredError) as error:
        _evaluate(compose_train, tmp_path / "nope.keras", tmp_path / "out")
    assert str(error.value) == (f"checkpoint={tmp_path / 'nope.keras'} does not exist; give a "
                                ".keras file, e.g. checkpoint=outputs/<name>/<run>/checkpoints/"
                                "best.keras")
    assert not (tmp_path / "out").exists()


# --- predict -------------------------------------------------------------------------


def test_predict_npy_with_truth_beyond_the_trained_horizon(compose_train, fast_run, tmp_path):
    window = _windows(compose_train)[0]  # [6, 16, 16, 1]
    np.save(tmp_path / "clip.npy", (window[..., 0] * 255).round().astype(np.uint8))  # [T, H, W]
    steps = 5  # > the 3 future frames trained: the encoder_forecaster continues itself
    result = _predict(compose_train, fast_run / "checkpoints" / "best.keras",
                      tmp_path / "clip.npy", tmp_path / "out", f"predict.steps={steps}",
                      "predict.start=0")  # the context from frame 0: the rest is truth
    out = tmp_path / "out"
    assert result["clips"][0]["truth_frames"] == FUTURE and result["steps"] == steps
    pngs = sorted(out.glob("forecast_*.png"))
    assert [p.name for p in pngs] == [f"forecast_{t:02d}.png" for t in range(1, steps + 1)]
    forecast = np.load(out / "forecast.npy")
    assert forecast.shape == (steps, SIZE, SIZE, 1)
    scale = 128 // SIZE  # the PNGs enlarged as the GIF: each pixel a scale x scale block
    step_png = np.asarray(Image.open(pngs[0]))
    assert step_png.shape == (SIZE * scale, SIZE * scale)
    np.testing.assert_array_equal(step_png, np.kron(
        np.round(np.clip(forecast[0, ..., 0], 0, 1) * 255), np.ones((scale, scale))))
    with Image.open(out / "forecast.gif") as gif:
        assert gif.n_frames == CONTEXT + steps
        # Truth and forecast side by side (2-px divider), a 2-px progress bar below.
        assert gif.size == (2 * SIZE * scale + 2, SIZE * scale + 2)
    # context, truth, forecast, error, and the motion of the default (flow) head
    with Image.open(out / "grid.png") as grid:
        assert grid.size[1] == 2 + 5 * (SIZE * scale + 2)
    assert np.load(out / "motion.npy").shape == (steps, SIZE, SIZE, 2)


def _panning_checkpoint(compose_train, run):
    """An untrained motion-head (flow) run's best.keras, carrying its config as
    training's do, whose motion is the known pan `PAN` at every step."""
    from omegaconf import OmegaConf

    from framepred.callbacks.checkpoints import embed_run_config
    from framepred.run.folder import RunPaths

    cfg = compose_train(["debug=fast", *HEAD])
    paths = RunPaths(run)
    paths.checkpoints.mkdir(parents=True)
    OmegaConf.save(cfg, paths.config)
    panning_model(cfg).save(paths.best)
    embed_run_config(paths.best, paths)
    return paths.best


def test_predict_writes_a_motion_heads_motion(compose_train, tmp_path):
    window = _windows(compose_train)[0]  # [6, 16, 16, 1]
    np.save(tmp_path / "clip.npy", window)
    checkpoint = _panning_checkpoint(compose_train, tmp_path / "run")
    steps = 4  # > the trained horizon: the motion of the continued forecast too
    result = _predict(compose_train, checkpoint, tmp_path / "clip.npy", tmp_path / "out",
                      f"predict.steps={steps}", "predict.start=0")
    out = tmp_path / "out"
    motion = np.load(out / "motion.npy")  # (dy, dx) in pixels
    assert motion.shape == (steps, SIZE, SIZE, 2) and motion.dtype == np.float32
    np.testing.assert_allclose(motion, np.broadcast_to(PAN, motion.shape), atol=1e-5)
    pngs = sorted(out.glob("motion_*.png"))
    assert [p.name for p in pngs] == [f"motion_{t:02d}.png" for t in range(1, steps + 1)]
    assert {str(p) for p in pngs} <= set(result["clips"][0]["files"])
    from framepred import visualize

    scale = 128 // SIZE
    for png, field in zip(pngs, motion):  # full colour at the checkpoint's radius, enlarged
        drawn = np.asarray(Image.open(png))
        assert drawn.shape == (SIZE * scale, SIZE * scale, 3)
        np.testing.assert_array_equal(drawn[::scale, ::scale],
                                      visualize.flow_to_rgb(field, RADIUS))
    assert tuple(np.asarray(Image.open(pngs[0]))[0, 0]) == (255, 128, 128)  # right, R / 2
    with Image.open(out / "grid.png") as grid:  # a fifth row: the motion
        assert grid.mode == "RGB" and grid.size[1] == 2 + 5 * (SIZE * scale + 2)
        # The last cell of the last row (the row names stand left of the first column).
        cell = np.asarray(grid)[-2 - SIZE * scale : -2, -2 - SIZE * scale : -2]
        assert np.all(cell == (255, 128, 128))
    _predict(compose_train, checkpoint, tmp_path / "clip.npy", tmp_path / "ahead")
    with Image.open(tmp_path / "ahead" / "grid.png") as grid:  # no truth: context, forecast
        assert grid.size[1] == 2 + 3 * (SIZE * scale + 2)  # and motion


def test_predict_reads_frames_folders_and_animated_images(compose_train, fast_run, tmp_path):
    window = _windows(compose_train)[0][:CONTEXT]  # context only: no truth
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, frame in enumerate(window):  # frame2 must sort before frame10
        Image.fromarray((frame[..., 0] * 255).astype(np.uint8)).save(folder / f"frame{t * 8}.png")
    frames = [Image.fromarray((f[..., 0] * 255).astype(np.uint8)) for f in window]
    frames[0].save(tmp_path / "clip.gif", save_all=True, append_images=frames[1:])
    checkpoint = fast_run / "checkpoints" / "best.keras"
    from framepred.data.clips import read_clips
    from framepred.run.trained import data_config

    (clip,) = read_clips(folder, data_config(checkpoint))
    np.testing.assert_allclose(clip.frames, window, atol=1 / 255)
    for source in (folder, tmp_path / "clip.gif"):
        out = tmp_path / f"out_{source.name}"
        result = _predict(compose_train, checkpoint, source, out)
        assert result["clips"][0]["truth_frames"] == 0 and result["steps"] == FUTURE
        with Image.open(out / "forecast.gif") as gif:
            assert gif.n_frames == CONTEXT + FUTURE
            assert gif.size[0] == SIZE * (128 // SIZE)  # one panel: no truth to show


def test_predict_errors_name_the_mismatch(compose_train, fast_run, tmp_path):
    checkpoint = fast_run / "checkpoints" / "best.keras"
    rng = np.random.default_rng(0)
    cases = {
        "short.npy": (rng.random((2, 16, 16)), [], "has 2 frame.*give at least 3"),
        "range.npy": (rng.random((6, 16, 16)) * 4, [], r"outside \[0, 1\]"),
        "late.npy": (rng.random((6, 16, 16)), ["predict.start=4"],
                     r"predict.start=4 leaves 2 context.*predict.start=3 or less"),
        "one.npy": (rng.random((6, 16, 16)), ["predict.sequence=1"],
                    r"predict.sequence=1.*holds 1 clip"),
    }
    for name, (array, overrides, message) in cases.items():
        np.save(tmp_path / name, array.astype(np.float32))
        with pytest.raises(FramepredError, match=message):
            _predict(compose_train, checkpoint, tmp_path / name, tmp_path / "out", *overrides)
    (tmp_path / "clip.txt").write_text("")
    with pytest.raises(FramepredError, match="unknown type '.txt'"):
        _predict(compose_train, checkpoint, tmp_path / "clip.txt", tmp_path / "out")
    from framepred.predict import predict

    unset = compose_train([f"checkpoint={checkpoint}", f"input={tmp_path / 'one.npy'}"],
                          config_name="predict")
    with pytest.raises(FramepredError, match="output is not set"):
        predict(unset)
    with pytest.raises(FramepredError, match="predict.steps=0 must be >= 1"):
        _predict(compose_train, checkpoint, tmp_path / "one.npy", tmp_path / "out",
                 "predict.steps=0")


@pytest.mark.slow
def test_next_frame_model_rolls_out_as_long_as_asked(compose_train, tmp_path):
    from framepred.train import train

    run = tmp_path / "run"
    train(compose_train(["debug=fast", "model.form=next_frame", "trainer.forecast_images=0"]),
          run_dir=run)
    window = _windows(compose_train)[0]
    np.save(tmp_path / "clip.npy", window)
    steps = 9  # three times the trained horizon
    result = _predict(compose_train, run / "checkpoints" / "best.keras", tmp_path / "clip.npy",
                      tmp_path / "out", f"predict.steps={steps}")
    assert result["steps"] == steps
    assert np.load(tmp_path / "out" / "forecast.npy").shape == (steps, SIZE, SIZE, 1)
    with Image.open(tmp_path / "out" / "forecast.gif") as gif:
        assert gif.n_frames == CONTEXT + steps
