"""Where a test can run: one home for the skips on a missing extra, another Keras
backend or no GPU (in the spirit of Lightning's `RunIf`).

    pytestmark = run_if(extra="jax")                      # a whole module
    @run_if(gpu=True)                                     # one test
    pytest.param(..., marks=run_if(extra="weather"))      # one case
    skip_module_unless(extra="dev")                       # before importing an extra's
                                                          # modules at the top of a file

An extra's packages are the ones framepred's installed metadata lists for it (the
optional-dependencies of pyproject.toml), so the tests never restate them.
"""

from __future__ import annotations

import functools
import importlib.metadata
import re

import pytest


@functools.cache
def _extra_packages(extra: str) -> tuple[str, ...]:
    """The distributions pyproject.toml's optional-dependencies list for `extra`."""
    wanted = re.compile(rf"""extra\s*==\s*["']{re.escape(extra)}["']""")
    packages = tuple(re.match(r"[A-Za-z0-9._-]+", requirement).group(0)
                     for requirement in importlib.metadata.requires("framepred") or ()
                     if wanted.search(requirement))
    if not packages:
        raise ValueError(f"framepred has no extra {extra!r}")
    return packages


def _installed(package: str) -> bool:
    try:
        importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@functools.cache
def _gpu_visible() -> bool:
    from framepred.devices import has_gpu

    return has_gpu()


def unmet(*, extra: str | None = None, backend: str | None = None,
          gpu: bool = False) -> str | None:
    """Why a test with these needs cannot run here; None when it can. `extra`: an
    optional-dependencies group of framepred installed whole; `backend`: the Keras
    backend in use; `gpu`: a GPU visible to that backend."""
    if extra is not None:
        missing = [package for package in _extra_packages(extra) if not _installed(package)]
        if missing:
            return f"needs the {extra} extra (pip install -e '.[{extra}]'): {missing} missing"
    if backend is not None:
        import keras

        if keras.backend.backend() != backend:
            return f"needs KERAS_BACKEND={backend}, not {keras.backend.backend()}"
    if gpu and not _gpu_visible():
        return "needs a GPU; none is visible"
    return None


def run_if(*, extra: str | None = None, backend: str | None = None,
           gpu: bool = False) -> pytest.MarkDecorator:
    """A mark that skips its test, case or module where `unmet(...)` names a reason."""
    reason = unmet(extra=extra, backend=backend, gpu=gpu)
    return pytest.mark.skipif(reason is not None, reason=reason or "")


def skip_module_unless(*, extra: str | None = None, backend: str | None = None,
                       gpu: bool = False) -> None:
    """Skips the calling test module where `unmet(...)` names a reason; call it before
    the module imports what the reason is about."""
    reason = unmet(extra=extra, backend=backend, gpu=gpu)
    if reason is not None:
        pytest.skip(reason, allow_module_level=True)
