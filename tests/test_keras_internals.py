"""framepred.keras_internals: each private Keras API framepred uses still does what
framepred needs. A Keras release that changes one fails here, by name."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import framepred.metrics
from framepred import keras_internals
from tests.helpers.run_if import run_if

FRAMES = np.random.default_rng(0).uniform(size=(4, 2, 16, 16, 1)).astype("float32")


def _frame_model():
    """[B, 2, 16, 16, 1] -> the same shape, one per-frame convolution."""
    inputs = keras.Input((2, 16, 16, 1))
    outputs = keras.layers.Conv3D(1, (1, 3, 3), padding="same", name="conv")(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="mse", metrics=[framepred.metrics.SSIM()])
    return model


def test_run_through_graph_replays_the_layers_with_a_changed_call():
    model = _frame_model()

    def doubled(operation):
        if operation.name != "conv":
            return operation
        return lambda *args, **kwargs: 2.0 * operation(*args, **kwargs)

    replayed = keras_internals.run_through_graph(model, [keras.ops.convert_to_tensor(FRAMES)],
                                                 operation_fn=doubled)
    np.testing.assert_allclose(np.asarray(replayed), 2.0 * np.asarray(model(FRAMES)),
                               rtol=1e-6, atol=1e-6)


class _Record(keras.callbacks.Callback):
    def __init__(self, start_at=None, tensorboard=None):
        super().__init__()
        self.start_at, self.tensorboard = start_at, tensorboard
        self.epochs, self.writers = [], []

    def on_train_begin(self, logs=None):
        if self.start_at is not None:
            keras_internals.set_initial_epoch(self.model, self.start_at)

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(epoch)
        if self.tensorboard is not None:
            self.writers = keras_internals.summary_writers(self.tensorboard)


def test_a_higher_is_better_metric_is_maximized_in_auto_mode_and_fit_starts_late():
    model = _frame_model()
    stopping = keras.callbacks.EarlyStopping(monitor="ssim", mode="auto")
    record = _Record(start_at=2)
    history = model.fit(FRAMES, FRAMES, epochs=3, batch_size=4, verbose=0,
                        callbacks=[stopping, record])
    assert stopping.monitor_op is keras.ops.greater  # SSIM: higher is better
    assert record.epochs == [2] and len(history.history["loss"]) == 1  # epochs 0, 1 skipped


def test_metric_without_a_direction_is_refused_in_auto_mode():
    """The oracle for the test above: without `_direction` Keras cannot tell."""
    metric = framepred.metrics.SSIM()
    del metric._direction
    model = _frame_model()
    model.compile(optimizer="sgd", loss="mse", metrics=[metric])
    with pytest.raises(ValueError, match="maximized or minimized"):
        model.fit(FRAMES, FRAMES, epochs=1, batch_size=4, verbose=0,
                  callbacks=[keras.callbacks.EarlyStopping(monitor="ssim", mode="auto")])


@run_if(backend="tensorflow")
def test_summary_writers_are_keras_tensorboards_open_writers(tmp_path):
    tensorboard = keras.callbacks.TensorBoard(log_dir=str(tmp_path))
    record = _Record(tensorboard=tensorboard)
    _frame_model().fit(FRAMES, FRAMES, epochs=1, batch_size=4, verbose=0,
                       validation_data=(FRAMES, FRAMES), callbacks=[tensorboard, record])
    assert len(record.writers) == 2  # train/ and validation/
    for writer in record.writers:
        writer.flush()


def test_backup_and_restore_saves_through_its_private_hook(tmp_path):
    """framepred.callbacks.checkpoints.Backup subclasses Keras' BackupAndRestore and
    overrides its private `_save_model`, reading `_current_epoch`: Keras must still
    save through that hook at each epoch end (after advancing the epoch) and every
    `save_freq` batches."""
    saves = []

    class Probe(keras.callbacks.BackupAndRestore):
        def _save_model(self):
            saves.append((self.save_freq, self._current_epoch))

    for save_freq in ("epoch", 2):
        _frame_model().fit(FRAMES, FRAMES, epochs=2, batch_size=1, verbose=0,
                           callbacks=[Probe(str(tmp_path / str(save_freq)), save_freq)])
    assert saves == [("epoch", 1), ("epoch", 2)] + [(2, 0)] * 2 + [(2, 1)] * 2
