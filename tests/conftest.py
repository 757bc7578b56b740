"""Shared fixtures: Hydra composition, one finished `debug=fast` run to reuse, and the
order the files run in. Plain helper functions live in tests/helpers/ (skips on a
missing extra, backend or GPU: tests/helpers/run_if.py)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_JAX_CACHE = "JAX_COMPILATION_CACHE_DIR"
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"


def pytest_configure(config):
    """One JAX compilation cache for the session's subprocesses, both workers' alike:
    the suite's JAX commands compile the same few programs over and over (a resumed job
    its first start's, predict evaluate's), and XLA's compile is most of their time on
    the CPU. The cache only skips recompiling; every program runs as compiled anew."""
    if _JAX_CACHE in os.environ or "PYTEST_XDIST_WORKER" in os.environ:
        return  # the user's own cache, or the one the main process made for its workers
    config._framepred_jax_cache = tempfile.mkdtemp(prefix="framepred-tests-jax-cache-")
    os.environ[_JAX_CACHE] = config._framepred_jax_cache
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"  # tiny programs too
    # XLA's LLVM passes are most of a compile on the CPU and buy nothing for the suite's
    # tiny programs, which run once or a few times: without them the JAX checks take
    # about 15% less time (and TensorFlow's jit_compile ones too). A user's own
    # XLA_FLAGS win.
    os.environ.setdefault("XLA_FLAGS", TEST_XLA_FLAGS)


def pytest_unconfigure(config):
    folder = getattr(config, "_framepred_jax_cache", None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(_JAX_CACHE, None)


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
    """The folder of one finished `debug=fast` training run with the default model's
    flow head (debug=fast alone trains the residual head), made once per session."""
    from hydra import compose, initialize_config_dir

    from framepred.config import config_dir
    from framepred.train import train
    from tests.helpers.cli import FAST_FLOW

    run_dir = tmp_path_factory.mktemp("fast_run")
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=FAST_FLOW)
    train(cfg, run_dir=run_dir)
    return run_dir


# The files whose tests take longest, longest first (`./scripts/test.sh` prints the
# slowest tests). The suite runs on two xdist workers, a file on one worker
# (--dist loadfile); these start first, so no long file is left to run alone at the end.
SLOWEST_FILES = (  # by their tests' summed durations, 2026-12-06
    "test_resume.py", "test_devices.py", "test_jax_training.py", "test_models.py",
    "test_jax_backend.py", "test_train.py", "test_motion_head.py", "test_sampling.py",
    "test_your_own_footage.py", "test_cli_output.py", "test_losses.py", "test_bad_input.py",
    "test_evaluate_predict.py", "test_data_sources.py", "test_dashboards.py",
    "test_radar_loop.py", "test_packaging.py", "test_channels.py", "test_ssim_backends.py",
    "test_normalize.py",
)


def pytest_collection_modifyitems(config, items):
    """The slowest files first, each file's tests together and in their order."""
    rank = {name: index for index, name in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
