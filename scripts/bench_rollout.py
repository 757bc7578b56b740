"""Forecast time of a next_frame model: stateful rollout against the full-pass rollout.

Run:

    .venv/bin/python scripts/bench_rollout.py                  # 64x64, 10 -> 10, batch 16
    .venv/bin/python scripts/bench_rollout.py --reps 3 --steps 5 --frame-size 32
    KERAS_BACKEND=jax .venv/bin/python scripts/bench_rollout.py

Both rollouts forecast `--steps` frames after `--context` frames with the same model
(next_frame, filters [32, 32], kernels 3, patch 4, skip: configs/model/convlstm.yaml
with model.form=next_frame) and the same random weights:

- `full pass` (the reference, `models.forecast(..., carry_states=False)`, and the path
  of checkpoints saved before the ConvLSTMs returned their states): every new frame
  re-runs the model over a buffer of context + forecasts, context + steps - 1 frames.
- `stateful` (`models.forecast`): one pass over the context, then one ConvLSTM step
  per frame from the carried states (`models.step_model`).

Each is run once to trace / compile, then `--reps` times, interleaved so that load
from other processes hits both alike; the time is the median. `speed-up` = full-pass
time / stateful time, measured in the same run (higher is better); `max abs diff`
compares the two forecasts, which must agree to float error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402

from framepred import models  # noqa: E402  (Keras only: no TF, no Hydra)
from framepred.config import ModelConfig  # noqa: E402


def build(frame_size: int, filters, patch_size: int, normalization: str):
    model_cfg = ModelConfig(form="next_frame", filters=tuple(filters),
                            kernel_size=(3,) * len(filters), patch_size=patch_size,
                            normalization=normalization)
    data_cfg = SimpleNamespace(frame_size=(frame_size, frame_size), channels=1)
    keras.utils.set_random_seed(0)
    return models.build_model(model_cfg, data_cfg)


def timed(rollouts: dict, reps: int) -> dict:
    """Median wall seconds and the last output of each rollout, runs interleaved."""
    outputs = {name: run() for name, run in rollouts.items()}  # trace, compile
    times = {name: [] for name in rollouts}
    for _ in range(reps):
        for name, run in rollouts.items():
            start = time.perf_counter()
            outputs[name] = run()
            times[name].append(time.perf_counter() - start)
    return {name: (float(np.median(times[name])), outputs[name]) for name in rollouts}


def markdown(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frame-size", type=int, default=64)
    parser.add_argument("--context", type=int, default=10)
    parser.add_argument("--steps", type=int, default=10, help="frames forecast")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--filters", default="32,32")
    parser.add_argument("--patch", type=int, default=4)
    parser.add_argument("--normalization", default="none,group",
                        help="comma-separated: none, layer, group")
    parser.add_argument("--reps", type=int, default=5, help="timed runs per rollout (median)")
    args = parser.parse_args()

    filters = [int(f) for f in args.filters.split(",")]
    context = np.random.default_rng(0).uniform(
        size=(args.batch, args.context, args.frame_size, args.frame_size, 1)).astype("float32")
    header = ("model", "rollout", "ms per forecast", "speed-up (full / this)", "max abs diff")
    rows = []
    for normalization in args.normalization.split(","):
        model = build(args.frame_size, filters, args.patch, normalization)
        result = timed({
            "full pass": lambda m=model: models.forecast(m, context, args.steps,
                                                         carry_states=False),
            "stateful": lambda m=model: models.forecast(m, context, args.steps),
        }, args.reps)
        reference, reference_frames = result["full pass"]
        for name, (seconds, frames) in result.items():
            rows.append((f"norm={normalization}", name, f"{seconds * 1e3:.0f}",
                         f"{reference / seconds:.1f}x",
                         f"{np.abs(frames - reference_frames).max():.1e}"))
        print(f"  done: norm={normalization}", file=sys.stderr, flush=True)

    print(f"Keras {keras.__version__}, backend {keras.backend.backend()}, "
          f"{os.cpu_count()} CPU cores; next_frame {args.frame_size}x{args.frame_size}, "
          f"filters {filters}, patch {args.patch}, batch {args.batch}, {args.context} context "
          f"-> {args.steps} forecast frames; median of {args.reps} runs after a warm-up")
    print(markdown(header, rows))


if __name__ == "__main__":
    main()
