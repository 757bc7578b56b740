"""Running framepred's commands as a user would: a fresh interpreter, the real CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# TensorFlow's C++ start-up lines are not ours to count.
TF_NOISE = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages before absl)")


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
