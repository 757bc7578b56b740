"""One ConvLSTM layer's training step: framepred's `ConvLSTM` against Keras' `ConvLSTM2D`.

Run (each backend in its own interpreter):

    .venv/bin/python scripts/bench_convlstm.py                  # TensorFlow
    KERAS_BACKEND=jax .venv/bin/python scripts/bench_convlstm.py

Each row trains a one-layer model (`bench_train.time_training`: mean squared error, Adam) on
random frames: `--warmup` untimed steps (tracing, compilation), then the median of
`--steps` timed ones. Rows:

- `keras`: Keras' `ConvLSTM2D` (eight convolutions a step; a `lax.scan` under JAX);
- `keras unroll`: the same with `unroll=True` (a Python loop over the frames);
- `framepred`: `framepred.models.ConvLSTM`, which under JAX on a CPU runs one matrix
  product a step (see its docstring) and elsewhere is Keras' own loop;
- `matmul forced` (`--force-matmul`): the same layer with the matrix-product form taken
  wherever JAX runs, to measure it on a GPU (scripts/gpu_check.sh does).

`ratio` = the `keras` row's time / the row's time (above 1: faster than Keras' layer).
The shape defaults to the default model's first encoder layer: 16 frames of 10 steps,
16x16 patches of 16 channels (64x64 frames, patch 4), 32 filters, kernel 3.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from bench_train import time_training  # noqa: E402  (this folder, on sys.path)

from framepred import xla  # noqa: E402
from framepred.models import ConvLSTM  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", default="16,10,16,16,16",
                        help="batch, steps, height, width, channels")
    parser.add_argument("--filters", type=int, default=32)
    parser.add_argument("--kernel", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--no-unroll", action="store_true", help="leave the unrolled row out")
    parser.add_argument("--force-matmul", action="store_true",
                        help="add a row with the matrix-product form on any JAX device")
    args = parser.parse_args(argv)
    shape = tuple(int(n) for n in args.shape.split(","))
    rng = np.random.default_rng(0)
    frames = rng.normal(size=shape).astype(np.float32)
    targets = rng.normal(size=(*shape[:-1], args.filters)).astype(np.float32)
    options = dict(filters=args.filters, kernel_size=args.kernel, padding="same",
                   return_sequences=True)
    rows = [("keras", lambda: keras.layers.ConvLSTM2D(**options))]
    if not args.no_unroll:
        rows.append(("keras unroll", lambda: keras.layers.ConvLSTM2D(unroll=True, **options)))
    rows.append(("framepred", lambda: ConvLSTM(**options)))
    if args.force_matmul and xla.on_jax():
        rows.append(("matmul forced", lambda: ConvLSTM(**options)))

    print(f"backend {keras.backend.backend()}, keras {keras.__version__}, "
          f"{os.cpu_count()} CPU cores visible; shape {shape} -> {args.filters} filters, "
          f"kernel {args.kernel}; median of {args.steps} steps after {args.warmup}")
    print("layer         | step ms | ratio vs keras")
    print("--------------+---------+---------------")
    reference = None
    on_cpu = xla.jax_on_cpu
    for name, build in rows:
        # The layer picks its form when it is traced, inside the first step.
        xla.jax_on_cpu = (lambda: True) if name == "matmul forced" else on_cpu
        inputs = keras.Input(frames.shape[1:])
        model = keras.Model(inputs, build()(inputs))
        seconds = time_training(model, "mse", [(frames, targets)], "auto", args.warmup,
                                args.steps)
        reference = reference or seconds
        print(f"{name:13s} | {seconds * 1e3:7.1f} | {reference / seconds:.2f}", flush=True)


if __name__ == "__main__":
    main()
