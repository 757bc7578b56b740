"""framepred's model and losses under KERAS_BACKEND=jax, the backend for several hosts.

Keras 3 `model.fit` fails under TF's MultiWorkerMirroredStrategy
(keras-team/keras#20585); multi-host training goes through `keras.distribution`
on JAX instead, so nothing in framepred.models/losses may need TensorFlow. The
checks run in one fresh interpreter, each in its own forked child, with TensorFlow
and Hydra made unimportable, and with the CPU split into 2 XLA devices for a real
2-way DataParallel step. Skipped unless jax is installed (`pip install framepred[jax]`).
"""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.helpers.cli import run_jax_checks, run_jax_script
from tests.helpers.run_if import run_if

pytestmark = run_if(extra="jax")

# As on a machine without TensorFlow and Hydra, with 2 CPU devices for XLA.
UNIMPORTABLE = ("tensorflow", "hydra")
TWO_DEVICES = {"XLA_FLAGS": " ".join([os.environ.get("XLA_FLAGS", ""),
                                      "--xla_force_host_platform_device_count=2"])}


def run_jax(code: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter under JAX on 2 virtual CPU devices, with `import
    tensorflow` and `import hydra` failing, as on a machine without them."""
    return run_jax_script(code, *args, timeout=timeout, unimportable=UNIMPORTABLE,
                          env=TWO_DEVICES)

MODEL_LOSSES_AND_DATA_PARALLEL_STEP = """
import keras, numpy as np
from types import SimpleNamespace
from framepred import losses, metrics, models
from framepred.config import LossName, ModelConfig
assert keras.backend.backend() == "jax"
devices = keras.distribution.list_devices()
assert len(devices) == 2, devices
keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
data = SimpleNamespace(frame_size=(16, 16), channels=1, context_frames=3, future_frames=2)
rng = np.random.default_rng(0)
windows = rng.uniform(size=(4, 5, 16, 16, 1)).astype("float32")
for form in ("encoder_forecaster", "next_frame"):
    cfg = ModelConfig(form=form, filters=(4,), kernel_size=(3,), patch_size=2)
    model = models.build_model(cfg, data)
    if form == "next_frame":
        inputs, targets = windows[:, :-1], windows[:, 1:]
    else:
        inputs, targets = windows[:, :3], windows[:, 3:]
        # Each loss once: it reads the forecast, a [B, T, H, W, C] tensor like any other.
        forecast = model.predict_on_batch(inputs)
        for name in LossName:
            value = losses.build_loss(name, filter_size=7, power_factors=(0.5, 0.5))(
                targets, forecast)
            assert np.isfinite(float(value)), (form, name)
    model.compile(optimizer="adam", loss=losses.SSIMLoss(filter_size=7),
                  metrics=[metrics.SSIM(filter_size=7), metrics.PSNR()])
    history = model.fit(inputs, targets, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0]), form
    forecast = models.forecast(model, inputs[:, :3], steps=2)
    assert forecast.shape == (4, 2, 16, 16, 1), forecast.shape
print("ok")
"""

BENCH_TRAIN_SYNTHETIC = """
import runpy, sys
sys.argv = ["bench_train.py", "--synthetic", "--models", "default", "--frame-size", "16",
            "--precisions", "float32", "--warmup", "1", "--steps", "1", "--context", "3",
            "--future", "3"]
runpy.run_path("scripts/bench_train.py", run_name="__main__")
"""

STATEFUL_ROLLOUT = """
import keras, numpy as np
from types import SimpleNamespace
from framepred import models
from framepred.config import ModelConfig
assert keras.backend.backend() == "jax"
data = SimpleNamespace(frame_size=(16, 16), channels=1)
context = np.random.default_rng(0).uniform(size=(2, 3, 16, 16, 1)).astype("float32")
for normalization in ("none", "layer", "group"):
    cfg = ModelConfig(form="next_frame", filters=(4, 4), kernel_size=(3, 3), patch_size=2,
                      normalization=normalization)
    model = models.build_model(cfg, data)
    frames = context
    for _ in range(3):  # the oracle: the last output of a full pass over all frames so far
        # (jitted: op-by-op under JAX costs 3x as much here)
        frames = np.concatenate([frames, np.asarray(model.predict_on_batch(frames))[:, -1:]],
                                axis=1)
    np.testing.assert_allclose(models.forecast(model, context, 3), frames[:, 3:], atol=1e-5)
    np.testing.assert_allclose(models.forecast(model, context, 3, carry_states=False),
                               frames[:, 3:], atol=1e-5)
print("ok")
"""


@pytest.fixture(scope="module")
def checks(tmp_path_factory):
    return run_jax_checks(
        {"model_losses_and_data_parallel_step": MODEL_LOSSES_AND_DATA_PARALLEL_STEP,
         "bench_train_synthetic": BENCH_TRAIN_SYNTHETIC, "stateful_rollout": STATEFUL_ROLLOUT},
        tmp_path_factory.mktemp("jax_checks"), unimportable=UNIMPORTABLE, env=TWO_DEVICES)


def passed(result: dict) -> bool:
    return result["rc"] == 0 and result["stdout"].strip().endswith("ok")


def test_model_losses_and_data_parallel_step_under_jax(checks):
    result = checks["model_losses_and_data_parallel_step"]
    assert passed(result), result["stderr"][-4000:]


@pytest.mark.slow
def test_bench_train_runs_synthetic_under_jax_without_tensorflow(checks):
    result = checks["bench_train_synthetic"]
    assert result["rc"] == 0, result["stderr"][-4000:]
    assert "backend jax" in result["stdout"]
    rows = [line for line in result["stdout"].splitlines() if line.startswith("default/")]
    assert [row.split("|")[0].strip() for row in rows] == ["default/ours", "default/reference"]
    assert "ours (no TF)" in rows[1]


def test_stateful_rollout_equals_full_passes_under_jax(checks):
    result = checks["stateful_rollout"]
    assert passed(result), result["stderr"][-4000:]
