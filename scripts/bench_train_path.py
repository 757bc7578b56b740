"""Training throughput (frames/s) of the training entry point itself, per backend.

Run:

    # framepred.train.train() under TF and under JAX (no TF):
    .venv/bin/python scripts/bench_train_path.py
    .venv/bin/python scripts/bench_train_path.py --backends jax \
        --overrides "experiment=moving_mnist data.source=moving_digits data.digit_size=[28,28]" \
        --precisions float32,mixed_bfloat16 --steps-per-execution 1,8 --peak-tflops 989

It times `framepred.train.train(cfg,
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

The frames/s are read back from the run's own records: the `throughput/frames_per_second`
scalars that the `Throughput` callback writes into the run's tensorboard/train folder,
read with TensorBoard's event reader. scripts/bench_train.py times the models alone
(`train_on_batch`, no data pipeline) against the keras-io reference; the model names,
FLOP counts and table helpers come from it.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__" and "--train-child" not in sys.argv[1:]:
    # This process only starts one interpreter per backend and tabulates: Keras' numpy
    # backend spares it TensorFlow's or JAX's start-up. A child gets its backend from
    # run_backend's environment. (Not when imported: the importer's children inherit.)
    os.environ.setdefault("KERAS_BACKEND", "numpy")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
from bench_train import (  # noqa: E402
    BACKEND_NAMES,
    MODELS,
    REPO,
    backend,
    forward_flops_per_frame,
    markdown,
    print_plain,
)

from framepred import models  # noqa: E402

RESULT = "TRAIN_PATH_RESULT "  # a child's result line on stdout: this prefix, then JSON
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
        "                          \"bench_train_path.py)\", name='tensorflow')\n")
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


def run_throughput(folder: Path) -> dict[int, float]:
    """{epoch (1-based): frames/s} from a run's tensorboard/train events, as the
    Throughput callback recorded them (its scalar steps count epochs from 0)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util.tensor_util import make_ndarray

    from framepred.callbacks.throughput import TAG

    if not Path(folder).is_dir():  # a run that stopped before its first epoch ended
        return {}
    events = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    events.Reload()
    if TAG not in events.Tags().get("tensors", []):
        return {}
    return {event.step + 1: float(make_ndarray(event.tensor_proto))
            for event in events.Tensors(TAG)}


def train_child(cases_json: str) -> None:
    """In the backend's own interpreter: each case through framepred.train.train()."""
    import statistics

    from hydra import compose, initialize_config_dir

    from framepred.callbacks.throughput import target_frames
    from framepred.config import config_dir
    from framepred.devices import describe_devices, resolve_jit
    from framepred.run.folder import RunPaths
    from framepred.train import train

    if backend() == "jax":
        import jax

        version = f"jax {jax.__version__}"
    else:
        import tensorflow as tf

        version = f"tensorflow {tf.__version__}"
    for case in json.loads(cases_json):
        row = {**case, "backend": backend()}
        try:
            with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
                cfg = compose("train", overrides=case["overrides"])
            started = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="bench_train_") as run_dir:
                train(cfg, run_dir=run_dir)
                wall = time.perf_counter() - started
                epochs_fps = run_throughput(RunPaths(Path(run_dir)).tensorboard / "train")
            later = [fps for epoch, fps in sorted(epochs_fps.items()) if epoch >= 2]
            if not later:
                raise RuntimeError(f"no throughput recorded after epoch 1: {epochs_fps}")
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
                epochs_fps=[epochs_fps[k] for k in sorted(epochs_fps)], fps=fps,
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
    parser.add_argument("--backends", default="tensorflow,jax",
                        help="comma-separated; each in a fresh interpreter, JAX without TF")
    parser.add_argument("--overrides", action="append", default=[],
                        help='extra Hydra overrides, space-separated (shell quoting), e.g. '
                             '"experiment=moving_mnist data.source=moving_digits"; repeatable')
    parser.add_argument("--precisions", default="",
                        help="comma-separated trainer.precision; default: the config's")
    parser.add_argument("--train-steps", type=int, default=20,
                        help="trainer.steps_per_epoch (rounded up to whole executions)")
    parser.add_argument("--epochs", type=int, default=2,
                        help="frames/s = median over epochs 2.. (epoch 1 compiles)")
    parser.add_argument("--steps-per-execution", default=None,
                        help="comma-separated trainer.steps_per_execution; default: the config's")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the device's peak, for a %% of peak column (H200 bf16 dense: 989)")
    parser.add_argument("--machine", default=None, help="a name for the machine, printed")
    parser.add_argument("--markdown", default=None, help="append the table to this file")
    parser.add_argument("--json", default=None, help="write the rows as JSON here")
    parser.add_argument("--timeout", type=float, default=3600,
                        help="seconds per backend's interpreter")
    parser.add_argument("--train-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.backends = [b for b in args.backends.split(",") if b]
    args.overrides = [o for chunk in args.overrides for o in shlex.split(chunk)]
    args.precisions = [p for p in args.precisions.split(",") if p]
    args.steps_per_execution = [int(k) for k in (args.steps_per_execution or "").split(",") if k]
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.train_child:
        return train_child(args.train_child)
    return train_path_main(args)


if __name__ == "__main__":
    main()
