"""What the commands print: our lines, not the libraries' start-up chatter.

- `native_start_up()`: TensorFlow's C++ side writes straight to file descriptor 2
  while it loads and while it first looks for devices: absl's "All log messages
  before absl::InitializeLog()", oneDNN and CUDA-probing INFO lines, and on a machine
  without a GPU an E-level "failed call to cuInit" (framepred names the device it
  uses in its own log line). `TF_CPP_MIN_LOG_LEVEL` does not reach the lines written
  before absl starts, so the descriptor is captured around those two moments and
  only those known lines are dropped: any other warning or error is written through.
  Under KERAS_BACKEND=jax, Keras imports TensorFlow (where installed) when it seeds
  (`framepred.devices.configure`), which is filtered the same way.
- `QuietFirstSteps` (framepred.callbacks): the first training and validation steps,
  where TensorFlow builds and optimizes the step's graph, are a third such moment.
- `to_log_file(text)`: what a command prints beside its log lines (evaluate's table,
  train's next commands, an error line) goes to its log file as printed.
- `fit_verbosity(option)`: Keras' progress bar redraws with backspaces and colour
  codes, which fill a log file or a pipe; there, one line per epoch.
- Keras' "`shuffle=True` was passed, but will be ignored" for tf.data input: our
  datasets shuffle themselves (framepred.data.pipeline).
- JAX's INFO line "Unable to initialize backend 'tpu'" on every machine without a
  TPU (the device line names what runs); its warnings still pass.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import warnings
from contextlib import contextmanager

# TensorFlow's own switch, for the lines written after absl starts.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_NATIVE_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|I\d{4} "  # INFO lines: oneDNN, cudart stub, CPU instruction sets
    r"|To enable the following instructions:"  # the tail of the CPU-instructions line
    r"|E\d{4} .*failed call to cuInit"  # no GPU here: our device line says so
    # Grappler's oneDNN rewrite meeting an int32 op on a CPU without AVX-512: the op
    # runs on Eigen, as it says; written once, when the first step's graph is built.
    r"|E\d{4} .*oneDNN supports DT_INT32 only on platforms with AVX-512"
    r")"
)

warnings.filterwarnings("ignore", message=r"`shuffle=True` was passed, but will be ignored")
logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)


@contextmanager
def native_start_up():
    """Drops TensorFlow's known start-up lines from file descriptor 2 inside the block."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (an embedding host): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines()
            kept = [line for line in lines if not _NATIVE_NOISE.match(line)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
                sys.stderr.flush()


def to_log_file(text: str) -> None:
    """Writes `text` as it is to the log file of the running command (Hydra's job log,
    `<command>.log`), not to the console: what a command prints beside its log lines,
    a table or the next commands, is in its log too."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.acquire()
            try:
                if handler.stream is None:
                    handler.stream = handler._open()
                handler.stream.write(text.rstrip("\n") + "\n")
                handler.flush()
            finally:
                handler.release()


def fit_verbosity(option) -> int | str:
    """`trainer.verbose` for `model.fit`: `auto` is the progress bar on a terminal and
    one line per epoch (2) when stdout is a file or a pipe."""
    if str(option) != "auto":
        return int(option)
    return "auto" if sys.stdout.isatty() else 2
