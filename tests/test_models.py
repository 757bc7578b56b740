"""The model forms: shapes, causality, rollout, and serialization."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from framepred import models
from framepred.config import ModelConfig
from tests.helpers.cli import REPO

DATA = SimpleNamespace(frame_size=[16, 16], channels=1, context_frames=4, future_frames=3)


def _model(form, **changes):
    cfg = ModelConfig(form=form, filters=[4, 4], kernel_size=[3, 3], patch_size=2,
                      normalization="layer")
    for key, value in changes.items():
        setattr(cfg, key, value)
    keras.utils.set_random_seed(0)
    return models.build_model(cfg, DATA)


def _frames(seed, steps):
    return np.random.default_rng(seed).random((2, steps, 16, 16, 1), dtype=np.float32)


def _first_dependence(model, frames):
    """For each input frame k, the earliest output index that changes when k changes."""
    base = np.asarray(model(frames, training=False))
    earliest = []
    for k in range(frames.shape[1]):
        perturbed = frames.copy()
        perturbed[:, k] = 1.0 - perturbed[:, k]
        changed = np.abs(np.asarray(model(perturbed, training=False)) - base).max(axis=(0, 2, 3, 4))
        moved = np.nonzero(changed > 1e-6)[0]
        earliest.append(int(moved[0]) if moved.size else None)
    return earliest


@pytest.mark.parametrize("normalization", ["none", "layer", "group"])
def test_next_frame_is_causal(normalization):
    model = _model("next_frame", normalization=normalization)
    frames = _frames(0, 6)
    # Output t forecasts frame t+1 from frames <= t: changing frame k moves outputs >= k only.
    assert _first_dependence(model, frames) == [0, 1, 2, 3, 4, 5]


def test_causality_check_catches_the_keras_io_time_leak():
    """The keras-io example's Conv3D(padding="same") head lets output t read frame t+1."""
    frames = keras.Input((None, 16, 16, 1))
    hidden = keras.layers.ConvLSTM2D(4, 3, padding="same", return_sequences=True)(frames)
    head = keras.layers.Conv3D(1, 3, padding="same", activation="sigmoid")(hidden)
    leaky = keras.Model(frames, head)
    earliest = _first_dependence(leaky, _frames(0, 6))
    assert earliest[1:] == [0, 1, 2, 3, 4]  # frame k already moves output k-1


def test_encoder_forecaster_reads_only_the_context():
    model = _model("encoder_forecaster")
    assert model.input_shape == (None, 4, 16, 16, 1)
    assert model.output_shape == (None, 3, 16, 16, 1)
    context = _frames(1, 4)
    # The motion head starts as copy-last, which reads the last frame only: give its
    # layers weights that read the features, as training does.
    rng = np.random.default_rng(2)
    for name in ("motion", "head"):
        layer = model.get_layer(name)
        layer.set_weights([0.3 * rng.standard_normal(w.shape).astype("float32")
                           for w in layer.get_weights()])
    # Every context frame informs the forecast, and nothing else can: the future is not an input.
    assert all(k == 0 for k in _first_dependence(model, context))


def test_next_frame_rollout_feeds_predictions_back():
    model = _model("next_frame")
    context = _frames(2, 4)
    rollout = models.forecast(model, context, steps=3)
    assert rollout.shape == (2, 3, 16, 16, 1)
    first = np.asarray(model(context, training=False))[:, -1]
    np.testing.assert_allclose(rollout[:, 0], first, atol=1e-6)
    extended = np.concatenate([context, rollout[:, :1]], axis=1)
    second = np.asarray(model(extended, training=False))[:, -1]
    np.testing.assert_allclose(rollout[:, 1], second, atol=1e-6)


def _full_pass_rollout(model, context, steps):
    """The oracle: every new frame is the model's last output over all frames so far."""
    frames = context
    for _ in range(steps):
        latest = np.asarray(model(frames, training=False))[:, -1:]
        frames = np.concatenate([frames, latest], axis=1)
    return frames[:, context.shape[1]:]


@pytest.mark.parametrize("skip, head", [(True, "flow"), (True, "residual"), (False, "residual")])
@pytest.mark.parametrize("normalization", ["none", "layer", "group"])
def test_stateful_rollout_equals_the_full_pass_rollout(normalization, skip, head):
    """One pass over the context, then one ConvLSTM step per frame: the same frames."""
    model = _model("next_frame", normalization=normalization, skip=skip, head=head)
    context = _frames(7, 4)
    rollout = models.forecast(model, context, steps=4)
    assert models.step_model(model) is models.step_model(model)  # built once
    np.testing.assert_allclose(rollout, _full_pass_rollout(model, context, 4), atol=1e-5)
    np.testing.assert_allclose(
        rollout, models.forecast(model, context, steps=4, carry_states=False), atol=1e-5)


def test_stateful_rollout_after_reload(tmp_path):
    model = _model("next_frame", normalization="group")
    model.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    context = _frames(8, 3)
    np.testing.assert_allclose(models.forecast(reloaded, context, steps=3),
                               _full_pass_rollout(model, context, 3), atol=1e-5)


def test_checkpoint_without_states_forecasts_by_full_passes(tmp_path):
    """Checkpoints saved before the ConvLSTMs returned their states still forecast."""
    frames = keras.Input((None, 16, 16, 1))
    hidden = keras.layers.ConvLSTM2D(4, 3, padding="same", return_sequences=True)(frames)
    head = keras.layers.Conv3D(1, 1, activation="sigmoid")(hidden)
    keras.Model(frames, head).save(tmp_path / "old.keras")
    old = keras.models.load_model(tmp_path / "old.keras")
    assert models.step_model(old) is None
    context = _frames(9, 3)
    np.testing.assert_allclose(models.forecast(old, context, steps=3),
                               _full_pass_rollout(old, context, 3), atol=1e-5)


def test_stateful_rollout_trims_mirrored_padding():
    """Under MirroredStrategy (2 virtual CPUs), a batch of 1 comes back as 1 row."""
    code = """
import keras, numpy as np
from types import SimpleNamespace
from framepred import models
from framepred.config import ModelConfig
from framepred.devices import build_strategy, split_cpu
split_cpu(2)
strategy = build_strategy("mirrored")
assert strategy.num_replicas_in_sync == 2
cfg = ModelConfig(form="next_frame", filters=(4,), kernel_size=(3,), patch_size=2,
                  normalization="group")
keras.utils.set_random_seed(0)
with strategy.scope():
    model = models.build_model(cfg, SimpleNamespace(frame_size=(16, 16), channels=1))
context = np.random.default_rng(0).uniform(size=(1, 3, 16, 16, 1)).astype("float32")
stateful = models.forecast(model, context, 3)
assert stateful.shape == (1, 3, 16, 16, 1), stateful.shape
np.testing.assert_allclose(stateful, models.forecast(model, context, 3, carry_states=False),
                           atol=1e-5)
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


def test_encoder_forecaster_rolls_out_past_its_horizon():
    model = _model("encoder_forecaster")
    context = _frames(3, 4)
    rollout = models.forecast(model, context, steps=5)
    assert rollout.shape == (2, 5, 16, 16, 1)
    np.testing.assert_allclose(rollout[:, :3], np.asarray(model(context, training=False)),
                               atol=1e-6)


@pytest.mark.parametrize("form", ["next_frame", "encoder_forecaster"])
def test_model_reloads_without_custom_objects(tmp_path, form):
    model = _model(form, patch_size=4)
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    frames = _frames(4, 4)
    np.testing.assert_allclose(np.asarray(reloaded(frames)), np.asarray(model(frames)), atol=1e-6)
    assert models.model_form(reloaded) == form


def test_patches_round_trip():
    frames = _frames(5, 3)
    patches = models.SpaceToDepth(4)(frames)
    assert tuple(patches.shape) == (2, 3, 4, 4, 16)
    np.testing.assert_array_equal(np.asarray(models.DepthToSpace(4)(patches)), frames)


def _footage(kind: str) -> np.ndarray:
    """[2, 6, 16, 16, 3] RGB clips in [0, 1] that need no download."""
    if kind == "pan":  # a camera panning over a natural photograph, one pixel a frame
        from skimage import data, transform

        photo = transform.resize(data.astronaut(), (32, 32), anti_aliasing=True)
        clips = [[photo[y + t: y + t + 16, 4 + t: 20 + t] for t in range(6)] for y in (0, 8)]
        return np.asarray(clips, np.float32)
    rng = np.random.default_rng(1)
    background = {"mid_grey": [0.5, 0.5, 0.5], "coloured": [0.8, 0.35, 0.1]}[kind]
    clips = np.broadcast_to(np.asarray(background, np.float32), (2, 6, 16, 16, 3)).copy()
    clips[:, :, 4:9, 4:9] = rng.random((2, 6, 1, 1, 3))  # a mover whose colour changes
    return clips


FOOTAGE = ("pan", "mid_grey", "coloured")


@pytest.mark.parametrize("activation", ["sigmoid", "hard_sigmoid", "linear", "relu"])
@pytest.mark.parametrize("form", ["next_frame", "encoder_forecaster"])
def test_initialized_head_starts_exactly_as_copy_last(form, activation):
    """Before training, the forecast is the latest frame, to 1e-3 (the sigmoid's clip),
    on natural, mid-grey and coloured footage, for every output activation offered. One
    model forecasts the three kinds in one batch: each sequence is forecast alone."""
    data = SimpleNamespace(frame_size=[16, 16], channels=3, context_frames=4, future_frames=2)
    cfg = ModelConfig(form=form, filters=[4], kernel_size=[3], patch_size=2,
                      output_activation=activation)
    keras.utils.set_random_seed(0)
    model = models.build_model(cfg, data)
    models.init_head(model, level=0.5)
    clips = np.concatenate([_footage(kind) for kind in FOOTAGE])
    forecast = np.asarray(models.forecast(model, clips[:, :4], steps=2))
    expected = np.repeat(clips[:, 3:4], 2, axis=1)
    # The same number of clips of each kind, in FOOTAGE's order.
    for kind, got, want in zip(FOOTAGE, np.split(forecast, len(FOOTAGE)),
                               np.split(expected, len(FOOTAGE))):
        np.testing.assert_allclose(got, want, atol=models.COPY_EPSILON + 1e-6, err_msg=kind)


def test_head_without_skip_starts_at_the_data_mean():
    model = _model("encoder_forecaster", skip=False, head="residual")
    models.init_head(model, level=0.1)
    forecast = np.asarray(model(np.zeros((1, 4, 16, 16, 1), np.float32)))
    assert abs(float(forecast.mean()) - 0.1) < 0.05
