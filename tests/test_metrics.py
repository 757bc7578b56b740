"""framepred.metrics against tf.image.ssim / tf.image.psnr, scikit-image and hand-computed numpy."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from skimage import data as skimage_data
from skimage.metrics import structural_similarity

from framepred.metrics import (
    BASELINES,
    METRIC_NAMES,
    PSNR,
    SSIM,
    VERDICT_KEY,
    PerStepMeans,
    background_baseline,
    beats_best_baseline,
    blank_baseline,
    copy_last_baseline,
    format_table,
    per_frame_metrics,
    psnr,
    ssim_openstl,
)


def frame_pair(shape, max_val=1.0, noise=0.1, seed=0):
    rng = np.random.default_rng(seed)
    y_true = rng.uniform(0.0, max_val, size=shape).astype(np.float32)
    y_pred = np.clip(y_true + rng.normal(0.0, noise * max_val, size=shape), 0.0, max_val)
    return y_true, y_pred.astype(np.float32)


@pytest.mark.parametrize("max_val", [1.0, 255.0])
def test_psnr_matches_tf(max_val):
    y_true, y_pred = frame_pair((2, 3, 8, 9, 3), max_val)
    ours = psnr(y_true, y_pred, max_val=max_val).numpy()
    assert ours.shape == (2, 3)
    np.testing.assert_allclose(ours, tf.image.psnr(y_true, y_pred, max_val).numpy(), atol=1e-4)


@pytest.mark.parametrize("max_val, cap", [(1.0, 100.0), (255.0, 100.0 + 20 * np.log10(255.0))])
def test_psnr_of_identical_frames_is_capped(max_val, cap):
    frames, _ = frame_pair((2, 8, 8, 1), max_val)
    np.testing.assert_allclose(psnr(frames, frames, max_val=max_val).numpy(), cap, rtol=1e-5)


def test_streaming_metrics_average_every_frame_seen():
    ssim_metric, psnr_metric = SSIM(), PSNR()
    batches = [frame_pair((2, 3, 16, 16, 1), seed=s) for s in range(2)]
    for y_true, y_pred in batches:
        ssim_metric.update_state(y_true, y_pred)
        psnr_metric.update_state(y_true, y_pred)
    all_true = np.concatenate([b[0] for b in batches])
    all_pred = np.concatenate([b[1] for b in batches])
    np.testing.assert_allclose(
        float(ssim_metric.result()),
        tf.image.ssim(all_true, all_pred, 1.0).numpy().mean(),
        atol=1e-5,
    )
    np.testing.assert_allclose(
        float(psnr_metric.result()),
        tf.image.psnr(all_true, all_pred, 1.0).numpy().mean(),
        atol=1e-4,
    )
    ssim_metric.reset_state()
    assert float(ssim_metric.result()) == 0.0


def test_streaming_ssim_options_and_frame_weights():
    y_true, y_pred = frame_pair((2, 3, 20, 20, 3), 255.0)
    weight = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 1.0]], np.float32)
    metric = SSIM(max_val=255.0, filter_size=7, filter_sigma=1.0)
    metric.update_state(y_true, y_pred, sample_weight=weight)
    per_frame = tf.image.ssim(y_true, y_pred, 255.0, filter_size=7, filter_sigma=1.0).numpy()
    expected = (per_frame * weight).sum() / weight.sum()
    np.testing.assert_allclose(float(metric.result()), expected, atol=1e-5)


# The SSIM and PSNR config round trip is tests/test_losses.py::test_config_round_trip,
# with every other registered loss and metric.


def openstl_ssim_oracle(y_true, y_pred):
    """OpenSTL's `metric()` SSIM per frame of [B, T, H, W, C], with scikit-image >= 0.19's
    names for what 0.19 assumed: clip the forecast to [0, 1], put frames in OpenSTL's
    [C, H, W] layout, swap axes 0 and 2 as OpenSTL does, data range 2 for float input."""
    y_pred = np.clip(y_pred, 0.0, 1.0)
    values = np.empty(y_true.shape[:2])
    for b, t in np.ndindex(*values.shape):
        true_chw, pred_chw = y_true[b, t].transpose(2, 0, 1), y_pred[b, t].transpose(2, 0, 1)
        values[b, t] = structural_similarity(
            pred_chw.swapaxes(0, 2), true_chw.swapaxes(0, 2), win_size=7, data_range=2,
            channel_axis=-1, use_sample_covariance=True, gaussian_weights=False)
    return values


def natural_frames(channels):
    """Two 48x40 crops of scikit-image's sample photographs, in [0, 1]: [1, 2, 48, 40, C]."""
    if channels == 1:
        image = skimage_data.camera()[..., None]
    else:
        image = skimage_data.astronaut()
    crops = [image[100:292:4, 150:310:4], image[300:396:2, 200:280:2]]
    return (np.stack(crops)[None] / 255.0).astype(np.float32)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("kind", ["random", "natural"])
def test_ssim_openstl_matches_scikit_image(kind, channels):
    rng = np.random.default_rng(channels)
    if kind == "random":
        y_true = rng.uniform(0.0, 1.0, size=(2, 3, 12, 15, channels)).astype(np.float32)
    else:
        y_true = natural_frames(channels)
    # Forecasts stray outside [0, 1], as a model's may: OpenSTL clips them.
    y_pred = (y_true + rng.normal(0.0, 0.15, size=y_true.shape)).astype(np.float32)
    ours = keras.ops.convert_to_numpy(ssim_openstl(y_true, y_pred))
    assert ours.shape == y_true.shape[:2]
    np.testing.assert_allclose(ours, openstl_ssim_oracle(y_true, y_pred), atol=1e-5)
    scaled = keras.ops.convert_to_numpy(ssim_openstl(y_true * 255, y_pred * 255, max_val=255.0))
    np.testing.assert_allclose(scaled, ours, atol=1e-5)


def test_ssim_openstl_rejects_frames_smaller_than_its_window():
    y_true, y_pred = frame_pair((2, 6, 9, 1))
    with pytest.raises(ValueError, match=r"7x7.*\(2, 6, 9, 1\)"):
        ssim_openstl(y_true, y_pred)


def test_per_frame_metrics_values_and_conventions():
    y_true, y_pred = frame_pair((2, 4, 16, 18, 3))
    values = per_frame_metrics(y_true, y_pred)
    assert METRIC_NAMES == ("ssim", "ssim_openstl", "psnr", "mse", "mae")
    assert set(values) == {*METRIC_NAMES, "mse_sum", "mae_sum"}
    for array in values.values():
        assert isinstance(array, np.ndarray) and array.shape == (2, 4)
    error = y_true - y_pred
    pixels = 16 * 18 * 3
    np.testing.assert_allclose(values["mse"], (error**2).mean((2, 3, 4)), rtol=1e-5)
    np.testing.assert_allclose(values["mae"], np.abs(error).mean((2, 3, 4)), rtol=1e-5)
    np.testing.assert_allclose(values["mse_sum"], values["mse"] * pixels, rtol=1e-5)
    np.testing.assert_allclose(values["mae_sum"], np.abs(error).sum((2, 3, 4)), rtol=1e-5)
    np.testing.assert_allclose(values["psnr"], tf.image.psnr(y_true, y_pred, 1.0), atol=1e-4)
    np.testing.assert_allclose(values["ssim"], tf.image.ssim(y_true, y_pred, 1.0), atol=1e-5)
    np.testing.assert_allclose(values["ssim_openstl"], openstl_ssim_oracle(y_true, y_pred),
                               atol=1e-5)


def test_per_frame_metrics_rejects_frames_smaller_than_the_ssim_window():
    y_true, y_pred = frame_pair((2, 4, 8, 10, 1))
    with pytest.raises(ValueError, match=r"11x11.*\(2, 4, 8, 10, 1\)"):
        per_frame_metrics(y_true, y_pred)


def test_per_step_means_and_json():
    rng = np.random.default_rng(0)
    batches = [
        {key: rng.random((batch, 3)).astype(np.float32) for key in ("ssim", "mse_sum")}
        for batch in (2, 5)
    ]
    accumulator = PerStepMeans()
    for batch in batches:
        accumulator.update(batch)
    result = accumulator.result()
    json.dumps(result)
    for key in ("ssim", "mse_sum"):
        stacked = np.concatenate([b[key] for b in batches])  # [7, 3]
        np.testing.assert_allclose(result[key]["per_step"], stacked.mean(0), rtol=1e-6)
        np.testing.assert_allclose(result[key]["mean"], stacked.mean(), rtol=1e-6)
        assert all(type(v) is float for v in result[key]["per_step"])
        assert type(result[key]["mean"]) is float


def test_per_step_means_rejects_wrong_shapes():
    accumulator = PerStepMeans()
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        accumulator.update({"ssim": np.zeros(3)})
    accumulator.update({"ssim": np.zeros((2, 3))})
    with pytest.raises(ValueError, match="3"):
        accumulator.update({"ssim": np.zeros((2, 4))})


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
