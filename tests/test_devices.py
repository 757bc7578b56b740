"""Precision, XLA, mirrored distribution and throughput logging."""

from __future__ import annotations

import importlib.util
import logging
import math
import re

import numpy as np
import pytest

from framepred.run.folder import RunPaths
from tests.helpers.cli import REPO, run_cli
from tests.helpers.events import accumulator, scalars
from tests.helpers.run_if import run_if

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


@pytest.fixture(autouse=True)
def float32_policy_after():
    """train() sets Keras' global dtype policy; later tests expect the default."""
    yield
    import keras

    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("precision", PRECISIONS)
def test_precision_trains_finite_and_checkpoint_reloads(compose_train, tmp_path, caplog,
                                                        precision):
    import keras

    from framepred.callbacks.throughput import TAG
    from framepred.train import train

    cfg = compose_train(["debug=fast", f"trainer.precision={precision}", "trainer.verbose=0"])
    with caplog.at_level(logging.INFO, logger="framepred"):
        payload = train(cfg, run_dir=tmp_path)
    run = RunPaths(tmp_path)

    assert all(math.isfinite(m["mean"]) for m in payload["model"].values())
    lines = [r.getMessage() for r in caplog.records if r.name == "framepred.callbacks.throughput"]
    assert len(lines) == 1 and "frames/s" in lines[0] and f"precision: {precision}" in lines[0]
    assert "device: CPU" in lines[0]
    (step, frames_per_second), = scalars(accumulator(run.tensorboard / "train"), TAG).items()
    assert step == 0 and frames_per_second > 0

    # A resumed run reloads after configure() set the policy: loss scaling comes back.
    keras.mixed_precision.set_global_policy(precision)
    model = keras.models.load_model(run.best)
    assert model.get_layer("encoder_0").dtype_policy.name == precision
    assert model.get_layer("forecast").dtype_policy.name == "float32"
    if precision == "mixed_float16":
        # Dynamic loss scaling, or float16 gradients underflow to zero.
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    # evaluate/predict reload under the default policy; the layers keep theirs.
    keras.mixed_precision.set_global_policy("float32")
    model = keras.models.load_model(run.best)
    assert model.get_layer("encoder_0").dtype_policy.name == precision
    context = np.random.default_rng(0).uniform(size=(2, 3, 16, 16, 1)).astype("float32")
    forecast = np.asarray(model.predict_on_batch(context))
    assert forecast.dtype == np.float32 and np.isfinite(forecast).all()


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("name", ["ssim", "ms_ssim", "blend", "mse"])
def test_losses_stay_float32_under_mixed_policies(precision, name):
    import keras

    from framepred.losses import build_loss

    keras.mixed_precision.set_global_policy(precision)
    compute = keras.mixed_precision.global_policy().compute_dtype
    rng = np.random.default_rng(0)
    y_true = keras.ops.convert_to_tensor(rng.uniform(size=(2, 2, 48, 48, 1)), compute)
    y_pred = keras.ops.convert_to_tensor(rng.uniform(size=(2, 2, 48, 48, 1)), compute)
    loss = build_loss(name, filter_size=7, power_factors=(0.5, 0.5))(y_true, y_pred)
    assert keras.backend.standardize_dtype(loss.dtype) == "float32"
    assert math.isfinite(float(loss))


def test_resolve_jit_picks_xla_on_gpus_only():
    import tensorflow as tf

    from framepred.devices import resolve_jit

    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    assert resolve_jit("auto") is has_gpu
    assert resolve_jit("true") is True and resolve_jit(True) is True
    assert resolve_jit("false") is False and resolve_jit(False) is False


def test_virtual_cpu_devices_after_start_up_is_a_user_error():
    import tensorflow as tf

    from framepred.devices import split_cpu
    from framepred.errors import FramepredError

    present = len(tf.config.list_logical_devices("CPU"))  # initializes the devices
    split_cpu(present)  # a sweep's next run asking for the same split: fine
    with pytest.raises(FramepredError, match="trainer.virtual_cpu_devices=.*fresh process"):
        split_cpu(present + 1)


def test_bench_model_sizes_match_the_configs(compose_train):
    spec = importlib.util.spec_from_file_location("bench_train", REPO / "scripts/bench_train.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    for name, overrides in (("default", []), ("moving_mnist", ["experiment=moving_mnist"])):
        cfg = compose_train(overrides)
        model = cfg.model
        assert bench.MODELS[name] == dict(
            form=model.form, filters=tuple(model.filters),
            kernel_size=tuple(model.kernel_size), patch_size=model.patch_size,
            skip=model.skip, head=str(model.head), motion_radius=model.motion_radius,
            forecaster_input=str(model.forecaster_input),
        ), name
        assert list(cfg.data.frame_size) == [64, 64]
        assert (cfg.data.context_frames, cfg.data.future_frames) == (10, 10)


@pytest.mark.slow
def test_xla_training_runs(compose_train, tmp_path):
    from framepred.train import train

    cfg = compose_train(["debug=fast", "trainer.jit_compile=true", "trainer.verbose=0",
                         "trainer.steps_per_execution=2"])
    payload = train(cfg, run_dir=tmp_path)
    assert all(math.isfinite(m["mean"]) for m in payload["model"].values())


@pytest.mark.slow
def test_mirrored_on_two_virtual_cpus_matches_one_device(tmp_path):
    """Same global batch (4 = 2 replicas x 2) and seed: the same training, to float error."""
    # forecast_images=1: one sequence under 2 replicas comes back padded to 2 rows unless
    # models.forecast trims it; the image callback runs in both runs.
    common = ["debug=fast", "trainer.epochs=2", "trainer.verbose=0", "trainer.forecast_images=1",
              "trainer.learning_rate=0.01"]
    single = run_cli("framepred.train", *common, "trainer.batch_size=4",
                     f"hydra.run.dir={tmp_path / 'single'}")
    mirrored = run_cli("framepred.train", *common, "trainer.batch_size=2",
                       "trainer.distribution=mirrored", "trainer.virtual_cpu_devices=2",
                       f"hydra.run.dir={tmp_path / 'mirrored'}")
    assert single.returncode == 0, single.stderr[-3000:]
    assert mirrored.returncode == 0, mirrored.stderr[-3000:]

    log = (tmp_path / "mirrored" / "train.log").read_text()
    assert "CPU (2 logical device(s))" in log
    assert "replicas: 2 | global batch 4 (2 per replica x 2 replicas)" in log
    assert "x 3 target steps (global batch 4)" in log  # the throughput line

    def losses(run):
        return list(scalars(accumulator(tmp_path / run / "tensorboard" / "train"),
                            "epoch_loss").values())

    single_losses, mirrored_losses = losses("single"), losses("mirrored")
    assert len(single_losses) == len(mirrored_losses) == 2
    message = f"single {single_losses}, mirrored {mirrored_losses}"
    np.testing.assert_allclose(mirrored_losses, single_losses, rtol=0, atol=1e-4, err_msg=message)
    # The tolerance is well below what training moves: the runs really are the same.
    assert abs(single_losses[1] - single_losses[0]) > 5 * 1e-4, message


@run_if(gpu=True)
def test_a_gpu_trains_with_xla_and_bfloat16_by_default_settings(compose_train, tmp_path, caplog):
    """On a GPU, jit_compile=auto turns XLA on, and mixed_bfloat16 trains to finite
    numbers; skipped where no GPU is visible (CI)."""
    from framepred.train import train

    cfg = compose_train(["debug=fast", "trainer.precision=mixed_bfloat16", "trainer.verbose=0"])
    with caplog.at_level(logging.INFO, logger="framepred"):
        payload = train(cfg, run_dir=tmp_path)
    assert re.search(r"device: \d+ GPU", caplog.text) and "XLA: True" in caplog.text
    assert all(math.isfinite(m["mean"]) for m in payload["model"].values())
