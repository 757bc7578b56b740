"""framepred's model and losses under KERAS_BACKEND=jax, the backend for several hosts.

Keras 3 `model.fit` fails under TF's MultiWorkerMirroredStrategy
(keras-team/keras#20585); multi-host training goes through `keras.distribution`
on JAX instead, so nothing in framepred.models/losses may need TensorFlow. Each
check runs in a fresh interpreter with TensorFlow and Hydra made unimportable,
and with the CPU split into 2 XLA devices for a real 2-way DataParallel step.
Skipped unless jax is installed (`pip install framepred[jax]`).
"""

from __future__ import annotations

import subprocess

import pytest

from tests.helpers.cli import run_jax_script

pytest.importorskip("jax")

def run_jax(code: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`code` under JAX on 2 virtual CPU devices, with `import tensorflow` and `import
    hydra` failing, as on a machine without them."""
    return run_jax_script(code, *args, timeout=timeout, unimportable=("tensorflow", "hydra"),
                          env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})


def test_model_losses_and_data_parallel_step_under_jax():
    code = """
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
    for name in LossName:
        value = losses.build_loss(name, filter_size=7, power_factors=(0.5, 0.5))(
            targets, model(inputs))
        assert np.isfinite(float(value)), (form, name)
    model.compile(optimizer="adam", loss=losses.SSIMLoss(filter_size=7),
                  metrics=[metrics.SSIM(filter_size=7), metrics.PSNR()])
    history = model.fit(inputs, targets, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0]), form
    forecast = models.forecast(model, inputs[:, :3], steps=2)
    assert forecast.shape == (4, 2, 16, 16, 1), forecast.shape
print("ok")
"""
    result = run_jax(code)
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.strip().endswith("ok")


@pytest.mark.slow
def test_bench_train_runs_synthetic_under_jax_without_tensorflow():
    code = ("import runpy; sys.argv = ['bench_train.py'] + sys.argv[1:]\n"
            "runpy.run_path('scripts/bench_train.py', run_name='__main__')")
    result = run_jax(code, "--synthetic", "--models", "default", "--frame-size", "16",
                     "--precisions", "float32", "--warmup", "1", "--steps", "1", "--context",
                     "3", "--future", "3")
    assert result.returncode == 0, result.stderr[-4000:]
    assert "backend jax" in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith("default/")]
    assert [row.split("|")[0].strip() for row in rows] == ["default/ours", "default/reference"]
    assert "ours (no TF)" in rows[1]


def test_stateful_rollout_equals_full_passes_under_jax():
    code = """
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
    for _ in range(4):  # the oracle: the last output over all frames so far
        frames = np.concatenate([frames, np.asarray(model(frames))[:, -1:]], axis=1)
    np.testing.assert_allclose(models.forecast(model, context, 4), frames[:, 3:], atol=1e-5)
    np.testing.assert_allclose(models.forecast(model, context, 4, carry_states=False),
                               frames[:, 3:], atol=1e-5)
print("ok")
"""
    result = run_jax(code)
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.strip().endswith("ok")
