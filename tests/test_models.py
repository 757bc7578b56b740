"""The model forms: shapes, causality, rollout, and serialization."""

from __future__ import annotations

from types import SimpleNamespace

import keras
import numpy as np
import pytest

from framepred import models

DATA = SimpleNamespace(frame_size=[16, 16], channels=1, context_frames=4, future_frames=3)


def _model(form, **changes):
    cfg = SimpleNamespace(form=form, filters=[4, 4], kernel_size=[3, 3], patch_size=2,
                          normalization="layer", output_activation="sigmoid")
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


@pytest.mark.parametrize("form", ["next_frame", "encoder_forecaster"])
def test_initialized_head_starts_as_copy_last(form):
    """Before training, the skip-initialized head reproduces the latest frame."""
    model = _model(form)
    models.init_head(model, level=0.1)
    context = (_frames(6, 4) > 0.8).astype(np.float32)  # sparse bright pixels, as digits
    forecast = models.forecast(model, context, steps=1)[:, 0]
    assert np.abs(forecast - context[:, -1]).mean() < 0.1
    assert np.corrcoef(forecast.ravel(), context[:, -1].ravel())[0, 1] > 0.9


def test_head_without_skip_starts_at_the_data_mean():
    model = _model("encoder_forecaster", skip=False)
    models.init_head(model, level=0.1)
    forecast = np.asarray(model(np.zeros((1, 4, 16, 16, 1), np.float32)))
    assert abs(float(forecast.mean()) - 0.1) < 0.05
