"""The NaN guard: a non-finite loss stops training with one message naming
the epoch and step, keeps the checkpoints of the last good epoch, exits non-zero."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from framepred import callbacks as framepred_callbacks
from framepred.callbacks import guards
from framepred.errors import exit_on_user_error


class PoisonWeights(keras.callbacks.Callback):
    """Test-only: sets one weight to NaN as epoch `epoch` (0-based) begins, so the
    first step of that epoch computes a NaN loss, as a diverged training would."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            weight = self.model.trainable_variables[0]
            weight.assign(np.full(weight.shape, np.nan, dtype="float32"))


def all_finite(model) -> bool:
    return all(np.isfinite(w).all() for w in model.get_weights())


def test_nan_loss_stops_and_keeps_the_good_checkpoint(tmp_path, compose_train, monkeypatch):
    from framepred.train import train

    original = framepred_callbacks.build_callbacks
    monkeypatch.setattr(framepred_callbacks, "build_callbacks",
                        lambda *args, **kwargs: [PoisonWeights(epoch=1),
                                                 *original(*args, **kwargs)])
    cfg = compose_train(["debug=fast", "trainer.epochs=3"])
    with pytest.raises(guards.NonFiniteLoss) as stopped:
        train(cfg, run_dir=tmp_path)

    message = str(stopped.value)
    assert "loss became nan at epoch 2, step 1" in message
    assert "\n" not in message
    # Epoch 1's checkpoints and backup stand; nothing was saved from the NaN epoch.
    for name in ("best.keras", "last.keras"):
        assert all_finite(keras.models.load_model(tmp_path / "checkpoints" / name))
    states = sorted(p.name for p in (tmp_path / "backup").iterdir())
    assert states == ["state-000001-00000000"]
    assert not (tmp_path / "complete.json").exists()
    assert not (tmp_path / "metrics.json").exists()


def test_nan_guard_exit_status_is_nonzero(capsys):
    with pytest.raises(SystemExit) as exited, exit_on_user_error():
        raise guards.NonFiniteLoss("loss became nan at epoch 2, step 1")
    assert exited.value.code == 3
    assert capsys.readouterr().err.strip() == \
        "framepred: error: loss became nan at epoch 2, step 1"


def test_guard_passes_finite_and_stops_inf():
    guard = guards.NonFiniteGuard(["trainer.learning_rate=1.0 may be too high"])
    guard.on_epoch_begin(4)
    guard.on_train_batch_end(0, {"loss": 0.25})
    with pytest.raises(guards.NonFiniteLoss, match=r"loss became inf at epoch 5, step 7; "
                       r".*likely cause: trainer.learning_rate=1.0"):
        guard.on_train_batch_end(6, {"loss": math.inf})


@pytest.mark.parametrize("overrides, cause", [
    (["trainer.precision=mixed_float16"], "trainer.precision=mixed_float16"),
    (["trainer.learning_rate=0.5"], "trainer.learning_rate=0.5"),
    (["trainer.clipnorm=null"], "trainer.clipnorm"),
])
def test_likely_causes_name_the_setting(compose_train, overrides, cause):
    causes = guards.likely_causes(compose_train(["debug=fast", *overrides]))
    assert any(cause in text for text in causes), causes


@pytest.mark.parametrize("overrides", [
    pytest.param([], id="defaults"),
    # framepred's MS-SSIM gradient is finite (ssim's safe power), so MS-SSIM is no cause.
    pytest.param(["loss=ms_ssim"], id="ms_ssim"),
])
def test_settings_that_cause_no_nan_suggest_no_cause(compose_train, overrides):
    assert guards.likely_causes(compose_train(["debug=fast", *overrides])) == []
