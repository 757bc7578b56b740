"""The import rules of docs/architecture.md, read from the code's own import statements.

Every import counts, module-level or inside a function: a late import of TensorFlow
in `losses` would break the JAX backend just the same.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers.cli import REPO

PACKAGE = REPO / "framepred"
ENTRY_POINTS = {"framepred.train", "framepred.evaluate", "framepred.predict",
                "framepred.preview"}
# Keras only: they run under every Keras backend, TensorFlow absent (JAX machines).
KERAS_ONLY = {"framepred.ssim", "framepred.losses", "framepred.metrics", "framepred.models",
              "framepred.scoreboard",
              "framepred.optimizers", "framepred.xla"}
# Where Hydra may be imported: the entry points, the schemas' registration, and the
# handler that turns Hydra's errors into one line.
HYDRA_ALLOWED = ENTRY_POINTS | {"framepred.config", "framepred.errors"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, `from framepred import x` as `framepred.x`."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            if node.module.startswith("framepred"):
                found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


MODULES = {_module_name(path): _imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _offending(module: str, forbidden) -> list[str]:
    return sorted(name for name in MODULES[module] if any(_within(name, f) for f in forbidden))


@pytest.mark.parametrize(
    "module", sorted(m for m in MODULES if any(_within(m, package) for package in KERAS_ONLY)))
def test_losses_metrics_models_use_keras_only(module):
    assert not _offending(module, {"tensorflow", "hydra", "tensorboard"})


# Where TensorFlow may be imported: on the TensorFlow backend only (each import there
# sits behind a backend check or in the tf.data pipeline that only that backend uses).
TENSORFLOW_ALLOWED = {"framepred", "framepred.devices", "framepred.data.pipeline"}


@pytest.mark.parametrize("module", sorted(set(MODULES) - TENSORFLOW_ALLOWED))
def test_tensorflow_stays_with_its_backend(module):
    assert not _offending(module, {"tensorflow"})


@pytest.mark.parametrize("module", sorted(set(MODULES) - HYDRA_ALLOWED))
def test_only_entry_points_and_config_import_hydra(module):
    assert not _offending(module, {"hydra"})


@pytest.mark.parametrize("module", sorted(set(MODULES) - ENTRY_POINTS - {"framepred"}))
def test_library_never_imports_an_entry_point(module):
    assert not _offending(module, ENTRY_POINTS)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _within(m, "framepred.run")))
def test_run_folder_never_imports_callbacks(module):
    """Callbacks write into the run folder; the run folder knows nothing of training."""
    assert not _offending(module, {"framepred.callbacks", "framepred.devices"})


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _within(m, "framepred.data")))
def test_data_imports_only_data_and_errors(module):
    ours = {name for name in MODULES[module] if _within(name, "framepred")}
    assert all(_within(name, "framepred.data") or _within(name, "framepred.errors")
               for name in ours), sorted(ours)
