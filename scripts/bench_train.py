"""Training throughput (frames/s) of framepred's models against a keras-io-style reference.

Run:

    .venv/bin/python scripts/bench_train.py                       # TF, default + moving_mnist
    .venv/bin/python scripts/bench_train.py --models default --precisions float32 --jit false,true
    KERAS_BACKEND=jax python scripts/bench_train.py --synthetic   # JAX + Keras only
    # on a GPU (see docs/performance.md):
    python scripts/bench_train.py --batch 16 --steps 20 --precisions float32,mixed_bfloat16 \
        --jit false,true

Models (the sizes of configs/model/convlstm.yaml and configs/experiment/moving_mnist.yaml;
tests/test_devices.py checks that they agree):

- `default`: encoder_forecaster, filters [32, 32], kernels 3, patch 4, skip, 64x64, 10 -> 10.
- `moving_mnist`: next_frame, filters [128] * 4, kernels 5, patch 4, skip (OpenSTL ConvLSTM-S).
- each one's `reference`: the same ConvLSTM2D stack built the keras-io way
  (examples/vision/conv_lstm.py): full-resolution frames, ReLU ConvLSTMs with batch
  norm, a `Conv3D(3x3x3, "same")` head, trained next-frame on the same window, with
  `1 - tf.image.ssim` as its loss. Under JAX (no TensorFlow) it trains with our
  keras-ops SSIM loss instead, and the table says so.

Every model trains with `train_on_batch` on the same NumPy batches (Moving Digits
from framepred.data, or `--synthetic` random frames), under each precision and jit
setting: `--warmup` untimed steps (tracing, compilation), then `--steps` timed ones.
Throughput counts target frames: batch x predicted time steps, per second.
`ratio` = our frames/s / the reference's frames/s at the same precision and jit.

FLOPs are counted from the weight shapes: multiply-adds of every ConvLSTM step
(input and recurrent convolutions) and of the Conv3D heads, x2; element-wise gate
math, normalization and the loss are left out. A training step is taken as 3x the
forward pass (forward + two backward products), so achieved FLOP/s =
3 x forward FLOPs per frame x frames/s; compare it with the device's peak.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

# TensorFlow where installed; on a machine without it (a JAX GPU box) JAX, rather than
# failing at `import keras`.
os.environ.setdefault("KERAS_BACKEND",
                      "tensorflow" if importlib.util.find_spec("tensorflow") else "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402

from framepred import losses, models  # noqa: E402  (Keras only: no TF, no Hydra)

# configs/model/convlstm.yaml and configs/experiment/moving_mnist.yaml, restated here so
# the script runs without Hydra; tests/test_devices.py compares them with the configs.
MODELS = {
    "default": dict(form="encoder_forecaster", filters=(32, 32), kernel_size=(3, 3),
                    patch_size=4, skip=True, head="flow", motion_radius=5,
                    forecaster_input="forecast", warp="backward"),
    "moving_mnist": dict(form="next_frame", filters=(128, 128, 128, 128),
                         kernel_size=(5, 5, 5, 5), patch_size=4, skip=True, head="flow",
                         motion_radius=5, forecaster_input="forecast", warp="backward"),
}
# The default's other heads, timed against it (model.head, docs/recipes.md).
MODELS["residual"] = {**MODELS["default"], "head": "residual", "forecaster_input": "zeros"}
MODELS["motion"] = {**MODELS["default"], "head": "motion"}


def backend() -> str:
    return keras.backend.backend()


def build_ours(spec, frame_size, channels, context_frames, future_frames):
    model_cfg = SimpleNamespace(normalization="none", output_activation="sigmoid", **spec)
    data_cfg = SimpleNamespace(frame_size=frame_size, channels=channels,
                               context_frames=context_frames, future_frames=future_frames)
    return models.build_model(model_cfg, data_cfg)


def build_reference(spec, frame_size, channels):
    """keras-io's conv_lstm.py with our layer widths: full-res ConvLSTMs, Conv3D head."""
    layers = keras.layers
    frames = keras.Input((None, *frame_size, channels))
    x = frames
    for filters, kernel in zip(spec["filters"], spec["kernel_size"]):  # no skip: keras-io
        x = layers.ConvLSTM2D(filters, kernel, padding="same", return_sequences=True,
                              activation="relu")(x)
        x = layers.BatchNormalization()(x)
    # keras-io's head (it sees frame t+1 for output t; fine for timing, not for forecasting).
    # Float32 like ours, as the mixed-precision guide advises for the last layer.
    forecast = layers.Conv3D(channels, (3, 3, 3), padding="same", activation="sigmoid",
                             dtype="float32")(x)
    return keras.Model(frames, forecast, name="keras_io_reference")


def reference_loss():
    """`1 - tf.image.ssim`, as keras-io-style code writes it; ours under JAX."""
    if backend() != "tensorflow":
        return losses.SSIMLoss(), "ours (no TF)"
    import tensorflow as tf

    def ssim_loss(y_true, y_pred):
        y_true = tf.cast(y_true, tf.float32)
        y_pred = tf.cast(y_pred, tf.float32)
        return 1.0 - tf.image.ssim(y_true, y_pred, max_val=1.0)  # [B, T]

    return ssim_loss, "tf.image.ssim"


def forward_flops_per_frame(model, timesteps: int, target_frames: int) -> float:
    """Multiply-adds x2 of one forward pass per target frame, from the weight shapes."""
    total = 0.0
    for layer in model.layers:
        if isinstance(layer, keras.layers.ConvLSTM2D):
            output = layer.output[0] if isinstance(layer.output, (list, tuple)) else layer.output
            steps = output.shape[1] or timesteps
            pixels = output.shape[2] * output.shape[3]
            taps = np.prod(layer.cell.kernel.shape) + np.prod(layer.cell.recurrent_kernel.shape)
            total += 2.0 * taps * pixels * steps
        elif isinstance(layer, keras.layers.Conv3D):
            steps = layer.output.shape[1] or timesteps
            pixels = layer.output.shape[2] * layer.output.shape[3]
            total += 2.0 * np.prod(layer.kernel.shape) * pixels * steps
    return total / target_frames


def moving_digits_windows(count, length, frame_size, channels, seed=0):
    """Moving Digits windows [count, length, H, W, C] through framepred's tf.data pipeline."""
    from hydra import compose, initialize_config_dir

    from framepred import data
    from framepred.config import config_dir

    # Glyphs scale with the frame, as the 18-30 px defaults do at 64x64.
    small, large = max(4, frame_size[0] * 18 // 64), max(4, frame_size[0] * 30 // 64)
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=[
            f"data.digit_size=[{small},{min(large, frame_size[0] - 1)}]",
            f"data.frame_size=[{frame_size[0]},{frame_size[1]}]", f"data.channels={channels}",
            f"data.context_frames={length // 2}", f"data.future_frames={length - length // 2}",
            f"data.train_sequences={count}", f"data.seed={seed}",
        ])
    batches = data.window_batches(cfg.data, "train", batch_size=count)
    return batches.first()


def synthetic_windows(count, length, frame_size, channels, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 1.0, (count, length, *frame_size, channels)).astype(np.float32)


def pairs(windows, form, context_frames):
    """(inputs, targets) as the model form trains: the same split as framepred.data."""
    if form == "next_frame":
        return windows[:, :-1], windows[:, 1:]
    return windows[:, :context_frames], windows[:, context_frames:]


def time_training(model, loss, batches, jit, warmup, steps):
    """Seconds per step, median over `steps` timed train_on_batch calls."""
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss, jit_compile=jit)
    for i in range(warmup):
        model.train_on_batch(*batches[i % len(batches)])
    times = []
    for i in range(steps):
        start = time.perf_counter()
        model.train_on_batch(*batches[i % len(batches)])  # returns host floats: synchronized
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def run_case(name, spec, args, windows, precision, jit, reference):
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(0)
    frame_size, channels = (args.frame_size, args.frame_size), 1
    context, future = args.context, args.future
    if reference:
        # keras-io trains next-frame: frames 0..T-2 in, 1..T-1 out. For the default model
        # (context -> future) it reads the context and predicts as many frames as ours.
        form = "next_frame" if spec["form"] == "next_frame" else "encoder_forecaster"
        model = build_reference(spec, frame_size, channels)
        if form == "next_frame":
            inputs, targets = pairs(windows, "next_frame", context)
        else:
            inputs, targets = windows[:, :future], windows[:, 1:future + 1]
        loss, loss_name = reference_loss()
    else:
        model = build_ours(spec, frame_size, channels, context, future)
        inputs, targets = pairs(windows, spec["form"], context)
        loss, loss_name = losses.SSIMLoss(), "ours"
    batches = [(inputs[i:i + args.batch], targets[i:i + args.batch])
               for i in range(0, len(inputs) - args.batch + 1, args.batch)]
    seconds = time_training(model, loss, batches, jit, args.warmup, args.steps)
    frames_per_second = args.batch * targets.shape[1] / seconds
    flops = forward_flops_per_frame(model, inputs.shape[1], targets.shape[1])
    return dict(model=f"{name}/{'reference' if reference else 'ours'}", precision=precision,
                jit=jit, loss=loss_name, params=model.count_params(),
                step_ms=seconds * 1e3, fps=frames_per_second, gflop_frame=flops / 1e9,
                achieved=3.0 * flops * frames_per_second / 1e12)


def describe_device() -> str:
    if backend() == "jax":
        import jax

        return ", ".join(sorted({f"{d.platform}:{d.device_kind}" for d in jax.devices()}))
    if backend() == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            names = [tf.config.experimental.get_device_details(g).get("device_name", g.name)
                     for g in gpus]
            return f"{len(gpus)} GPU ({', '.join(names)})"
    return f"CPU ({os.cpu_count()} cores)"


def print_table(rows):
    header = ["model", "precision", "jit", "ssim loss", "params", "ms/step", "frames/s",
              "ratio", "GFLOP/frame", "TFLOP/s"]
    lines = []
    for row in rows:
        lines.append([row["model"], row["precision"], str(row["jit"]), row["loss"],
                      f"{row['params']:,}", f"{row['step_ms']:.1f}", f"{row['fps']:.1f}",
                      row.get("ratio", "-"), f"{row['gflop_frame']:.3f}",
                      f"{row['achieved']:.4f}"])
    print_plain([header, *lines])


# --- shared with scripts/bench_train_path.py ---------------------------------------

REPO = Path(__file__).resolve().parents[1]
BACKEND_NAMES = {"tensorflow": "TF", "jax": "JAX", "torch": "torch"}


def print_plain(table) -> None:
    """A header and rows of strings as aligned columns."""
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    print(" | ".join(c.ljust(w) for c, w in zip(table[0], widths)))
    print("-+-".join("-" * w for w in widths))
    for line in table[1:]:
        print(" | ".join(c.ljust(w) for c, w in zip(line, widths)))


def markdown(table) -> str:
    lines = ["| " + " | ".join(table[0]) + " |", "|" + "---|" * len(table[0])]
    lines += ["| " + " | ".join(line) + " |" for line in table[1:]]
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="default,moving_mnist",
                        help=f"comma-separated, of: {', '.join(MODELS)}")
    parser.add_argument("--precisions", default="float32,mixed_bfloat16",
                        help="comma-separated, of: float32, mixed_float16, mixed_bfloat16")
    parser.add_argument("--jit", default=None,
                        help="comma-separated true/false; default: false,true on TF, true on JAX")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="timed steps (median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--frame-size", type=int, default=64, help="square frames, px")
    parser.add_argument("--context", type=int, default=10)
    parser.add_argument("--future", type=int, default=10)
    parser.add_argument("--synthetic", action="store_true",
                        help="random NumPy frames (no TensorFlow, no Hydra needed)")
    parser.add_argument("--no-reference", action="store_true", help="time our models only")
    args = parser.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        parser.error(f"--models: unknown {unknown}; choose from {list(MODELS)}")
    args.precisions = [p for p in args.precisions.split(",") if p]
    default_jit = "true" if backend() == "jax" else "false,true"
    args.jit = [j.strip().lower() == "true" for j in (args.jit or default_jit).split(",")]
    return args


def main(argv=None):
    args = parse_args(argv)
    length = args.context + args.future
    count = 2 * args.batch  # two distinct batches, fed in turn
    frame_size = (args.frame_size, args.frame_size)
    if args.synthetic:
        windows, source = synthetic_windows(count, length, frame_size, 1), "synthetic uniform"
    else:
        windows, source = moving_digits_windows(count, length, frame_size, 1), "Moving Digits"
    print(f"backend {backend()} {keras.__version__} | device {describe_device()} | "
          f"data {source} {args.frame_size}x{args.frame_size}, {args.context} -> "
          f"{args.future} | batch {args.batch} | {args.warmup} warm-up + {args.steps} timed "
          "steps (median)", flush=True)
    rows = []
    for name in args.models:
        for precision in args.precisions:
            for jit in args.jit:
                ours = run_case(name, MODELS[name], args, windows, precision, jit, False)
                rows.append(ours)
                if not args.no_reference:
                    ref = run_case(name, MODELS[name], args, windows, precision, jit, True)
                    ours["ratio"] = f"{ours['fps'] / ref['fps']:.2f}"
                    rows.append(ref)
                for row in rows[-2:] if not args.no_reference else rows[-1:]:
                    print(f"  {row['model']} {precision} jit={jit}: {row['fps']:.1f} frames/s",
                          file=sys.stderr, flush=True)
    keras.mixed_precision.set_global_policy("float32")
    print_table(rows)
    return rows


if __name__ == "__main__":
    main()
