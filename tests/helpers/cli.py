"""Running framepred's commands as a user would: a fresh interpreter, the real CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# TensorFlow's C++ start-up lines are not ours to count.
TF_NOISE = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages before absl)")


# debug=fast with the default model's flow head (debug=fast alone trains the residual
# head): the session's fast_run, and every start in that run's folder or a copy of it.
FAST_FLOW = ["debug=fast", "model.head=flow", "model.forecaster_input=forecast"]


def run_cli(module: str, *args: str, cwd: Path | None = None, timeout: float = 600,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs `python -m <module> args...` as a user would; returns the finished process."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd or REPO, env=full_env,
        capture_output=True, text=True, timeout=timeout,
    )


def error_lines(stderr: str) -> list[str]:
    """The non-blank lines of `stderr` that are not TensorFlow's start-up chatter."""
    return [line for line in stderr.splitlines() if line.strip() and not TF_NOISE.match(line)]


# Imports the commands once, then forks a child per case that runs `main()` with the
# case's argv, as the shell would: TensorFlow's import is paid once, not per case.
_DRIVER = r"""
import importlib, json, os, sys
cases, out = json.loads(sys.argv[1]), sys.argv[2]
modules = {m: importlib.import_module(m) for m in {c["module"] for c in cases}}
results = []
for i, case in enumerate(cases):
    err, std = f"{out}/{i}.err", f"{out}/{i}.out"
    pid = os.fork()
    if pid == 0:
        os.dup2(os.open(err, os.O_WRONLY | os.O_CREAT), 2)
        os.dup2(os.open(std, os.O_WRONLY | os.O_CREAT), 1)
        os.environ.update(case.get("env", {}))
        sys.argv = [case["module"], *case["args"]]
        code = 0
        try:
            modules[case["module"]].main()
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        except BaseException:
            import traceback; traceback.print_exc(); code = 99
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    results.append({"rc": os.waitstatus_to_exitcode(status),
                    "stderr": open(err).read(), "stdout": open(std).read()})
print(json.dumps(results))
"""


def run_in_one_process(cases: list[dict], workdir: Path, cwd: Path | None = None,
                       timeout: float = 300, env: dict | None = None) -> list[dict]:
    """Runs commands `{"module", "args"[, "env"]}` as the CLI would, one forked child
    each after one import; returns `{"rc", "stdout", "stderr"}` per case. A command's
    imports must not have started TensorFlow's runtime (ours do not: they only load it),
    nor JAX's backends. `env`: for the importing process (KERAS_BACKEND, say).
    """
    out = workdir / "cli-output"
    out.mkdir(parents=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    env.pop("HYDRA_FULL_ERROR", None)
    done = subprocess.run([sys.executable, "-c", _DRIVER, json.dumps(cases), str(out)],
                          cwd=cwd or REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def without_tensorflow(folder: Path) -> dict:
    """Environment for a command under KERAS_BACKEND=jax on a machine without
    TensorFlow: a `tensorflow` package on the path whose import fails, as a missing
    one does."""
    package = folder / "no-tensorflow" / "tensorflow"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(
        'raise ImportError("TensorFlow is not installed on this machine (test)")\n')
    return {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
            "PYTHONPATH": os.pathsep.join([str(package.parent), str(REPO)])}


def run_jax_script(code: str, *args: str, timeout: float = 300,
                   unimportable: tuple[str, ...] = ("tensorflow",),
                   env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs Python `code` with `args` in a fresh interpreter under KERAS_BACKEND=jax on
    the CPU, with `import` of each `unimportable` package failing as on a machine
    without it; `env` adds environment variables."""
    blocked = "import sys; " + "; ".join(f"sys.modules[{name!r}] = None"
                                         for name in unimportable) + "\n"
    full_env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", **(env or {})}
    return subprocess.run([sys.executable, "-c", blocked + code, *args], cwd=REPO,
                          env=full_env, capture_output=True, text=True, timeout=timeout)


# Imports Keras and framepred once, then forks a child per check that runs its code
# with its output in files; each child starts JAX's backend anew.
_CHECKS_DRIVER = r"""
import json, os, sys, traceback
import keras, framepred.losses, framepred.metrics, framepred.models  # paid once
checks, out = json.loads(sys.argv[1]), sys.argv[2]
results = {}
for name, code in checks.items():
    err, std = f"{out}/{name}.err", f"{out}/{name}.out"
    pid = os.fork()
    if pid == 0:
        os.dup2(os.open(err, os.O_WRONLY | os.O_CREAT), 2)
        os.dup2(os.open(std, os.O_WRONLY | os.O_CREAT), 1)
        code_ = 0
        try:
            exec(compile(code, name, "exec"), {"__name__": "__main__"})
        except SystemExit as stop:
            code_ = stop.code if isinstance(stop.code, int) else 1
        except BaseException:
            traceback.print_exc(); code_ = 99
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(code_)
    _, status = os.waitpid(pid, 0)
    results[name] = {"rc": os.waitstatus_to_exitcode(status),
                     "stderr": open(err).read(), "stdout": open(std).read()}
print(json.dumps(results))
"""


def run_jax_checks(checks: dict[str, str], workdir: Path, timeout: float = 300,
                   **options) -> dict[str, dict]:
    """Runs each `{name: code}` as `run_jax_script` would, but in one interpreter: one
    import of Keras and framepred, then a forked child per check, which starts JAX's
    backend itself. `options` go to `run_jax_script`. Returns `{"rc", "stdout",
    "stderr"}` per name."""
    out = workdir / "checks-output"
    out.mkdir(parents=True)
    done = run_jax_script(_CHECKS_DRIVER, json.dumps(checks), str(out), timeout=timeout,
                          **options)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
