"""Benchmark framepred's SSIM / MS-SSIM against tf.image.ssim / tf.image.ssim_multiscale.

Run:

    .venv/bin/python scripts/bench_ssim.py            # full table
    .venv/bin/python scripts/bench_ssim.py --quick    # fewer reps, small shapes only
    .venv/bin/python scripts/bench_ssim.py --backend-check   # also run under JAX if installed

Both implementations run on the TensorFlow backend inside `tf.function`, warmed
up first; the time is the median over `--reps` runs of the value and its
gradient with respect to `y_pred` (tf.GradientTape), or of the value alone for
the `fwd` rows. `ratio` is TF time / our time (higher is better for us);
`max |diff|` compares the values and the gradients of the two. The CPU
columns give this process's CPU time (all threads) per run, which is steadier
than wall time when other jobs share the machine.
"""

import argparse
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from framepred.config import DEFAULT_POWER_FACTORS  # noqa: E402
from framepred.ssim import ms_ssim, ms_ssim_min_size, ssim  # noqa: E402


def frame_pair(shape, seed=0):
    rng = np.random.default_rng(seed)
    y_true = rng.uniform(0.0, 1.0, size=shape).astype(np.float32)
    y_pred = np.clip(y_true + rng.normal(0.0, 0.2, size=shape), 0.0, 1.0).astype(np.float32)
    return y_true, y_pred


def max_scales(size, filter_size=11, wanted=5):
    """The most MS-SSIM scales (up to `wanted`) a `size` x `size` frame allows."""
    scales = 1
    while scales < wanted and ms_ssim_min_size(scales + 1, filter_size) <= size:
        scales += 1
    return scales


def timed_pair(ours, reference, args, reps):
    """Median wall ms and CPU ms of each function, their runs interleaved so
    that load from other processes on a shared machine hits both alike.

    CPU time (this process, all threads) is reported too: on a busy shared
    machine it tracks the work done far better than wall time does.
    """
    for fn in (ours, reference):
        for _ in range(3):  # trace, then warm up
            _ = [t.numpy() for t in fn(*args)]
    wall = {ours: [], reference: []}
    cpu = {ours: [], reference: []}
    outputs = {}
    for _ in range(reps):
        for fn in (ours, reference):
            start, start_cpu = time.perf_counter(), time.process_time()
            outputs[fn] = [t.numpy() for t in fn(*args)]
            wall[fn].append(time.perf_counter() - start)
            cpu[fn].append(time.process_time() - start_cpu)
    return {
        "ours_ms": float(np.median(wall[ours])) * 1e3,
        "tf_ms": float(np.median(wall[reference])) * 1e3,
        "ours_cpu": float(np.median(cpu[ours])) * 1e3,
        "tf_cpu": float(np.median(cpu[reference])) * 1e3,
        "ours_out": outputs[ours],
        "tf_out": outputs[reference],
    }


def compiled(similarity, backward):
    import tensorflow as tf

    @tf.function
    def run(y_true, y_pred):
        if not backward:
            return (similarity(y_true, y_pred),)
        with tf.GradientTape() as tape:
            tape.watch(y_pred)
            value = similarity(y_true, y_pred)
            total = tf.reduce_sum(value)
        return value, tape.gradient(total, y_pred)

    return run


def cases(quick):
    import tensorflow as tf

    shapes = [(8, 10, 64, 64, 1)] + ([] if quick else [(4, 4, 256, 256, 3)])
    for shape in shapes:
        scales = max_scales(shape[-3])
        power_factors = DEFAULT_POWER_FACTORS[:scales]
        yield (
            "ssim",
            shape,
            lambda a, b: ssim(a, b, max_val=1.0),
            lambda a, b: tf.image.ssim(a, b, max_val=1.0),
        )
        yield (
            f"ms_ssim ({scales} scales)",
            shape,
            lambda a, b, p=power_factors: ms_ssim(a, b, max_val=1.0, power_factors=p),
            lambda a, b, p=power_factors: tf.image.ssim_multiscale(a, b, 1.0, power_factors=p),
        )


def benchmark(reps, quick, forward):
    import tensorflow as tf

    header = (
        "case",
        "pass",
        "shape",
        "ours ms",
        "TF ms",
        "ratio (TF/ours)",
        "CPU ms ours / TF",
        "CPU ratio",
        "max |diff|",
    )
    rows = []
    passes = ["fwd+bwd"] + (["fwd"] if forward else [])
    for name, shape, ours_fn, tf_fn in cases(quick):
        y_true, y_pred = (tf.constant(a) for a in frame_pair(shape))
        for pass_name in passes:
            backward = pass_name == "fwd+bwd"
            timing = timed_pair(
                compiled(ours_fn, backward), compiled(tf_fn, backward), (y_true, y_pred), reps
            )
            diffs = [
                float(np.max(np.abs(a - b))) for a, b in zip(timing["ours_out"], timing["tf_out"])
            ]
            diff = f"{diffs[0]:.1e}" + (f" (grad {diffs[1]:.1e})" if backward else "")
            rows.append(
                (
                    name,
                    pass_name,
                    "x".join(map(str, shape)),
                    f"{timing['ours_ms']:.1f}",
                    f"{timing['tf_ms']:.1f}",
                    f"{timing['tf_ms'] / timing['ours_ms']:.1f}x",
                    f"{timing['ours_cpu']:.0f} / {timing['tf_cpu']:.0f}",
                    f"{timing['tf_cpu'] / max(timing['ours_cpu'], 1e-3):.1f}x",
                    diff,
                )
            )
            print(f"  done: {name} {pass_name} {shape}", file=sys.stderr, flush=True)
    return header, rows


def markdown(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def backend_check():
    """Runs ssim / ms_ssim under KERAS_BACKEND=jax in a subprocess, if JAX is installed."""
    if importlib.util.find_spec("jax") is None:
        print("backend check: jax is not installed here; skipped (KERAS_BACKEND=jax not run).")
        return
    code = (
        "import numpy as np\n"
        "from framepred.ssim import ssim, ms_ssim\n"
        "rng = np.random.default_rng(0)\n"
        "a = rng.random((2, 3, 48, 48, 1), dtype=np.float32)\n"
        "b = np.clip(a + 0.1 * rng.standard_normal(a.shape, dtype=np.float32), 0, 1)\n"
        "print('jax ssim', np.asarray(ssim(a, b)).ravel()[:3])\n"
        "value = ms_ssim(a, b, power_factors=(0.3, 0.3, 0.4))\n"
        "print('jax ms_ssim', np.asarray(value).ravel()[:3])\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], env=env, cwd=root, check=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7, help="timed runs per row (median)")
    parser.add_argument("--quick", action="store_true", help="64x64 only, 3 reps")
    parser.add_argument("--forward", action="store_true", help="add forward-only rows")
    parser.add_argument("--backend-check", action="store_true", help="also try KERAS_BACKEND=jax")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    reps = 3 if args.quick else args.reps
    header, rows = benchmark(reps, args.quick, args.forward)
    print(
        f"TF {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPU cores, "
        f"GPUs: {len(tf.config.list_physical_devices('GPU'))}; median of {reps} runs"
    )
    print(markdown(header, rows))
    if args.backend_check:
        backend_check()


if __name__ == "__main__":
    main()
