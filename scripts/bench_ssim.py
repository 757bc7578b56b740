"""Benchmark framepred's SSIM / MS-SSIM on the TensorFlow and the JAX backend.

Run:

    .venv/bin/python scripts/bench_ssim.py            # full tables
    .venv/bin/python scripts/bench_ssim.py --quick    # fewer reps, small shapes only
    .venv/bin/python scripts/bench_ssim.py --backends tensorflow   # one backend only

Three tables:

1. TensorFlow backend: framepred against `tf.image.ssim` /
   `tf.image.ssim_multiscale`, both inside `tf.function`.
2. JAX backend (a subprocess with KERAS_BACKEND=jax): framepred against a
   plain JAX SSIM written here (`jax_reference`: an 11x11 Gaussian `lax.conv`,
   VALID, the constants of `tf.image.ssim`, autodiff gradient), both inside
   `jax.jit`. Skipped if JAX is not installed.
3. framepred fwd+bwd under JAX against framepred fwd+bwd under TensorFlow:
   `JAX/TF` below 1 means JAX is faster. Each round times TF here and then JAX in
   a fresh subprocess, and the table gives the median over `--rounds` rounds.

Every function is warmed up first; a time is the median over `--reps` runs of
the value and its gradient with respect to `y_pred` (or of the value alone, in
the `fwd` rows). `ratio` is reference time / our time (higher is better for
us); `max |diff|` compares the values and the gradients of the two. The CPU
columns give this process's CPU time (all threads, user + system) per run,
which is steadier than wall time when other jobs share the machine; `faults` is
the number of minor page faults per run (JAX's CPU client allocates XLA's
temporary buffers afresh for every call, so each run pays for touching them).
"""

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from framepred.ssim import (  # noqa: E402
    DEFAULT_POWER_FACTORS,  # noqa: E402
    ms_ssim,
    ms_ssim_min_size,
    ssim,
)

ROOT = Path(__file__).resolve().parents[1]
SHAPES = [(8, 10, 64, 64, 1), (4, 4, 256, 256, 3)]


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


def shapes_for(quick):
    return SHAPES[:1] if quick else SHAPES


def fetch(outputs):
    """The outputs as NumPy arrays; waits for them (TF eager tensors or JAX arrays)."""
    return [np.asarray(t) for t in outputs]


def run_once(fn, args):
    """(outputs, wall s, CPU s, minor page faults) of one call."""
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start, start_cpu = time.perf_counter(), time.process_time()
    outputs = fetch(fn(*args))
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    return outputs, wall, cpu, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults


def timed(fns, args, reps):
    """Median wall ms, CPU ms and page faults of each function in `fns`.

    The runs are interleaved so that load from other processes on a shared
    machine hits all functions alike.
    """
    for fn in fns:
        for _ in range(3):  # trace, then warm up
            fetch(fn(*args))
    samples = {fn: [] for fn in fns}
    outputs = {}
    for _ in range(reps):
        for fn in fns:
            outputs[fn], *sample = run_once(fn, args)
            samples[fn].append(sample)
    results = []
    for fn in fns:
        wall, cpu, faults = np.median(np.asarray(samples[fn]), axis=0)
        results.append({"ms": wall * 1e3, "cpu": cpu * 1e3, "faults": faults,
                        "out": outputs[fn]})
    return results


def cases(quick, backend):
    """(name, shape, ours, reference) per row; the reference is TF's or `jax_reference`'s."""
    for shape in shapes_for(quick):
        scales = max_scales(shape[-3])
        power_factors = tuple(DEFAULT_POWER_FACTORS[:scales])
        if backend == "tensorflow":
            import tensorflow as tf

            ref_ssim = lambda a, b: tf.image.ssim(a, b, max_val=1.0)  # noqa: E731
            ref_ms = lambda a, b, p=power_factors: tf.image.ssim_multiscale(  # noqa: E731
                a, b, 1.0, power_factors=p)
        else:
            ref_ssim, ref_ms = jax_reference(power_factors)
        yield "ssim", shape, lambda a, b: ssim(a, b, max_val=1.0), ref_ssim
        yield (
            f"ms_ssim ({scales} scales)",
            shape,
            lambda a, b, p=power_factors: ms_ssim(a, b, max_val=1.0, power_factors=p),
            ref_ms,
        )


def compiled(similarity, backward, backend):
    """`similarity` (and its gradient wrt y_pred) inside tf.function or jax.jit."""
    if backend == "tensorflow":
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

    import jax
    import jax.numpy as jnp

    def run(y_true, y_pred):
        if not backward:
            return (similarity(y_true, y_pred),)
        value, vjp = jax.vjp(lambda pred: similarity(y_true, pred), y_pred)
        return value, vjp(jnp.ones_like(value))[0]

    return jax.jit(run)


def to_backend(arrays, backend):
    if backend == "tensorflow":
        import tensorflow as tf

        return tuple(tf.constant(a) for a in arrays)
    import jax.numpy as jnp

    return tuple(jnp.asarray(a) for a in arrays)


# ---------------------------------------------------------------------------
# The JAX reference
# ---------------------------------------------------------------------------


def jax_reference(power_factors, max_val=1.0, filter_size=11, filter_sigma=1.5, k1=0.01,
                  k2=0.03):
    """(ssim, ms_ssim) in plain JAX, the textbook way, as `tf.image.ssim(_multiscale)`.

    Each channel of each frame is one map, filtered by `lax.conv` with the 2D
    11x11 Gaussian (VALID); statistics as TF's `_ssim_helper` (biased
    covariance); MS-SSIM as TF: odd sizes padded by repeating the last row or
    column, 2x2 means, relu(cs_j)**p_j and relu(ssim)**p_last per channel,
    then the mean over channels. The gradient is JAX's autodiff.
    """
    import jax.numpy as jnp
    from jax import lax

    coords = np.arange(filter_size, dtype=np.float64) - (filter_size - 1) / 2.0
    gauss = np.exp(-(coords[:, None] ** 2 + coords[None, :] ** 2) / (2.0 * filter_sigma**2))
    kernel = (gauss / gauss.sum()).astype(np.float32).reshape(1, 1, filter_size, filter_size)
    c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2

    def to_maps(frames):
        # [..., H, W, C] -> [M, 1, H, W], one map per frame and channel
        height, width = frames.shape[-3:-1]
        return jnp.moveaxis(frames, -1, -3).reshape(-1, 1, height, width)

    def gaussian(maps):
        return lax.conv_general_dilated(maps, kernel, (1, 1), "VALID")

    def ssim_and_cs(x, y):
        mu_x, mu_y = gaussian(x), gaussian(y)
        luminance = (2.0 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
        cs = (2.0 * (gaussian(x * y) - mu_x * mu_y) + c2) / (
            gaussian(x * x + y * y) - (mu_x**2 + mu_y**2) + c2)
        # [M, 1, H', W'] -> [M]
        return jnp.mean(luminance * cs, axis=(1, 2, 3)), jnp.mean(cs, axis=(1, 2, 3))

    def per_frame(values, like):
        # [M] -> [..., C] -> [...]
        return jnp.mean(values.reshape(*like.shape[:-3], like.shape[-1]), axis=-1)

    def downsample(maps):
        if maps.shape[2] % 2:
            maps = jnp.concatenate([maps, maps[:, :, -1:]], axis=2)
        if maps.shape[3] % 2:
            maps = jnp.concatenate([maps, maps[:, :, :, -1:]], axis=3)
        m, _, height, width = maps.shape
        return maps.reshape(m, 1, height // 2, 2, width // 2, 2).mean(axis=(3, 5))

    def reference_ssim(y_true, y_pred):
        return per_frame(ssim_and_cs(to_maps(y_true), to_maps(y_pred))[0], y_pred)

    def reference_ms_ssim(y_true, y_pred):
        x, y = to_maps(y_true), to_maps(y_pred)
        product = 1.0
        for scale, power in enumerate(power_factors):
            if scale > 0:
                x, y = downsample(x), downsample(y)
            value, cs = ssim_and_cs(x, y)
            last = scale == len(power_factors) - 1
            product = product * jnp.maximum(value if last else cs, 0.0) ** power
        return per_frame(product, y_pred)

    return reference_ssim, reference_ms_ssim


# ---------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------


def benchmark(backend, reps, quick, forward):
    """Rows of framepred against the backend's reference, and our fwd+bwd timings."""
    rows, ours_timing = [], {}
    passes = ["fwd+bwd"] + (["fwd"] if forward else [])
    for name, shape, ours_fn, ref_fn in cases(quick, backend):
        args = to_backend(frame_pair(shape), backend)
        for pass_name in passes:
            backward = pass_name == "fwd+bwd"
            ours, ref = timed(
                [compiled(ours_fn, backward, backend), compiled(ref_fn, backward, backend)],
                args, reps)
            diffs = [float(np.max(np.abs(a - b))) for a, b in zip(ours["out"], ref["out"])]
            rows.append([
                name,
                pass_name,
                "x".join(map(str, shape)),
                f"{ours['ms']:.1f}",
                f"{ref['ms']:.1f}",
                f"{ref['ms'] / ours['ms']:.1f}x",
                f"{ours['cpu']:.0f} / {ref['cpu']:.0f}",
                f"{ref['cpu'] / max(ours['cpu'], 1e-3):.1f}x",
                f"{diffs[0]:.1e}" + (f" (grad {diffs[1]:.1e})" if backward else ""),
            ])
            if backward:
                ours_timing[f"{name} {rows[-1][2]}"] = {k: ours[k] for k in ("ms", "cpu", "faults")}
            print(f"  done: {backend} {name} {pass_name} {shape}", file=sys.stderr, flush=True)
    return rows, ours_timing


def ours_only(backend, quick, reps, cache):
    """framepred fwd+bwd timings only, reusing the compiled functions in `cache`."""
    timing = {}
    for name, shape, ours_fn, _ in cases(quick, backend):
        key = f"{name} {'x'.join(map(str, shape))}"
        if key not in cache:
            cache[key] = (compiled(ours_fn, True, backend),
                          to_backend(frame_pair(shape), backend))
        fn, args = cache[key]
        (result,) = timed([fn], args, reps)
        timing[key] = {k: result[k] for k in ("ms", "cpu", "faults")}
    return timing


def markdown(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def jax_worker(args):
    """Runs in the KERAS_BACKEND=jax subprocess; prints one JSON line."""
    import jax
    import keras

    assert keras.backend.backend() == "jax", keras.backend.backend()
    if args.ours_only:
        result = {"timing": ours_only("jax", args.quick, args.reps, {})}
    else:
        rows, timing = benchmark("jax", args.reps, args.quick, args.forward)
        result = {"rows": rows, "timing": timing}
    result["versions"] = f"JAX {jax.__version__}, Keras {keras.__version__}"
    print("JSON " + json.dumps(result), flush=True)


def run_jax_worker(args, ours_only_run):
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", "jax",
               "--reps", str(args.reps)]
    command += ["--quick"] if args.quick else []
    command += ["--forward"] if args.forward else []
    command += ["--ours-only"] if ours_only_run else []
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    sys.stderr.write(result.stderr if result.returncode else "")
    result.check_returncode()
    line = [row for row in result.stdout.splitlines() if row.startswith("JSON ")][-1]
    return json.loads(line[5:])


TABLE_HEADER = ("case", "pass", "shape", "ours ms", "{ref} ms", "ratio ({ref}/ours)",
                "CPU ms ours / {ref}", "CPU ratio", "max |diff|")


def cross_table(tf_rounds, jax_rounds):
    """framepred under JAX against framepred under TF: medians over the rounds."""
    header = ("case", "shape", "TF ms", "JAX ms", "JAX/TF", "TF CPU ms", "JAX CPU ms",
              "CPU JAX/TF", "faults/run TF / JAX")
    rows = []
    for key in tf_rounds[0]:
        name, shape = key.rsplit(" ", 1)
        tf_stats = {k: float(np.median([r[key][k] for r in tf_rounds])) for k in tf_rounds[0][key]}
        jax_stats = {k: float(np.median([r[key][k] for r in jax_rounds]))
                     for k in jax_rounds[0][key]}
        ratio = jax_stats["ms"] / tf_stats["ms"]
        rows.append((
            name,
            shape,
            f"{tf_stats['ms']:.1f}",
            f"{jax_stats['ms']:.1f}",
            f"{ratio:.2f}" + (" (JAX faster)" if ratio < 1 else ""),
            f"{tf_stats['cpu']:.0f}",
            f"{jax_stats['cpu']:.0f}",
            f"{jax_stats['cpu'] / max(tf_stats['cpu'], 1e-3):.2f}",
            f"{tf_stats['faults']:.0f} / {jax_stats['faults']:.0f}",
        ))
    return header, rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7, help="timed runs per row (median)")
    parser.add_argument("--quick", action="store_true", help="64x64 only, 3 reps, 1 round")
    parser.add_argument("--forward", action="store_true", help="add forward-only rows")
    parser.add_argument("--backends", default="tensorflow,jax",
                        help="comma-separated: tensorflow, jax (default both)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating TF / JAX timings of framepred for the JAX-vs-TF table")
    parser.add_argument("--backend-check", action="store_true",
                        help="no effect: JAX now runs whenever it is installed")
    parser.add_argument("--worker", choices=["jax"], help=argparse.SUPPRESS)
    parser.add_argument("--ours-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.reps, args.rounds = min(args.reps, 3), 1
    if args.worker:
        jax_worker(args)
        return

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if "jax" in backends and importlib.util.find_spec("jax") is None:
        print("JAX is not installed here; the JAX tables are skipped.")
        backends.remove("jax")
    tf_rounds, jax_rounds = [], []
    if "tensorflow" in backends:
        import keras
        import tensorflow as tf

        rows, timing = benchmark("tensorflow", args.reps, args.quick, args.forward)
        tf_rounds.append(timing)
        print(f"\nTensorFlow backend: TF {tf.__version__}, Keras {keras.__version__}, "
              f"{os.cpu_count()} CPU cores, GPUs: {len(tf.config.list_physical_devices('GPU'))}; "
              f"median of {args.reps} runs; reference: tf.image")
        print(markdown([h.format(ref="TF") for h in TABLE_HEADER], rows))
    if "jax" in backends:
        result = run_jax_worker(args, ours_only_run=False)
        jax_rounds.append(result["timing"])
        print(f"\nJAX backend: {result['versions']}; median of {args.reps} runs; reference: "
              "jax_reference (11x11 Gaussian lax.conv, autodiff)")
        print(markdown([h.format(ref="ref") for h in TABLE_HEADER], result["rows"]))
    if tf_rounds and jax_rounds:
        cache = {}
        for _ in range(args.rounds - 1):
            tf_rounds.append(ours_only("tensorflow", args.quick, args.reps, cache))
            jax_rounds.append(run_jax_worker(args, ours_only_run=True)["timing"])
        header, rows = cross_table(tf_rounds, jax_rounds)
        print(f"\nframepred fwd+bwd, JAX vs TF: median over {len(tf_rounds)} rounds of "
              f"{args.reps} runs each (JAX/TF < 1: JAX faster)")
        print(markdown(header, rows))


if __name__ == "__main__":
    main()
