"""Shared fixtures: Hydra composition, one finished `debug=fast` run to reuse, and the
`gpu` marker's skip. Plain helper functions live in tests/helpers/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture
def compose_train():
    """compose_train(overrides) -> the composed training config, as the CLI builds it."""
    from hydra import compose, initialize_config_dir

    from framepred.config import config_dir

    def compose_with(overrides=(), config_name="train"):
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            return compose(config_name, overrides=list(overrides))

    return compose_with


@pytest.fixture
def data_cfg(compose_train):
    """data_cfg(*overrides) -> the data config of `debug=fast` (16x16 frames, windows of
    3 context + 3 future) with `overrides`, for building sources directly."""
    def make(*overrides):
        return compose_train(["debug=fast", *overrides]).data

    return make


@pytest.fixture(scope="session")
def fast_run(tmp_path_factory) -> Path:
    """The folder of one finished `debug=fast` training run, made once per session."""
    from hydra import compose, initialize_config_dir

    from framepred.config import config_dir
    from framepred.train import train

    run_dir = tmp_path_factory.mktemp("fast_run")
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=["debug=fast"])
    train(cfg, run_dir=run_dir)
    return run_dir


def _has_gpu() -> bool:
    """A GPU visible to the Keras backend in use, without starting TensorFlow early."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return any(device.platform == "gpu" for device in jax.devices())
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` skip where no GPU is visible (CI's machine has none)."""
    gpu_tests = [item for item in items if "gpu" in item.keywords]
    if not gpu_tests or _has_gpu():
        return
    skip = pytest.mark.skip(reason="needs a GPU; none is visible")
    for item in gpu_tests:
        item.add_marker(skip)
