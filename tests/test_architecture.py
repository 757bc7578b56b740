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
              "framepred.keras_internals", "framepred.scoreboard", "framepred.optimizers",
              "framepred.xla"}
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


def _cycle() -> list[str]:
    """One import cycle among framepred's modules (the package itself left out, as
    every submodule's import runs it first), or [] when there is none."""
    graph = {module: sorted(name for name in names if name in MODULES and name != module
                            and name != "framepred")
             for module, names in MODULES.items()}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module):
        if module in visiting:
            return [*visiting[visiting.index(module):], module]
        if module in done:
            return []
        visiting.append(module)
        for name in graph[module]:
            cycle = visit(name)
            if cycle:
                return cycle
        visiting.pop()
        done.add(module)
        return []

    return next((cycle for cycle in map(visit, sorted(graph)) if cycle), [])


def test_no_import_cycles():
    assert not _cycle(), " -> ".join(_cycle())


# In a fresh interpreter: the framepred and third-party modules that the Keras-only
# modules load, and then what importing the config adds (the probe must see Hydra
# there, or it could not see it anywhere).
LOADED = """
import json, sys
import framepred.losses, framepred.metrics, framepred.models, framepred.ssim
library = sorted(sys.modules)
import framepred.config
print(json.dumps({"library": library, "config": sorted(set(sys.modules) - set(library))}))
"""


def test_keras_only_modules_load_no_hydra_nor_config():
    """What `import framepred.losses` (metrics, models, ssim) actually loads, indirect
    imports included: importing any of them runs `framepred/__init__.py`, which
    imports all four, so one interpreter answers for each."""
    import importlib.util
    import json
    import os
    import subprocess
    import sys

    # JAX where installed: its start-up costs half of TensorFlow's, and what framepred
    # loads does not depend on the backend.
    env = dict(os.environ)
    if importlib.util.find_spec("jax") is not None:
        env.update(KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", LOADED], capture_output=True, text=True,
                         check=True, cwd=REPO, env=env, timeout=300).stdout
    loaded = json.loads(out.splitlines()[-1])
    forbidden = {"hydra", "omegaconf", "framepred.config", "tensorboard"} | ENTRY_POINTS
    assert {"framepred.losses", "framepred.metrics", "framepred.models",
            "framepred.ssim"} <= set(loaded["library"])
    assert not [name for name in loaded["library"] if any(_within(name, f) for f in forbidden)]
    assert {"hydra", "omegaconf", "framepred.config"} <= set(loaded["config"])
