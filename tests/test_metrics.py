"""framepred.metrics against tf.image.ssim / tf.image.psnr and hand-computed numpy."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from framepred.metrics import (
    METRIC_NAMES,
    PSNR,
    SSIM,
    PerStepMeans,
    copy_last_baseline,
    format_table,
    per_frame_metrics,
    psnr,
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


@pytest.mark.parametrize("metric", [SSIM(max_val=255.0, filter_size=7), PSNR(max_val=2.0)])
def test_metric_config_round_trip(metric):
    config = metric.get_config()
    clone = type(metric).from_config(config)
    assert clone.get_config() == config
    restored = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert type(restored) is type(metric) and restored.get_config() == config


def test_per_frame_metrics_values_and_conventions():
    y_true, y_pred = frame_pair((2, 4, 16, 18, 3))
    values = per_frame_metrics(y_true, y_pred)
    assert METRIC_NAMES == ("ssim", "psnr", "mse", "mae")
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


def test_format_table_rows_columns_and_conventions():
    y_true, y_pred = frame_pair((2, 3, 16, 16, 1))
    context = y_true[:, :1]
    model, baseline = PerStepMeans(), PerStepMeans()
    model.update(per_frame_metrics(y_true, y_pred))
    baseline.update(per_frame_metrics(y_true, copy_last_baseline(context, 3)))
    table = format_table({"model": model.result(), "copy_last": baseline.result()})
    lines = table.splitlines()
    assert "per pixel" in table and "sum per frame (OpenSTL" in table
    header = next(line for line in lines if line.lstrip().startswith("step"))
    columns = [cell.strip() for cell in header.split("|")]
    assert columns[:5] == ["step", "ssim model", "ssim copy_last", "psnr model", "psnr copy_last"]
    assert "mse_sum copy_last" in columns
    rows = [line.split("|")[0].strip() for line in lines[lines.index(header) + 2 :]]
    assert rows == ["t+1", "t+2", "t+3", "mean"]
    mean_row = lines[-1].split("|")
    assert float(mean_row[1]) == pytest.approx(model.result()["ssim"]["mean"], abs=1e-4)
