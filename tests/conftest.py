"""Shared fixtures: Hydra composition and one finished `debug=fast` run to reuse."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def compose_train():
    """compose_train(overrides) -> the composed training config, as the CLI builds it."""
    from hydra import compose, initialize_config_dir

    from framepred.config import config_dir

    def compose_with(overrides=(), config_name="train"):
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            return compose(config_name, overrides=list(overrides))

    return compose_with


def run_cli(module: str, *args: str, cwd: Path | None = None, timeout: float = 600,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs `python -m <module> args...` as a user would; returns the finished process."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd or REPO, env=full_env,
        capture_output=True, text=True, timeout=timeout,
    )


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


def snapshot(folder: Path, skip=()) -> dict:
    """Every file under `folder`: content hash and modification time."""
    return {
        str(path.relative_to(folder)): (hashlib.sha256(path.read_bytes()).hexdigest(),
                                        path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not any(part in skip for part in path.relative_to(folder).parts)
    }
