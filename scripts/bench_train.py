"""Training throughput (frames/s) of framepred's models against a keras-io-style reference.

Run:

    .venv/bin/python scripts/bench_train.py                       # TF, default + moving_mnist
    .venv/bin/python scripts/bench_train.py --models default --precisions float32 --jit false,true
    KERAS_BACKEND=jax python scripts/bench_train.py --synthetic   # JAX + Keras only
    # the real entry point, framepred.train.train(), under TF and under JAX (no TF):
    .venv/bin/python scripts/bench_train.py --train-path
    .venv/bin/python scripts/bench_train.py --train-path --backends jax \
        --overrides "experiment=moving_mnist data.source=moving_digits data.digit_size=[28,28]" \
        --precisions float32,mixed_bfloat16 --steps-per-execution 1,8 --peak-tflops 989
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

`--train-path` times the training entry point itself instead: `framepred.train.train(cfg,
run_dir=<temp folder>)` on the config `python -m framepred.train` composes (configs/train.yaml,
plus `--overrides`), for `--epochs` (default 2) epochs of `--train-steps` steps, with
`trainer.validation_steps=1 trainer.forecast_images=0 trainer.verbose=0`. Its frames/s
are the `Throughput` callback's (framepred/callbacks/throughput.py) of every epoch after
the first (median), so compilation, validation and checkpoints stay out while the data
pipeline (tf.data on TensorFlow, the PyDataset on JAX), callbacks and `fit` count. Each
backend runs in a fresh interpreter, one after the other; the JAX one with TensorFlow
made unimportable (a `tensorflow` package on PYTHONPATH whose import fails), as on a
machine without it (scripts/gpu_check.sh runs this mode on a GPU machine with no
TensorFlow: `--backends jax`). `ratio` there = frames/s / the first backend's (JAX/TF by default)
at the same precision and steps per execution; `bf16/f32` = a mixed_bfloat16 row's
frames/s / the float32 row's of the same backend and steps per execution.

FLOPs are counted from the weight shapes: multiply-adds of every ConvLSTM step
(input and recurrent convolutions) and of the Conv3D heads, x2; element-wise gate
math, normalization and the loss are left out. A training step is taken as 3x the
forward pass (forward + two backward products), so achieved FLOP/s =
3 x forward FLOPs per frame x frames/s; compare it with the device's peak.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

if "--train-path" in sys.argv[1:]:
    # This process only starts one interpreter per backend and tabulates: Keras' numpy
    # backend spares it TensorFlow's or JAX's start-up.
    os.environ.setdefault("KERAS_BACKEND", "numpy")
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


# --- --train-path: the real entry point, framepred.train.train() ----------------------

REPO = Path(__file__).resolve().parents[1]
RESULT = "TRAIN_PATH_RESULT "  # a child's result line on stdout: this prefix, then JSON
BACKEND_NAMES = {"tensorflow": "TF", "jax": "JAX", "torch": "torch"}
# Short runs that time training alone: one validation batch, no forecast images.
TRAIN_PATH_FIXED = ["trainer.validation_steps=1", "trainer.forecast_images=0",
                    "trainer.verbose=0"]


def model_name(model_cfg) -> str:
    """`default` / `moving_mnist` where the composed model is one of MODELS, else custom."""
    for name, spec in MODELS.items():
        if (str(model_cfg.form) == spec["form"]
                and [int(f) for f in model_cfg.filters] == list(spec["filters"])
                and [int(k) for k in model_cfg.kernel_size] == list(spec["kernel_size"])
                and int(model_cfg.patch_size) == spec["patch_size"]
                and bool(model_cfg.skip) == spec["skip"]
                and str(model_cfg.head) == spec["head"]
                and str(model_cfg.forecaster_input) == spec["forecaster_input"]):
            return name
    return "custom"


def train_path_base(args, steps: int) -> list[str]:
    """The overrides every case shares (the cases add precision and steps per execution)."""
    return [f"trainer.epochs={args.epochs}", f"trainer.steps_per_epoch={steps}",
            *TRAIN_PATH_FIXED, *args.overrides]


def train_path_cases(args) -> list[dict]:
    """One case per precision x steps per execution: its label and its Hydra overrides."""
    cases = []
    # Steps per execution outermost: a run cut short still has each precision once.
    for per_execution in args.steps_per_execution or [None]:
        for precision in args.precisions or [None]:
            # The clock starts after an epoch's first execution: at least two per epoch,
            # and whole executions.
            k = per_execution or 1
            steps = max(-(-args.train_steps // k) * k, 2 * k)
            overrides = [*train_path_base(args, steps)]
            if precision:
                overrides.append(f"trainer.precision={precision}")
            if per_execution:
                overrides.append(f"trainer.steps_per_execution={per_execution}")
            cases.append({"overrides": overrides, "steps": steps, "precision": precision,
                          "steps_per_execution": per_execution})
    return cases


def without_tensorflow_env(folder: Path) -> dict:
    """KERAS_BACKEND=jax with a `tensorflow` package first on PYTHONPATH whose import
    fails, as on a machine without TensorFlow (tests/helpers/cli.py does the same). The
    rest of PYTHONPATH stays (wheels installed with pip --target live there)."""
    package = folder / "tensorflow"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'tensorflow' (made unimportable by \"\n"
        "                          \"bench_train.py --train-path)\", name='tensorflow')\n")
    path = [str(folder), str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(
        os.pathsep))]
    return {"KERAS_BACKEND": "jax", "PYTHONPATH": os.pathsep.join(path)}


def run_backend(backend_name: str, cases: list[dict], scratch: Path, timeout: float):
    """Runs the cases in one fresh interpreter on `backend_name`; returns its results."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("HYDRA_FULL_ERROR", None)
    if backend_name == "jax":
        env.update(without_tensorflow_env(scratch / "no-tensorflow"))
    else:
        env["KERAS_BACKEND"] = backend_name
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO),
                                                          os.environ.get("PYTHONPATH")]))
    command = [sys.executable, str(Path(__file__).resolve()), "--train-child",
               json.dumps(cases)]
    try:
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=timeout)
        stdout, stderr, code = done.stdout, done.stderr, done.returncode
    except subprocess.TimeoutExpired as expired:  # the runs finished so far still count
        stdout, stderr = (text.decode(errors="replace") if isinstance(text, bytes)
                          else text or "" for text in (expired.stdout, expired.stderr))
        stderr += f"\n(stopped: --timeout {timeout:.0f} s)"
        code = "timeout"
    results = [json.loads(line[len(RESULT):]) for line in stdout.splitlines()
               if line.startswith(RESULT)]
    for line in stderr.splitlines():  # the child's one line per run
        if line.startswith(f"  [{backend_name}]"):
            print(line, file=sys.stderr, flush=True)
    if code != 0 or len(results) < len(cases) or any("error" in r for r in results):
        print(f"[{backend_name}] exit {code}; its stderr ends:\n{stderr[-4000:]}",
              file=sys.stderr, flush=True)
    for case in cases[len(results):]:
        results.append({**case, "backend": backend_name, "error": f"no result (exit {code})"})
    return results


def train_child(cases_json: str) -> None:
    """In the backend's own interpreter: each case through framepred.train.train()."""
    import logging
    import re
    import statistics

    from hydra import compose, initialize_config_dir

    from framepred.callbacks.throughput import target_frames
    from framepred.config import config_dir
    from framepred.devices import describe_devices, resolve_jit
    from framepred.train import train

    class Epochs(logging.Handler):  # the Throughput callback's "epoch k: X frames/s" lines
        def __init__(self):
            super().__init__(logging.INFO)
            self.fps: dict[int, float] = {}

        def emit(self, record):
            found = re.match(r"epoch (\d+): ([0-9.]+) frames/s", record.getMessage())
            if found:
                self.fps[int(found[1])] = float(found[2])

    throughput_log = logging.getLogger("framepred.callbacks.throughput")
    throughput_log.setLevel(logging.INFO)
    if backend() == "jax":
        import jax

        version = f"jax {jax.__version__}"
    else:
        import tensorflow as tf

        version = f"tensorflow {tf.__version__}"
    for case in json.loads(cases_json):
        row = {**case, "backend": backend()}
        epochs = Epochs()
        throughput_log.addHandler(epochs)
        try:
            with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
                cfg = compose("train", overrides=case["overrides"])
            started = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="bench_train_") as run_dir:
                train(cfg, run_dir=run_dir)
            wall = time.perf_counter() - started
            later = [fps for epoch, fps in sorted(epochs.fps.items()) if epoch >= 2]
            if not later:
                raise RuntimeError(f"no throughput logged after epoch 1: {epochs.fps}")
            form, data_cfg = str(cfg.model.form), cfg.data
            targets = target_frames(data_cfg, form)
            inputs = (int(data_cfg.context_frames) + int(data_cfg.future_frames) - 1
                      if form == "next_frame" else int(data_cfg.context_frames))
            network = models.build_model(cfg.model, data_cfg)  # for its shapes only
            flops = forward_flops_per_frame(network, inputs, targets)
            fps = statistics.median(later)
            row.update(
                model=model_name(cfg.model), form=form, params=network.count_params(),
                frame_size="x".join(str(int(n)) for n in data_cfg.frame_size),
                channels=int(data_cfg.channels), source=str(data_cfg.source),
                context=int(data_cfg.context_frames), future=int(data_cfg.future_frames),
                batch=int(cfg.trainer.batch_size), precision=str(cfg.trainer.precision),
                steps_per_execution=int(cfg.trainer.steps_per_execution),
                jit=resolve_jit(cfg.trainer.jit_compile), steps=int(cfg.trainer.steps_per_epoch),
                epochs_fps=[epochs.fps[k] for k in sorted(epochs.fps)], fps=fps,
                gflop_frame=flops / 1e9, achieved=3.0 * flops * fps / 1e12, wall_s=wall,
                device=describe_devices(), version=f"keras {keras.__version__}, {version}")
            print(f"  [{backend()}] {row['model']} {row['precision']} steps/exec "
                  f"{row['steps_per_execution']}: {fps:.1f} frames/s (epochs "
                  f"{', '.join(f'{v:.1f}' for v in row['epochs_fps'])}; {wall:.0f} s)",
                  file=sys.stderr, flush=True)
        except Exception as error:  # noqa: BLE001  (reported in the table, the rest go on)
            import traceback

            traceback.print_exc()
            row["error"] = f"{type(error).__name__}: {error}"[:300]
        finally:
            throughput_log.removeHandler(epochs)
        print(RESULT + json.dumps(row), flush=True)


def train_path_table(rows, peak_tflops=None) -> list[list[str]]:
    """Header + rows: frames/s, the ratio to the first backend, bf16/f32, TFLOP/s."""
    first = rows[0]["backend"] if rows else None
    by_key = {(r["backend"], r.get("precision"), r.get("steps_per_execution")): r
              for r in rows if "error" not in r}
    several = len({r["backend"] for r in rows}) > 1
    header = ["backend", "model", "precision", "steps/exec", "frames/s",
              *([f"ratio vs {BACKEND_NAMES.get(first, first)}"] if several else []),
              "bf16/f32", "GFLOP/frame", "TFLOP/s"]
    if peak_tflops:
        header.append(f"% of {peak_tflops:g} TFLOP/s")
    header.append("wall s")
    table = [header]
    for r in rows:
        name = BACKEND_NAMES.get(r["backend"], r["backend"])
        if "error" in r:
            table.append([name, "-", str(r.get("precision") or "-"),
                          str(r.get("steps_per_execution") or "-"), "failed: " + r["error"][:80]]
                         + ["-"] * (len(header) - 5))
            continue
        key = (r["precision"], r["steps_per_execution"])
        base = by_key.get((first, *key))
        ratio = f"{r['fps'] / base['fps']:.2f}" if base and r["backend"] != first else "-"
        f32 = by_key.get((r["backend"], "float32", r["steps_per_execution"]))
        bf16 = (f"{r['fps'] / f32['fps']:.2f}" if f32 and r["precision"] == "mixed_bfloat16"
                else "-")
        line = [name, r["model"], r["precision"], str(r["steps_per_execution"]),
                f"{r['fps']:.1f}", *([ratio] if several else []), bf16,
                f"{r['gflop_frame']:.4g}", f"{r['achieved']:.4g}"]
        if peak_tflops:
            line.append(f"{100 * r['achieved'] / peak_tflops:.3g}%")
        line.append(f"{r['wall_s']:.0f}")
        table.append(line)
    return table


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


def describe_train_path(rows, args) -> list[str]:
    """The lines above the table: machine, versions, when, what was trained."""
    done = [r for r in rows if "error" not in r]
    lines = [f"measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
             + (f" on {args.machine}" if args.machine else "")
             + f" ({os.cpu_count()} CPU cores visible)"]
    for name in dict.fromkeys(r["backend"] for r in done):
        r = next(r for r in done if r["backend"] == name)
        lines.append(f"{BACKEND_NAMES.get(name, name)}: {r['version']} | device {r['device']}"
                     f" | XLA {r['jit']}")
    if done:
        r = done[0]
        lines.append(
            f"framepred.train.train(): model {r['model']} ({r['form']}, {r['params']:,} "
            f"parameters), data {r['source']} {r['frame_size']}x{r['channels']}, "
            f"{r['context']} -> {r['future']}, batch {r['batch']}, {args.epochs} epochs x "
            f"{r['steps']} steps; frames/s = median of the Throughput callback's epochs "
            "2.. (compilation and validation excluded)")
    varied = [name for name, values in (("trainer.precision", args.precisions),
                                        ("trainer.steps_per_execution",
                                         args.steps_per_execution)) if values]
    lines.append("overrides: " + " ".join(shlex.quote(o) for o in train_path_base(
        args, args.train_steps)) + (f" (+ {', '.join(varied)} per row)" if varied else ""))
    return lines


def train_path_main(args) -> list[dict]:
    cases = train_path_cases(args)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_train_") as scratch:
        for name in args.backends:
            print(f"[{name}] {len(cases)} run(s) of framepred.train.train() ...",
                  file=sys.stderr, flush=True)
            rows += run_backend(name, cases, Path(scratch), args.timeout)
    header = describe_train_path(rows, args)
    table = train_path_table(rows, args.peak_tflops)
    for line in header:
        print(line)
    print_plain(table)
    if args.markdown:
        target = Path(args.markdown)
        target.parent.mkdir(parents=True, exist_ok=True)
        text = "\n".join(f"- {line}" for line in header) + "\n\n" + markdown(table)
        with open(target, "a") as out:
            out.write(text + "\n")
        print(f"table appended to {target}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if any("error" in r for r in rows):
        sys.exit(1)
    return rows


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
    path = parser.add_argument_group(
        "--train-path", "time framepred.train.train() on the composed config instead")
    path.add_argument("--train-path", action="store_true",
                      help="time the training entry point, once per --backends")
    path.add_argument("--backends", default="tensorflow,jax",
                      help="comma-separated; each in a fresh interpreter, JAX without TF")
    path.add_argument("--overrides", action="append", default=[],
                      help='extra Hydra overrides, space-separated (shell quoting), e.g. '
                           '"experiment=moving_mnist data.source=moving_digits"; repeatable')
    path.add_argument("--train-steps", type=int, default=20,
                      help="trainer.steps_per_epoch (rounded up to whole executions)")
    path.add_argument("--epochs", type=int, default=2,
                      help="frames/s = median over epochs 2.. (epoch 1 compiles)")
    path.add_argument("--steps-per-execution", default=None,
                      help="comma-separated trainer.steps_per_execution; default: the config's")
    path.add_argument("--peak-tflops", type=float, default=None,
                      help="the device's peak, for a %% of peak column (H200 bf16 dense: 989)")
    path.add_argument("--machine", default=None, help="a name for the machine, printed")
    path.add_argument("--markdown", default=None, help="append the table to this file")
    path.add_argument("--json", default=None, help="write the rows as JSON here")
    path.add_argument("--timeout", type=float, default=3600,
                      help="seconds per backend's interpreter")
    path.add_argument("--train-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.train_path or args.train_child:
        # Precisions only where asked for: by default the config's own.
        given = argv if argv is not None else sys.argv[1:]
        if not any(a == "--precisions" or a.startswith("--precisions=") for a in given):
            args.precisions = ""
        args.backends = [b for b in args.backends.split(",") if b]
        args.overrides = [o for chunk in args.overrides for o in shlex.split(chunk)]
        args.steps_per_execution = [int(k) for k in
                                    (args.steps_per_execution or "").split(",") if k]
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
    if args.train_child:
        return train_child(args.train_child)
    if args.train_path:
        return train_path_main(args)
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
