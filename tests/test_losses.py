"""framepred.ssim and framepred.losses against independent oracles: tf.image.ssim,
tf.image.ssim_multiscale, scikit-image, and hand-computed numpy for weighting and
reductions."""

import ast
import dataclasses
import doctest
import inspect
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from skimage.metrics import structural_similarity

import framepred.losses as losses_module
import framepred.metrics  # noqa: F401  (registers the metrics for load_model)
import framepred.ssim as ssim_module
from framepred.config import LossConfig, LossName
from framepred.losses import (
    BlendLoss,
    MAELoss,
    MSELoss,
    MSSSIMLoss,
    SSIMLoss,
    build_loss,
    mae,
    mse,
)
from framepred.ssim import DEFAULT_POWER_FACTORS, ms_ssim, ms_ssim_min_size, ssim
from tests.helpers.run_if import run_if

LOSS_NAMES = tuple(name.value for name in LossName)
THREE_SCALES = (0.25, 0.35, 0.4)
REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)


def frame_pair(shape, max_val=1.0, noise=0.1, seed=0):
    """Targets in [0, max_val] and a noisy forecast clipped to the same range."""
    rng = np.random.default_rng(seed)
    y_true = rng.uniform(0.0, max_val, size=shape).astype(np.float32)
    y_pred = np.clip(y_true + rng.normal(0.0, noise * max_val, size=shape), 0.0, max_val)
    return y_true, y_pred.astype(np.float32)


def gradient(fn, y_true, y_pred):
    y_pred = tf.constant(y_pred)
    with tf.GradientTape() as tape:
        tape.watch(y_pred)
        total = tf.reduce_sum(fn(tf.constant(y_true), y_pred))
    return tape.gradient(total, y_pred).numpy()


# ---------------------------------------------------------------------------
# Backend independence
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["ssim.py", "losses.py", "metrics.py", "scoreboard.py"])
def test_module_imports_no_tensorflow(module):
    source = (Path(losses_module.__file__).parent / module).read_text()
    imported, private = set(), []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
            private += [alias.name for alias in node.names if alias.name.startswith("_")]
    assert "tensorflow" not in imported
    assert imported <= {"keras", "numpy", "math", "textwrap", "typing", "framepred"}
    assert not private, f"{module} imports private names {private}"


@pytest.mark.parametrize("module", [ssim_module, losses_module], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0, result


# ---------------------------------------------------------------------------
# SSIM
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("max_val", [1.0, 255.0])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("height, width", [(16, 16), (11, 11), (37, 53)])
def test_ssim_matches_tf_image_ssim(max_val, channels, height, width):
    y_true, y_pred = frame_pair((3, height, width, channels), max_val)
    ours = ssim(y_true, y_pred, max_val=max_val).numpy()
    reference = tf.image.ssim(y_true, y_pred, max_val=max_val).numpy()
    assert ours.shape == (3,)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference, atol=1e-5, rtol=0)


def test_ssim_video_keeps_leading_axes():
    y_true, y_pred = frame_pair((2, 4, 16, 16, 3))
    ours = ssim(y_true, y_pred).numpy()
    assert ours.shape == (2, 4)
    np.testing.assert_allclose(ours, tf.image.ssim(y_true, y_pred, 1.0).numpy(), atol=1e-5)


def test_ssim_options_match_tf():
    y_true, y_pred = frame_pair((2, 20, 20, 2), seed=3)
    options = dict(filter_size=7, filter_sigma=1.0, k1=0.02, k2=0.05)
    ours = ssim(y_true, y_pred, max_val=1.0, **options).numpy()
    reference = tf.image.ssim(y_true, y_pred, 1.0, **options).numpy()
    np.testing.assert_allclose(ours, reference, atol=1e-5)


@pytest.mark.parametrize("max_val", [1.0, 255.0])
def test_ssim_of_equal_frames_is_one(max_val):
    frames, _ = frame_pair((2, 3, 12, 12, 3), max_val)
    np.testing.assert_allclose(ssim(frames, frames, max_val=max_val).numpy(), 1.0, atol=1e-6)


def test_ssim_computes_in_float32_for_half_and_integer_inputs():
    y_true, y_pred = frame_pair((2, 16, 16, 1), 255.0)
    reference = tf.image.ssim(y_true, y_pred, max_val=255.0).numpy()
    half = ssim(y_true.astype(np.float16), y_pred.astype(np.float16), max_val=255.0)
    integer = ssim(np.round(y_true).astype(np.uint8), np.round(y_pred).astype(np.uint8), 255.0)
    assert half.dtype == "float32" and integer.dtype == "float32"
    np.testing.assert_allclose(half.numpy(), reference, atol=1e-2)
    np.testing.assert_allclose(integer.numpy(), reference, atol=1e-2)


@pytest.mark.parametrize("max_val", [1.0, 255.0])
@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_matches_scikit_image(max_val, channels):
    # skimage's 11-tap Gaussian (sigma 1.5, truncate 3.5) filters the whole
    # frame with reflect padding, then averages its SSIM map cropped by
    # (win_size - 1) / 2 = 5 pixels: exactly the VALID region we average over.
    # Its returned score is therefore the quantity we compare, in float64.
    y_true, y_pred = frame_pair((1, 37, 53, channels), max_val, seed=7)
    reference = structural_similarity(
        y_true[0].astype(np.float64),
        y_pred[0].astype(np.float64),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=max_val,
        channel_axis=-1,
    )
    np.testing.assert_allclose(
        ssim(y_true, y_pred, max_val=max_val).numpy()[0], reference, atol=1e-4
    )


@pytest.mark.parametrize("max_val", [1.0, 255.0])
def test_ssim_gradient_matches_tf(max_val):
    y_true, y_pred = frame_pair((2, 2, 15, 17, 3), max_val, seed=1)
    ours = gradient(lambda a, b: ssim(a, b, max_val=max_val), y_true, y_pred)
    reference = gradient(lambda a, b: tf.image.ssim(a, b, max_val=max_val), y_true, y_pred)
    np.testing.assert_allclose(ours, reference, atol=1e-4 / max_val, rtol=0)


@pytest.mark.parametrize(
    "shape_true, shape_pred",
    [
        ((2, 16, 16, 1), (2, 16, 16, 3)),
        ((2, 16, 16, 1), (2, 1, 16, 16, 1)),
        ((16, 16), (16, 16)),
        ((2, 10, 16, 1), (2, 10, 16, 1)),
        ((2, 16, 10, 1), (2, 16, 10, 1)),
    ],
)
def test_ssim_rejects_bad_shapes_naming_them(shape_true, shape_pred):
    with pytest.raises(ValueError, match=r"y_true\.shape=.*y_pred\.shape="):
        ssim(np.zeros(shape_true, np.float32), np.zeros(shape_pred, np.float32))


def test_ssim_shape_error_raised_while_tracing():
    traced = tf.function(lambda a, b: ssim(a, b))
    spec = tf.TensorSpec((None, 8, 8, 1), tf.float32)
    with pytest.raises(ValueError, match="at least 11x11"):
        traced.get_concrete_function(spec, spec)


@pytest.mark.parametrize("leading", [(None, 3), (None, None), (2, 3)])
def test_ssim_and_gradient_with_unknown_leading_axes_in_a_graph(leading):
    # Keras traces train steps with an unknown batch axis; other unknown
    # leading axes take a different internal layout.
    spec = tf.TensorSpec((*leading, 16, 16, 2), tf.float32)

    @tf.function(input_signature=[spec, spec])
    def value_and_gradient(y_true, y_pred):
        with tf.GradientTape() as tape:
            tape.watch(y_pred)
            value = ssim(y_true, y_pred)
            total = tf.reduce_sum(value)
        return value, tape.gradient(total, y_pred)

    y_true, y_pred = frame_pair((2, 3, 16, 16, 2))
    value, grad = value_and_gradient(tf.constant(y_true), tf.constant(y_pred))
    np.testing.assert_allclose(value.numpy(), tf.image.ssim(y_true, y_pred, 1.0), atol=1e-5)
    reference = gradient(lambda a, b: tf.image.ssim(a, b, 1.0), y_true, y_pred)
    np.testing.assert_allclose(grad.numpy(), reference, atol=1e-6)


def test_ssim_needs_a_static_frame_size():
    traced = tf.function(lambda a, b: ssim(a, b))
    spec = tf.TensorSpec((2, None, 16, 1), tf.float32)
    with pytest.raises(ValueError, match=r"known frame size.*\(2, None, 16, 1\)"):
        traced.get_concrete_function(spec, spec)


def test_ssim_of_a_single_frame_is_a_scalar():
    y_true, y_pred = frame_pair((16, 16, 3))
    ours = ssim(y_true, y_pred)
    assert tuple(ours.shape) == ()
    np.testing.assert_allclose(ours.numpy(), tf.image.ssim(y_true, y_pred, 1.0), atol=1e-5)


@pytest.mark.parametrize("graph", [False, True])
def test_ssim_gradient_with_unequal_frame_weights_matches_tf(graph):
    # The backward folds an upstream weight that is one number into its filter
    # kernels and multiplies by anything else; this covers the second branch.
    y_true, y_pred = frame_pair((3, 4, 16, 16, 2), seed=8)
    weights = tf.constant(np.random.default_rng(8).uniform(0.1, 2.0, (3, 4)), tf.float32)

    def weighted(fn):
        def value_and_gradient(a, b):
            with tf.GradientTape() as tape:
                tape.watch(b)
                total = tf.reduce_sum(weights * fn(a, b))
            return tape.gradient(total, b)

        return tf.function(value_and_gradient) if graph else value_and_gradient

    y_true, y_pred = tf.constant(y_true), tf.constant(y_pred)
    ours = weighted(ssim)(y_true, y_pred)
    reference = weighted(lambda a, b: tf.image.ssim(a, b, 1.0))(y_true, y_pred)
    np.testing.assert_allclose(ours.numpy(), reference.numpy(), atol=1e-6)


@pytest.mark.parametrize("name", ["ssim", "ms_ssim"])
def test_value_and_gradient_of_an_empty_batch(name):
    # Under a distribution strategy a replica's share of the last batch can be
    # empty; TF's CPU depthwise kernel returns such a batch in the wrong shape.
    similarity = {"ssim": ssim, "ms_ssim": lambda a, b: ms_ssim(a, b, power_factors=THREE_SCALES)}
    spec = tf.TensorSpec((None, 2, 48, 48, 1), tf.float32)

    @tf.function(input_signature=[spec, spec])
    def value_and_gradient(y_true, y_pred):
        with tf.GradientTape() as tape:
            tape.watch(y_pred)
            value = similarity[name](y_true, y_pred)
            total = tf.reduce_sum(value)
        return value, tape.gradient(total, y_pred)

    empty = tf.zeros((0, 2, 48, 48, 1))
    value, grad = value_and_gradient(empty, empty)
    assert tuple(value.shape) == (0, 2) and tuple(grad.shape) == (0, 2, 48, 48, 1)


def test_ssim_gradient_with_respect_to_y_true_matches_tf():
    y_true, y_pred = frame_pair((2, 16, 18, 3), seed=6)
    ours = gradient(lambda a, b: ssim(b, a), y_pred, y_true)
    reference = gradient(lambda a, b: tf.image.ssim(b, a, 1.0), y_pred, y_true)
    np.testing.assert_allclose(ours, reference, atol=1e-6)


# ---------------------------------------------------------------------------
# MS-SSIM
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("max_val", [1.0, 255.0])
@pytest.mark.parametrize("shape", [(2, 48, 48, 1), (2, 45, 41, 3), (1, 2, 41, 44, 2)])
def test_ms_ssim_matches_tf_three_scales(max_val, shape):
    # 45x41 exercises TF's odd-size padding (SYMMETRIC, i.e. the edge repeated).
    y_true, y_pred = frame_pair(shape, max_val, noise=0.2)
    ours = ms_ssim(y_true, y_pred, max_val=max_val, power_factors=THREE_SCALES).numpy()
    reference = tf.image.ssim_multiscale(
        y_true, y_pred, max_val, power_factors=THREE_SCALES
    ).numpy()
    assert ours.shape == shape[:-3]
    np.testing.assert_allclose(ours, reference, atol=1e-4)


def test_ms_ssim_matches_tf_five_scales_at_min_size():
    y_true, y_pred = frame_pair((1, 161, 163, 1), noise=0.2)
    ours = ms_ssim(y_true, y_pred).numpy()
    reference = tf.image.ssim_multiscale(y_true, y_pred, 1.0).numpy()
    np.testing.assert_allclose(ours, reference, atol=1e-4)


def test_ms_ssim_gradient_matches_tf_where_tf_is_finite():
    y_true, y_pred = frame_pair((2, 44, 42, 1), noise=0.2, seed=2)
    ours = gradient(lambda a, b: ms_ssim(a, b, power_factors=THREE_SCALES), y_true, y_pred)
    reference = gradient(
        lambda a, b: tf.image.ssim_multiscale(a, b, 1.0, power_factors=THREE_SCALES),
        y_true,
        y_pred,
    )
    assert np.isfinite(reference).all()
    np.testing.assert_allclose(ours, reference, atol=1e-4)


def test_ms_ssim_gradient_finite_where_tf_gives_nan():
    # An inverted frame correlates negatively, so the contrast-structure term is
    # < 0: TF clamps it with relu and differentiates x**p at 0 -> inf * 0 = NaN.
    y_true, _ = frame_pair((2, 48, 48, 1), seed=4)
    y_pred = 1.0 - y_true
    reference_value = tf.image.ssim_multiscale(y_true, y_pred, 1.0, power_factors=THREE_SCALES)
    reference = gradient(
        lambda a, b: tf.image.ssim_multiscale(a, b, 1.0, power_factors=THREE_SCALES),
        y_true,
        y_pred,
    )
    ours_value = ms_ssim(y_true, y_pred, power_factors=THREE_SCALES)
    ours = gradient(lambda a, b: ms_ssim(a, b, power_factors=THREE_SCALES), y_true, y_pred)
    assert not np.isfinite(reference).all()
    assert np.isfinite(ours).all()
    np.testing.assert_allclose(ours_value.numpy(), reference_value.numpy(), atol=1e-6)


def test_ms_ssim_gradient_finite_at_tiny_positive_terms():
    # The same inverted frames blended with the truth: sweeping through
    # cs = 0 must never give a non-finite gradient.
    y_true, _ = frame_pair((1, 48, 48, 1), seed=5)
    for blend in np.linspace(0.3, 0.7, 9):
        y_pred = (blend * y_true + (1 - blend) * (1 - y_true)).astype(np.float32)
        ours = gradient(lambda a, b: ms_ssim(a, b, power_factors=THREE_SCALES), y_true, y_pred)
        assert np.isfinite(ours).all(), blend


@pytest.mark.parametrize("num_scales", [1, 2, 3])
def test_ms_ssim_min_size_is_where_tf_starts_to_work(num_scales):
    size = ms_ssim_min_size(num_scales)
    power_factors = (1.0 / num_scales,) * num_scales
    frames, _ = frame_pair((1, size, size, 1))
    tf.image.ssim_multiscale(frames, frames, 1.0, power_factors=power_factors)
    too_small, _ = frame_pair((1, size - 1, size - 1, 1))
    with pytest.raises(tf.errors.InvalidArgumentError):
        tf.image.ssim_multiscale(too_small, too_small, 1.0, power_factors=power_factors)


def test_ms_ssim_min_size_values():
    assert ms_ssim_min_size(5) == 161
    assert ms_ssim_min_size(3) == 41
    assert ms_ssim_min_size(1) == 11
    assert ms_ssim_min_size(4, filter_size=7) == 49


def test_ms_ssim_too_small_names_the_size_needed():
    frames = np.zeros((2, 4, 64, 64, 1), np.float32)
    with pytest.raises(ValueError, match=r"at least 161x161.*\(2, 4, 64, 64, 1\)"):
        ms_ssim(frames, frames)


# ---------------------------------------------------------------------------
# Pixel losses
# ---------------------------------------------------------------------------


def test_mse_and_mae_per_frame():
    y_true, y_pred = frame_pair((2, 3, 5, 6, 2))
    np.testing.assert_allclose(
        mse(y_true, y_pred), ((y_true - y_pred) ** 2).mean((2, 3, 4)), rtol=1e-6
    )
    np.testing.assert_allclose(
        mae(y_true, y_pred), np.abs(y_true - y_pred).mean((2, 3, 4)), rtol=1e-6
    )
    assert mse(y_true[0], y_pred[0]).shape == (3,)


# ---------------------------------------------------------------------------
# Loss classes
# ---------------------------------------------------------------------------


def per_frame_reference(name, y_true, y_pred):
    """The per-frame loss from the TF oracles and numpy."""
    if name == "ssim":
        return 1.0 - tf.image.ssim(y_true, y_pred, 1.0).numpy()
    if name == "mse":
        return ((y_true - y_pred) ** 2).mean((-3, -2, -1))
    if name == "mae":
        return np.abs(y_true - y_pred).mean((-3, -2, -1))
    if name == "blend":
        structural = 1.0 - tf.image.ssim(y_true, y_pred, 1.0).numpy()
        return 0.84 * structural + 0.16 * np.abs(y_true - y_pred).mean((-3, -2, -1))
    raise AssertionError(name)


@pytest.mark.parametrize("name", ["ssim", "mse", "mae", "blend"])
def test_loss_classes_return_per_frame_values(name):
    y_true, y_pred = frame_pair((2, 3, 16, 16, 1))
    loss = build_loss(name)
    loss.reduction = "none"
    values = loss(y_true, y_pred).numpy()
    assert values.shape == (2, 3)
    np.testing.assert_allclose(values, per_frame_reference(name, y_true, y_pred), atol=1e-5)
    image_values = build_loss(name)(y_true[:, 0], y_pred[:, 0])
    np.testing.assert_allclose(
        image_values, per_frame_reference(name, y_true[:, 0], y_pred[:, 0]).mean(), atol=1e-5
    )


def test_ms_ssim_loss_is_one_minus_ms_ssim():
    y_true, y_pred = frame_pair((2, 2, 41, 41, 1), noise=0.2)
    loss = MSSSIMLoss(power_factors=THREE_SCALES, reduction="none")
    reference = tf.image.ssim_multiscale(y_true, y_pred, 1.0, power_factors=THREE_SCALES)
    np.testing.assert_allclose(loss(y_true, y_pred), 1.0 - reference.numpy(), atol=1e-4)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight_shape", [None, "sequence", "frame"])
def test_every_reduction_with_sequence_and_frame_weights(reduction, weight_shape):
    y_true, y_pred = frame_pair((3, 4, 12, 12, 1))
    values = per_frame_reference("mae", y_true, y_pred)  # [B, T]
    rng = np.random.default_rng(0)
    if weight_shape is None:
        weight, broadcast = None, np.ones_like(values)
    elif weight_shape == "sequence":
        weight = rng.uniform(0, 2, size=3).astype(np.float32)
        broadcast = np.broadcast_to(weight[:, None], values.shape)
    else:
        weight = rng.uniform(0, 2, size=(3, 4)).astype(np.float32)
        broadcast = weight
    weighted = values * broadcast
    expected = {
        "sum_over_batch_size": weighted.sum() / values.size,
        "mean": weighted.sum() / values.size,
        "sum": weighted.sum(),
        "mean_with_sample_weight": weighted.sum() / broadcast.sum(),
        "none": weighted,
        None: weighted,
    }[reduction]
    result = MAELoss(reduction=reduction)(y_true, y_pred, sample_weight=weight)
    np.testing.assert_allclose(result, expected, rtol=1e-5)


def test_sequence_weights_when_batch_equals_time():
    # B == T: Keras alone would broadcast a [B] weight along the time axis.
    y_true, y_pred = frame_pair((3, 3, 12, 12, 1), seed=9)
    weight = np.array([1.0, 0.0, 3.0], np.float32)
    values = np.abs(y_true - y_pred).mean((2, 3, 4))  # [B, T]
    expected = (values * weight[:, None]).sum() / values.size
    wrong = (values * weight[None, :]).sum() / values.size
    result = float(MAELoss()(y_true, y_pred, sample_weight=weight))
    np.testing.assert_allclose(result, expected, rtol=1e-6)
    assert abs(result - wrong) > 1e-3


def tiny_model(loss, metrics=()):
    model = keras.Sequential(
        [keras.Input((3, 16, 16, 1)), keras.layers.Conv3D(1, (1, 3, 3), padding="same")]
    )
    model.compile(optimizer="sgd", loss=loss, metrics=list(metrics))
    return model


@pytest.mark.parametrize("weight_kind", ["sequence", "frame"])
@pytest.mark.parametrize("feed", ["numpy", "dataset"])
def test_sample_weights_through_fit_and_evaluate(weight_kind, feed):
    keras.utils.set_random_seed(0)
    inputs, targets = frame_pair((3, 3, 16, 16, 1), seed=11)  # B == T on purpose
    if weight_kind == "sequence":
        weight = np.array([1.0, 0.0, 2.0], np.float32)
        broadcast = weight[:, None]
    else:
        weight = np.array([[1.0, 0.0, 2.0], [0.5, 0.5, 0.5], [0.0, 3.0, 1.0]], np.float32)
        broadcast = weight
    model = tiny_model(SSIMLoss())
    if feed == "numpy":
        model.fit(inputs, targets, sample_weight=weight, batch_size=3, epochs=1, verbose=0)
        loss = model.evaluate(inputs, targets, sample_weight=weight, batch_size=3, verbose=0)
    else:
        dataset = tf.data.Dataset.from_tensor_slices((inputs, targets, weight)).batch(3)
        model.fit(dataset, epochs=1, verbose=0, shuffle=False)
        loss = model.evaluate(dataset, verbose=0)
    forecast = model.predict(inputs, verbose=0)
    per_frame = 1.0 - tf.image.ssim(targets, forecast, 1.0).numpy()  # [B, T]
    expected = (per_frame * broadcast).sum() / per_frame.size
    np.testing.assert_allclose(loss, expected, rtol=1e-4)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("name", ["ssim", "blend", "mse"])
def test_mixed_precision_gives_float32_loss(policy, name):
    y_true, y_pred = frame_pair((2, 3, 16, 16, 1))
    reference = float(build_loss(name)(y_true, y_pred))
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = keras.Sequential(
            [keras.Input((3, 16, 16, 1)), keras.layers.Conv3D(1, (1, 3, 3), padding="same")]
        )
        half = keras.ops.cast(y_pred, model.layers[0].compute_dtype)
        loss = build_loss(name)
        value = loss(y_true, half)
        assert loss.dtype == "float32"
        assert keras.backend.standardize_dtype(value.dtype) == "float32"
        np.testing.assert_allclose(float(value), reference, atol=1e-3)
        model.compile(optimizer="sgd", loss=build_loss(name))
        history = model.fit(y_pred, y_true, epochs=1, batch_size=2, verbose=0)
        assert np.isfinite(history.history["loss"][0])
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_dtype_and_name_pass_through():
    loss = SSIMLoss(name="structure", dtype="float64")
    y_true, y_pred = frame_pair((2, 16, 16, 1))
    value = loss(y_true, y_pred)
    assert loss.name == "structure"
    assert keras.backend.standardize_dtype(value.dtype) == "float64"
    assert SSIMLoss.from_config(loss.get_config()).dtype == "float64"
    mixed = SSIMLoss(dtype=keras.DTypePolicy("mixed_float16"))
    assert SSIMLoss.from_config(mixed.get_config()).dtype == "float16"


# ---------------------------------------------------------------------------
# Construction, configs, serialization
# ---------------------------------------------------------------------------


def test_build_loss_names():
    assert LOSS_NAMES == ("ssim", "ms_ssim", "mse", "mae", "blend")
    kinds = {name: type(build_loss(name)) for name in LOSS_NAMES}
    assert kinds == {
        "ssim": SSIMLoss,
        "ms_ssim": MSSSIMLoss,
        "mse": MSELoss,
        "mae": MAELoss,
        "blend": BlendLoss,
    }
    blend = build_loss("blend", alpha=0.5, structural="ms_ssim", pixel="mse", max_val=255)
    options = blend.get_config()
    assert (options["alpha"], options["structural"], options["pixel"], options["max_val"]) == (
        0.5,
        "ms_ssim",
        "mse",
        255.0,
    )


def test_build_loss_takes_a_loss_config():
    for name in LossName:
        config = LossConfig(name=name, alpha=0.3, max_val=2.0, filter_size=7,
                            power_factors=[0.5, 0.5])
        assert type(build_loss(**dataclasses.asdict(config))).__name__ == {
            "ssim": "SSIMLoss", "ms_ssim": "MSSSIMLoss", "mse": "MSELoss", "mae": "MAELoss",
            "blend": "BlendLoss"}[name]
    loss = build_loss(**dataclasses.asdict(LossConfig(name=LossName.blend, alpha=0.3,
                                                      max_val=2.0, filter_size=7)))
    options = loss.get_config()
    assert (options["alpha"], options["structural"], options["pixel"], options["max_val"],
            options["filter_size"], options["filter_sigma"]) == (0.3, "ssim", "mae", 2.0, 7, 1.5)
    assert options["power_factors"] == [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]
    with pytest.raises(TypeError, match="alhpa"):
        build_loss("blend", alhpa=0.3)


def test_loss_defaults_are_the_configs():
    """The config's `loss.*` defaults are the loss classes' own, declared once."""
    defaults = LossConfig()
    for name in LossName:
        built = build_loss(**dataclasses.asdict(LossConfig(name=name))).get_config()
        plain = build_loss(name).get_config()
        assert built == plain, name
        for key, value in plain.items():
            if key != "name" and key in {f.name for f in dataclasses.fields(LossConfig)}:
                assert value == getattr(defaults, key), (name, key)


def test_build_loss_unknown_name():
    with pytest.raises(ValueError, match=r"'l3'.*'ssim', 'ms_ssim', 'mse', 'mae', 'blend'"):
        build_loss("l3")


@pytest.mark.parametrize(
    "options, pattern",
    [
        (dict(alpha=1.5), r"alpha=1\.5.*\[0, 1\]"),
        (dict(alpha="x"), r"alpha='x'"),
        (dict(structural="psnr"), r"structural='psnr'.*'ssim', 'ms_ssim'"),
        (dict(pixel="huber"), r"pixel='huber'.*'mae', 'mse'"),
    ],
)
def test_blend_rejects_bad_options(options, pattern):
    with pytest.raises(ValueError, match=pattern):
        BlendLoss(**options)


def test_blend_with_ms_ssim_and_mse():
    y_true, y_pred = frame_pair((2, 41, 41, 1), noise=0.2)
    loss = BlendLoss(alpha=0.3, structural="ms_ssim", pixel="mse", power_factors=THREE_SCALES)
    structural = 1.0 - tf.image.ssim_multiscale(y_true, y_pred, 1.0, power_factors=THREE_SCALES)
    pixel = ((y_true - y_pred) ** 2).mean((1, 2, 3))
    expected = (0.3 * structural.numpy() + 0.7 * pixel).mean()
    np.testing.assert_allclose(float(loss(y_true, y_pred)), expected, atol=1e-4)


def test_unknown_reduction_rejected():
    with pytest.raises(ValueError, match="reduction"):
        SSIMLoss(reduction="median")


# Every registered loss and metric, with the Keras module that (de)serializes its kind.
SERIALIZABLES = [
    (SSIMLoss(max_val=2.0, filter_size=7, filter_sigma=1.0, k1=0.02, k2=0.04, reduction="sum"),
     keras.losses),
    (MSSSIMLoss(power_factors=THREE_SCALES, name="ms"), keras.losses),
    (MSELoss(reduction="mean"), keras.losses),
    (MAELoss(), keras.losses),
    (BlendLoss(alpha=0.6, structural="ssim", pixel="mse", filter_size=9), keras.losses),
    (framepred.metrics.SSIM(max_val=255.0, filter_size=7), keras.metrics),
    (framepred.metrics.PSNR(max_val=2.0), keras.metrics),
]


def serializable_id(item):
    return item.__name__.rsplit(".", 1)[-1] if inspect.ismodule(item) else type(item).__name__


@pytest.mark.parametrize("instance, kind", SERIALIZABLES, ids=serializable_id)
def test_config_round_trip(instance, kind):
    config = instance.get_config()
    clone = type(instance).from_config(config)
    assert clone.get_config() == config
    restored = kind.deserialize(kind.serialize(instance))
    assert type(restored) is type(instance) and restored.get_config() == config


def test_default_power_factors():
    assert MSSSIMLoss().get_config()["power_factors"] == list(DEFAULT_POWER_FACTORS)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_model_with_loss_and_metrics_saves_and_reloads(name, tmp_path):
    options = {"power_factors": (0.5, 0.5)} if name in ("ms_ssim", "blend") else {}
    if name == "blend":
        options["structural"] = "ms_ssim"
    loss = build_loss(name, filter_size=5, **options)
    model = keras.Sequential(
        [keras.Input((2, 16, 16, 1)), keras.layers.Conv3D(1, (1, 3, 3), padding="same")]
    )
    model.compile(
        optimizer="sgd",
        loss=loss,
        metrics=[framepred.metrics.SSIM(filter_size=5), framepred.metrics.PSNR()],
    )
    inputs, targets = frame_pair((2, 2, 16, 16, 1))
    model.fit(inputs, targets, epochs=1, verbose=0)
    path = os.fspath(tmp_path / f"{name}.keras")
    model.save(path)
    reloaded = keras.models.load_model(path)
    assert type(reloaded.loss) is type(loss)
    assert reloaded.loss.get_config() == loss.get_config()
    np.testing.assert_allclose(
        reloaded.evaluate(inputs, targets, verbose=0),
        model.evaluate(inputs, targets, verbose=0),
        rtol=1e-5,
    )


# ---------------------------------------------------------------------------
# Another Keras backend
# ---------------------------------------------------------------------------

JAX_SCRIPT = """
import sys
import jax
import jax.numpy as jnp
import numpy as np
from framepred.losses import BlendLoss
from framepred.ssim import ms_ssim, ssim

y_true, y_pred = np.load(sys.argv[1])["y_true"], np.load(sys.argv[1])["y_pred"]
power_factors = (0.3, 0.3, 0.4)
np.savez(
    sys.argv[2],
    ssim=np.asarray(ssim(y_true, y_pred)),
    ms_ssim=np.asarray(ms_ssim(y_true, y_pred, power_factors=power_factors)),
    ssim_grad=np.asarray(jax.jit(jax.grad(lambda y: jnp.sum(ssim(y_true, y))))(y_pred)),
    ms_ssim_grad=np.asarray(
        jax.grad(lambda y: jnp.sum(ms_ssim(y_true, y, power_factors=power_factors)))(y_pred)
    ),
    inverted_grad=np.asarray(
        jax.grad(lambda y: jnp.sum(ms_ssim(y_true, y, power_factors=power_factors)))(1 - y_true)
    ),
    blend=np.asarray(BlendLoss()(y_true, y_pred, sample_weight=np.array([1.0, 2.0]))),
)
"""


@pytest.mark.slow
@run_if(extra="jax")
def test_jax_backend_matches_tf(tmp_path):
    # The module uses keras.ops only; run it under KERAS_BACKEND=jax in a fresh
    # process (the backend is fixed at import) and compare with the TF oracles.
    y_true, y_pred = frame_pair((2, 3, 48, 48, 2))
    np.savez(tmp_path / "frames.npz", y_true=y_true, y_pred=y_pred)
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    root = Path(losses_module.__file__).resolve().parents[1]
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT, tmp_path / "frames.npz", tmp_path / "out.npz"],
        env=env,
        check=True,
        timeout=300,
    )
    jax_out = np.load(tmp_path / "out.npz")
    power_factors = (0.3, 0.3, 0.4)
    np.testing.assert_allclose(jax_out["ssim"], tf.image.ssim(y_true, y_pred, 1.0), atol=1e-5)
    np.testing.assert_allclose(
        jax_out["ms_ssim"],
        tf.image.ssim_multiscale(y_true, y_pred, 1.0, power_factors=power_factors),
        atol=1e-4,
    )
    np.testing.assert_allclose(
        jax_out["ssim_grad"],
        gradient(lambda a, b: tf.image.ssim(a, b, 1.0), y_true, y_pred),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        jax_out["ms_ssim_grad"],
        gradient(
            lambda a, b: tf.image.ssim_multiscale(a, b, 1.0, power_factors=power_factors),
            y_true,
            y_pred,
        ),
        atol=1e-4,
    )
    assert np.isfinite(jax_out["inverted_grad"]).all()
    np.testing.assert_allclose(
        jax_out["blend"],
        float(BlendLoss()(y_true, y_pred, sample_weight=np.array([1.0, 2.0], np.float32))),
        rtol=1e-5,
    )
