"""The motion head (model.head=motion / flow): it moves the latest frame by a per-pixel
motion and corrects it. The checks a user relies on: the untrained model is copy-last,
it stays causal, the motion learns from the first batch, a known pan is found, borders
do not darken, and it saves, reloads and runs in mixed precision."""

from __future__ import annotations

from types import SimpleNamespace

import keras
import numpy as np
import pytest

from framepred import models
from framepred.config import ModelConfig
from framepred.models.heads import CENTER_LOGIT, Move, move_frames, shift_weights
from tests.helpers.run_if import run_if

DATA = SimpleNamespace(frame_size=[16, 16], channels=1, context_frames=3, future_frames=3)


def _model(form="encoder_forecaster", head="motion", data=DATA, **changes):
    cfg = ModelConfig(form=form, filters=[8], kernel_size=[3], patch_size=2, head=head,
                      motion_radius=3, forecaster_input="forecast", **changes)
    keras.utils.set_random_seed(0)
    model = models.build_model(cfg, data)
    models.init_head(model, level=0.5)
    return model


def _clips(kind: str, channels: int = 3) -> np.ndarray:
    """[2, 6, 16, 16, C] footage in [0, 1]: black, mid-grey with a mover, coloured."""
    rng = np.random.default_rng(1)
    background = {"black": 0.0, "mid_grey": 0.5, "coloured": [0.8, 0.35, 0.1][:channels]}[kind]
    clips = np.broadcast_to(np.asarray(background, np.float32), (2, 6, 16, 16, channels)).copy()
    clips[:, :, 4:9, 4:9] = rng.random((2, 6, 1, 1, channels))
    return clips


def _kernel_start_distance(radius: int) -> float:
    """What the kernel start keeps off the centre: 1 - (centre mass per axis)^2."""
    centre = np.exp(CENTER_LOGIT) / (np.exp(CENTER_LOGIT) + 2 * radius)
    return 1.0 - centre**2


FOOTAGE = ("black", "mid_grey", "coloured")


@pytest.mark.parametrize("head", ["motion", "flow"])
@pytest.mark.parametrize("form", ["encoder_forecaster", "next_frame"])
def test_untrained_motion_head_is_copy_last(form, head):
    """flow starts at zero flow: copy-last exactly (to the sigmoid's clip). The kernel
    starts sharp but soft: each step moves at most its off-centre mass of the frame's
    range, compounded over the forecast steps. Black, mid-grey and coloured footage, in
    one batch: each sequence is forecast alone."""
    data = SimpleNamespace(frame_size=[16, 16], channels=3, context_frames=3, future_frames=3)
    model = _model(form, head, data)
    clips = np.concatenate([_clips(kind) for kind in FOOTAGE])
    forecast = np.asarray(models.forecast(model, clips[:, :3], steps=3))
    expected = np.clip(np.repeat(clips[:, 2:3], 3, axis=1), models.COPY_EPSILON,
                       1 - models.COPY_EPSILON)
    # The same number of clips of each kind, in FOOTAGE's order.
    for kind, got, want in zip(FOOTAGE, np.split(forecast, len(FOOTAGE)),
                               np.split(expected, len(FOOTAGE))):
        if head == "flow":
            np.testing.assert_allclose(got, want, atol=1e-6, err_msg=kind)
        else:
            # Each step moves the one before: the start distance compounds over 3 steps.
            distance = float(np.abs(got - want).max())
            assert 0 < distance <= 3 * _kernel_start_distance(3) + 1e-6, (kind, distance)


def test_motion_head_is_causal():
    """next_frame: changing frame k changes outputs >= k only."""
    model = _model("next_frame")
    frames = np.random.default_rng(0).random((2, 6, 16, 16, 1), dtype=np.float32)
    base = np.asarray(model(frames))
    for k in range(6):
        perturbed = frames.copy()
        perturbed[:, k] = 1.0 - perturbed[:, k]
        changed = np.abs(np.asarray(model(perturbed)) - base).max(axis=(0, 2, 3, 4))
        assert np.all(changed[:k] == 0.0), (k, changed)
        assert changed[k] > 0, k


@pytest.mark.parametrize("head", ["motion", "flow"])
def test_motion_logits_have_a_gradient_on_the_first_batch(head):
    """A gate or a one-hot kernel started at "no motion" leaves the motion without a
    gradient; the soft kernel and the bilinear flow do not."""
    import tensorflow as tf

    model = _model(head=head)
    clips = _clips("black", channels=1)
    motion = model.get_layer("motion")
    with tf.GradientTape() as tape:
        forecast = model(clips[:, :3])
        loss = tf.reduce_mean((forecast - clips[:, 3:]) ** 2)
    kernel_grad, bias_grad = tape.gradient(loss, motion.trainable_variables)
    assert float(tf.reduce_max(tf.abs(kernel_grad))) > 0
    assert float(tf.reduce_max(tf.abs(bias_grad))) > 0


def _pan(shift, frames=6, size=16, scale=1.0, sequences=64, seed=0) -> np.ndarray:
    """Sequences of a smooth random texture moving by `shift` = (dy, dx) pixels a frame."""
    rng = np.random.default_rng(seed)
    dy, dx = shift
    big = size + frames * (abs(dy) + abs(dx)) + 8
    clips = []
    for _ in range(sequences):
        texture = rng.random((big // 4 + 1, big // 4 + 1))
        texture = np.kron(texture, np.ones((4, 4)))[:big, :big]  # blocks: clear edges
        y0, x0 = big // 2 - size // 2, big // 2 - size // 2
        clips.append([texture[y0 - t * dy: y0 - t * dy + size, x0 - t * dx: x0 - t * dx + size]
                      for t in range(frames)])
    return (np.asarray(clips, np.float32)[..., None] * scale)


@pytest.mark.parametrize("head, activation, scale", [
    ("motion", "sigmoid", 1.0),  # pictures in [0, 1]
    ("motion", "linear", 12.0),  # a field in physical units (mm/h, say)
    ("flow", "sigmoid", 1.0),
])
def test_training_finds_a_known_pan(head, activation, scale):
    """The oracle: frames that move (dy, dx) = (1, -2) pixels a frame. After a short
    training the motion the head reads out, at every interior pixel, is that shift."""
    shift = (1, -2)
    clips = _pan(shift, scale=scale)
    model = _model("next_frame", head, output_activation=activation)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mse")
    model.fit(clips[:, :-1], clips[:, 1:], batch_size=16, epochs=12, verbose=0)
    fields = models.motion_fields(model, clips[:4, :3], steps=2)  # [B, steps, H, W, 2]
    interior = fields[:, :, 4:-4, 4:-4]
    np.testing.assert_allclose(np.median(interior, axis=(0, 1, 2, 3)), shift, atol=0.35)
    if head == "motion":
        move = model.get_layer("move")
        logits = keras.Model(model.inputs, move.input[1])(clips[:4, :3])
        rows, columns = (np.asarray(w) for w in shift_weights(logits, "kernel", 3))
        assert np.bincount(rows[:, 1:, 1:-1, 1:-1].argmax(-1).ravel()).argmax() - 3 == shift[0]
        assert np.bincount(columns[:, 1:, 1:-1, 1:-1].argmax(-1).ravel()).argmax() - 3 == shift[1]


@pytest.mark.parametrize("dy, dx", [(3, 0), (0, -3), (-2, 2)])
def test_moving_toward_a_border_does_not_darken(dy, dx):
    """What enters through a border is the border: a uniform field stays uniform."""
    frames = np.full((1, 16, 16, 2), 0.7, np.float32)
    taps = np.arange(-3, 4)
    rows = np.broadcast_to((taps == dy).astype(np.float32), (1, 16, 16, 7))
    columns = np.broadcast_to((taps == dx).astype(np.float32), (1, 16, 16, 7))
    moved = np.asarray(move_frames(frames, rows, columns, 3))
    np.testing.assert_allclose(moved, 0.7, atol=1e-6)


def test_one_hot_shift_is_an_exact_translation():
    frames = np.random.default_rng(0).random((1, 16, 16, 3), dtype=np.float32)
    taps = np.arange(-3, 4)
    rows = np.broadcast_to((taps == 2).astype(np.float32), (1, 16, 16, 7))
    columns = np.broadcast_to((taps == -1).astype(np.float32), (1, 16, 16, 7))
    moved = np.asarray(move_frames(frames, rows, columns, 3))
    # Content moves 2 rows down and 1 column left: moved(y, x) = frames(y - 2, x + 1).
    np.testing.assert_allclose(moved[:, 2:, :-1], frames[:, :-2, 1:], atol=1e-6)


@pytest.mark.parametrize("form", ["encoder_forecaster", "next_frame"])
def test_motion_model_round_trips_through_keras_files(tmp_path, form):
    model = _model(form)
    weights = model.get_layer("motion").get_weights()
    model.get_layer("motion").set_weights([w + 0.1 for w in weights])  # away from the start
    clips = _clips("coloured", channels=1)
    before = models.forecast(model, clips[:, :3], steps=4)
    model.save(tmp_path / "motion.keras")
    reloaded = keras.models.load_model(tmp_path / "motion.keras")
    np.testing.assert_allclose(models.forecast(reloaded, clips[:, :3], steps=4), before,
                               atol=1e-6)
    assert any(isinstance(layer, Move) for layer in reloaded.layers)


def test_motion_head_runs_in_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = _model(head="flow")
        clips = _clips("mid_grey", channels=1)
        forecast = np.asarray(model(clips[:, :3]))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert forecast.dtype == np.float32
    # float16 features, float32 motion: the start is still copy-last.
    np.testing.assert_allclose(forecast, np.repeat(clips[:, 2:3], 3, axis=1), atol=1e-6)


def test_motion_fields_of_a_residual_model_are_none():
    model = _model(head="residual")
    assert models.motion_fields(model, np.zeros((1, 3, 16, 16, 1), np.float32), 2) is None


@run_if(extra="jax")
def test_motion_head_gives_equal_values_under_tensorflow_and_jax(tmp_path):
    """Checkpoints saved under TensorFlow forecast the same frames, and read the same
    motion, under JAX (with TensorFlow unimportable there): both heads, one interpreter."""
    from tests.helpers.cli import run_jax_script

    clips = _clips("coloured", channels=1)
    np.save(tmp_path / "context.npy", clips[:, :3])
    built = {}
    for head in ("motion", "flow"):
        model = _model(head=head)
        motion = model.get_layer("motion")
        rng = np.random.default_rng(3)
        motion.set_weights([0.2 * rng.standard_normal(w.shape).astype("float32") + w
                            for w in motion.get_weights()])  # a motion that moves pixels
        model.save(tmp_path / f"{head}.keras")
        built[head] = model
    code = """
import sys, keras, numpy as np
import framepred
from framepred import models
assert keras.backend.backend() == "jax"
context = np.load(sys.argv[1] + "/context.npy")
for head in ("motion", "flow"):
    model = keras.models.load_model(f"{sys.argv[1]}/{head}.keras")
    np.save(f"{sys.argv[1]}/{head}_forecast.npy", models.forecast(model, context, 4))
    np.save(f"{sys.argv[1]}/{head}_motion.npy", models.motion_fields(model, context, 4))
print("ok")
"""
    result = run_jax_script(code, str(tmp_path))
    assert result.returncode == 0, result.stderr[-4000:]
    for head, model in built.items():
        np.testing.assert_allclose(np.load(tmp_path / f"{head}_forecast.npy"),
                                   models.forecast(model, clips[:, :3], 4), atol=1e-5)
        np.testing.assert_allclose(np.load(tmp_path / f"{head}_motion.npy"),
                                   models.motion_fields(model, clips[:, :3], 4), atol=1e-4)


def test_forward_warp_keeps_the_frame_sum_and_translates_as_backward():
    """Splatting sends every pixel's content somewhere: the sum of a frame whose content
    stays inside it is kept, whatever the weights, where gathering (backward) is not
    bound to; on a translation the two agree."""
    rng = np.random.default_rng(0)
    frames = np.zeros((2, 16, 16, 1), np.float32)
    frames[:, 5:11, 5:11] = rng.random((2, 6, 6, 1))
    rows, columns = (w / w.sum(-1, keepdims=True)
                     for w in rng.random((2, 2, 8, 8, 7)).astype(np.float32))
    moved = np.asarray(move_frames(frames, rows, columns, 3, 2, "forward"))
    np.testing.assert_allclose(moved.sum(), frames.sum(), rtol=1e-5)
    assert abs(float(np.asarray(move_frames(frames, rows, columns, 3, 2)).sum())
               - float(frames.sum())) > 1e-3
    taps = np.arange(-3, 4)
    rows = np.broadcast_to((taps == 2).astype(np.float32), (2, 8, 8, 7))
    columns = np.broadcast_to((taps == -1).astype(np.float32), (2, 8, 8, 7))
    picture = rng.random((2, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(move_frames(picture, rows, columns, 3, 2, "forward")),
                               np.asarray(move_frames(picture, rows, columns, 3, 2)), atol=1e-6)


def test_forward_warp_starts_as_copy_last_and_finds_a_pan():
    clips = _pan((1, -2))
    model = _model("next_frame", "flow", warp="forward")
    np.testing.assert_allclose(np.asarray(model(clips[:2, :3])),
                               np.clip(clips[:2, :3], 1e-3, 1 - 1e-3), atol=1e-6)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mse")
    model.fit(clips[:, :-1], clips[:, 1:], batch_size=16, epochs=12, verbose=0)
    fields = models.motion_fields(model, clips[:4, :3], steps=2)
    np.testing.assert_allclose(np.median(fields[:, :, 4:-4, 4:-4], axis=(0, 1, 2, 3)), (1, -2),
                               atol=0.35)
