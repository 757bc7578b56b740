"""framepred.scoreboard: the baselines against hand-computed numpy, the verdict and the tables."""

import json

import keras
import numpy as np
import pytest

from framepred.metrics import PerStepMeans, per_frame_metrics
from framepred.scoreboard import (
    BASELINES,
    VERDICT_KEY,
    background_baseline,
    beats_best_baseline,
    blank_baseline,
    copy_last_baseline,
    format_table,
    margin_interval,
)
from tests.test_metrics import frame_pair


def test_copy_last_baseline():
    context = np.arange(2 * 3 * 2 * 2 * 1, dtype=np.float32).reshape(2, 3, 2, 2, 1)
    forecast = copy_last_baseline(context, 4)
    assert forecast.shape == (2, 4, 2, 2, 1)
    for step in range(4):
        np.testing.assert_array_equal(forecast[:, step], context[:, -1])
    tensor_forecast = copy_last_baseline(keras.ops.convert_to_tensor(context), 4)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(tensor_forecast), forecast)
    with pytest.raises(ValueError, match="B, T, H, W, C"):
        copy_last_baseline(context[0], 4)


def digit_over_black():
    """One gray sequence of 3 context frames, 3x4: a bright pixel moving over black."""
    context = np.zeros((1, 3, 3, 4, 1), np.float32)
    for t in range(3):
        context[0, t, 1, t, 0] = 1.0
    return context


def scene_with_one_mover():
    """Two RGB sequences of 4 context frames, 2x3: a static scene crossed by a white
    pixel; the second scene is the first darkened."""
    scene = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3) / 20.0  # [H, W, C]
    scenes = np.stack([scene, scene / 2])  # [B, H, W, C]
    context = np.repeat(scenes[:, None], 4, axis=1)  # [B, 4, H, W, C]
    for t in range(4):
        context[:, t, t % 2, t % 3] = 1.0
    return scenes, context


def test_background_baseline_is_the_scene_without_its_movers():
    forecast = background_baseline(digit_over_black(), 2)
    np.testing.assert_array_equal(forecast, np.zeros((1, 2, 3, 4, 1)))
    scenes, context = scene_with_one_mover()
    forecast = background_baseline(context, 2)
    assert forecast.shape == (2, 2, 2, 3, 3)
    for step in range(2):
        np.testing.assert_allclose(forecast[:, step], scenes)


def test_blank_baseline_is_each_sequences_background_level():
    forecast = blank_baseline(digit_over_black(), 2)
    np.testing.assert_array_equal(forecast, np.zeros((1, 2, 3, 4, 1)))
    # A gray wall (0.2, 0.5, 0.8) in sequence 0, a darker one in sequence 1, each
    # with a white object on 2 of its 6 pixels: the level is the wall's color.
    wall = np.array([[0.2, 0.5, 0.8], [0.1, 0.25, 0.4]], np.float32)  # [B, C]
    context = np.broadcast_to(wall[:, None, None, None], (2, 3, 2, 3, 3)).copy()
    context[:, :, 0, :2] = 1.0
    forecast = blank_baseline(context, 2)
    assert forecast.shape == (2, 2, 2, 3, 3)
    np.testing.assert_allclose(forecast, np.broadcast_to(wall[:, None, None, None], forecast.shape))


def test_baselines_keep_the_kind_of_their_input_and_reject_bad_shapes():
    """Tensor context gives the same forecast as numpy (the hand checks above use numpy)."""
    _, context = scene_with_one_mover()
    for name, baseline in BASELINES.items():
        forecast = baseline(context, 3)
        assert isinstance(forecast, np.ndarray) and forecast.shape == (2, 3, 2, 3, 3), name
        tensor_forecast = baseline(keras.ops.convert_to_tensor(context), 3)
        assert not isinstance(tensor_forecast, np.ndarray), name
        np.testing.assert_allclose(keras.ops.convert_to_numpy(tensor_forecast), forecast)
        with pytest.raises(ValueError, match=f"{name}_baseline needs context .B, T, H, W, C."):
            baseline(context[0], 3)


def per_step(*values):
    return {"per_step": list(values), "mean": sum(values) / len(values)}


def model_beats_copy_last_but_not_blank():
    """Results as on a dark background: copy_last is worst, blank is hard to beat."""
    return {
        "model": {"mse": per_step(0.05, 0.06), "ssim": per_step(0.70, 0.60)},
        "copy_last": {"mse": per_step(0.10, 0.12), "ssim": per_step(0.50, 0.40)},
        "background": {"mse": per_step(0.09, 0.09), "ssim": per_step(0.60, 0.50)},
        "blank": {"mse": per_step(0.04, 0.08), "ssim": per_step(0.80, 0.55)},
    }


def test_verdict_names_the_best_baseline_at_each_step():
    results = model_beats_copy_last_but_not_blank()
    verdict = beats_best_baseline({**results, VERDICT_KEY: {"ignored": True}})
    assert set(verdict) == {"mse", "ssim"}
    # mse, lower is better: blank 0.04 < model 0.05 at t+1; model 0.06 < blank 0.08 at t+2.
    assert verdict["mse"] == {
        "higher_is_better": False,
        "per_step": [False, True],
        "best_baseline": ["blank", "blank"],
        "every_step": False,
        "mean": True,  # 0.055 < blank's 0.06
        "best_baseline_of_mean": "blank",
    }
    # ssim, higher is better: blank 0.80 > 0.70 at t+1; model 0.60 > blank 0.55 at t+2.
    assert verdict["ssim"]["higher_is_better"] is True
    assert verdict["ssim"]["per_step"] == [False, True]
    assert verdict["ssim"]["best_baseline"] == ["blank", "blank"]
    assert verdict["ssim"]["every_step"] is False
    assert verdict["ssim"]["mean"] is False  # 0.65 < blank's 0.675
    json.dumps(verdict)
    without_blank = {k: v for k, v in results.items() if k != "blank"}
    assert beats_best_baseline(without_blank)["mse"]["per_step"] == [True, True]
    assert beats_best_baseline(without_blank)["ssim"]["best_baseline"] == ["background"] * 2


def test_verdict_a_tie_is_not_a_win_and_needs_a_baseline():
    tie = {"model": {"mae": per_step(0.1)}, "blank": {"mae": per_step(0.1)}}
    assert beats_best_baseline(tie)["mae"]["per_step"] == [False]
    assert beats_best_baseline({"model": {"mae": per_step(0.1)}}) == {}


def test_format_table_rows_columns_and_conventions():
    y_true, y_pred = frame_pair((2, 3, 16, 16, 1))
    context = y_true[:, :1]
    results = {}
    for name, forecast in [("model", y_pred)] + [
        (name, baseline(context, 3)) for name, baseline in BASELINES.items()
    ]:
        accumulator = PerStepMeans()
        accumulator.update(per_frame_metrics(y_true, forecast))
        results[name] = accumulator.result()
    verdict = beats_best_baseline(results)
    table = format_table({**results, VERDICT_KEY: verdict})
    lines = table.splitlines()
    assert "per pixel" in table and "OpenSTL" in table and "data range 2" in table
    assert "Not shown: psnr, mse_sum, mae_sum" in table
    titles = [line.split(":")[0] for line in lines if line.startswith(("ssim", "mse", "mae"))]
    assert titles == ["ssim", "ssim_openstl", "mse", "mae"]
    headers = [i for i, line in enumerate(lines) if line.lstrip().startswith("step")]
    assert len(headers) == 4
    columns = [cell.strip() for cell in lines[headers[0]].split("|")]
    assert columns == ["step", "model", "copy_last", "background", "blank", "beats best baseline?"]
    ssim_rows = [line.split("|") for line in lines[headers[0] + 2 : headers[0] + 6]]
    assert [row[0].strip() for row in ssim_rows] == ["t+1", "t+2", "t+3", "mean"]
    assert float(ssim_rows[-1][1]) == pytest.approx(results["model"]["ssim"]["mean"], abs=1e-4)
    for step, row in enumerate(ssim_rows[:3]):
        beats = verdict["ssim"]["per_step"][step]
        best = verdict["ssim"]["best_baseline"][step]
        assert row[-1].strip() == f"{'yes' if beats else 'no'} ({best})"
    # Without the model there is nothing to judge: no verdict column.
    baselines_only = format_table({"copy_last": results["copy_last"]})
    assert "beats best baseline?" not in baselines_only and "copy_last" in baselines_only


def test_verdict_names_no_best_baseline_where_every_entry_ties_or_has_no_value():
    nan = float("nan")
    results = {"model": {"csi@10": per_step(0.0, nan, 0.3)},
               "copy_last": {"csi@10": per_step(0.0, nan, 0.2)},
               "blank": {"csi@10": per_step(0.0, nan, 0.1)}}
    verdict = beats_best_baseline(results)["csi@10"]
    assert verdict["best_baseline"] == [None, None, "copy_last"]
    assert verdict["per_step"] == [False, False, True]
    table = format_table({**results, VERDICT_KEY: verdict})
    rows = [line for line in table.splitlines() if line.lstrip().startswith("t+")]
    assert [row.rsplit("|", 1)[1].strip() for row in rows] == [
        "- (all tie)", "- (all tie)", "yes (copy_last)"]


def test_format_table_names_the_units_and_orders_thresholds_as_numbers():
    scores = {f"{name}@{t}": per_step(0.5) for name in ("csi", "pod") for t in ("10", "2", "0.5")}
    results = {"model": {**scores, "mse_units": per_step(1.0)},
               "copy_last": {**scores, "mse_units": per_step(2.0)}}
    in_mm = format_table(results, units="mm/h")
    titles = [line.split(":")[0] for line in in_mm.splitlines() if line.startswith("csi@")]
    assert titles == ["csi@0.5", "csi@2", "csi@10"]
    assert "Not shown: pod@0.5, pod@2, pod@10" in in_mm
    assert "critical success index at 0.5 mm/h" in in_mm and "in mm/h squared" in in_mm
    unknown = format_table(results)
    assert "critical success index at 0.5 data units" in unknown and "mm/h" not in unknown


# --- how sure the verdict is: the paired bootstrap ------------------------------------


def test_margin_interval_matches_scipys_bootstrap():
    """An independent oracle: scipy.stats.bootstrap's percentile interval of the mean."""
    from scipy import stats

    margins = np.random.default_rng(3).gamma(2.0, 0.01, size=(80, 3)) - 0.015  # skewed
    low, high = margin_interval(margins, resamples=4000)
    for step in range(3):
        oracle = stats.bootstrap((margins[:, step],), np.mean, confidence_level=0.95,
                                 n_resamples=4000, method="percentile",
                                 random_state=np.random.default_rng(1)).confidence_interval
        width = oracle.high - oracle.low
        # Two Monte Carlo estimates of the same percentiles: equal to a few % of the width.
        assert abs(low[step] - oracle.low) < 0.08 * width
        assert abs(high[step] - oracle.high) < 0.08 * width
    np.testing.assert_array_equal(margin_interval(margins)[0], margin_interval(margins)[0])


def _scored(model, baseline, metric="ssim"):
    """results and samples of a model and one baseline from per-sequence scores [N, T]."""
    def entry(values):
        return {metric: {"per_step": list(values.mean(axis=0)), "mean": values.mean()}}

    return ({"model": entry(model), "blank": entry(baseline)},
            {"model": {metric: model}, "blank": {metric: baseline}})


def test_verdict_interval_is_paired_and_settles_only_a_clear_margin():
    rng = np.random.default_rng(0)
    # Sequences differ far more from each other (hard and easy ones) than the model
    # from the baseline: step 1, a small margin the same on every sequence, which
    # only a paired comparison can see; step 2, a margin of pure noise around zero.
    baseline = rng.uniform(0.3, 0.9, size=(50, 1)) + np.zeros((50, 2))
    model = baseline + np.stack([np.full(50, 0.002), rng.normal(0.0, 0.01, 50)], axis=1)
    model[:, 1] -= model[:, 1].mean() - baseline[:, 1].mean() - 1e-4  # beats it, by noise
    results, samples = _scored(model, baseline)
    verdict = beats_best_baseline(results, samples=samples)["ssim"]
    assert verdict["per_step"] == [True, True]
    assert verdict["settled"] == [True, False]
    assert verdict["sequences"] == 50 and verdict["confidence"] == 0.95
    np.testing.assert_allclose(verdict["margin_interval"][0], [0.002, 0.002], atol=1e-12)
    low, high = verdict["margin_interval"][1]
    assert low < 0 < high
    table = format_table({**results, VERDICT_KEY: {"ssim": verdict}})
    rows = [line for line in table.splitlines() if line.lstrip().startswith(("t+", "mean"))]
    assert rows[0].endswith("yes (blank)") and rows[1].endswith("yes? (blank)")
    assert "paired bootstrap over the 50 sequences" in table.replace("\n", " ")


def test_verdict_interval_of_a_lower_is_better_metric_is_positive_where_the_model_wins():
    baseline = np.linspace(0.05, 0.10, 40)[:, None] + np.zeros((40, 3))
    model = baseline * 0.5  # half the error on every sequence and step
    results, samples = _scored(model, baseline, "mse")
    verdict = beats_best_baseline(results, samples=samples)["mse"]
    assert verdict["every_step"] and all(verdict["settled"]) and verdict["settled_mean"]
    assert all(low > 0 for low, _ in verdict["margin_interval"])
    assert verdict["margin_interval_of_mean"][0] > 0
    # Without per-sequence scores the verdict is as before, with no interval.
    assert "margin_interval" not in beats_best_baseline(results)["mse"]
