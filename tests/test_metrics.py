"""framepred.metrics against tf.image.ssim / tf.image.psnr, scikit-image and hand-computed numpy
(the baselines, the verdict and the tables: tests/test_scoreboard.py)."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from skimage import data as skimage_data
from skimage.metrics import structural_similarity

from framepred.metrics import (
    METRIC_NAMES,
    PSNR,
    SSIM,
    PerStepMeans,
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
