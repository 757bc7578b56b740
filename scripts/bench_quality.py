"""Forecast quality per unit of compute: contenders trained for the same budget, side by side.

Run:

    .venv/bin/python scripts/bench_quality.py                  # 10 minutes each (2-core CPU)
    .venv/bin/python scripts/bench_quality.py --minutes 3 --contenders default,keras_io
    .venv/bin/python scripts/bench_quality.py --extra "lr3e-3=trainer.learning_rate=0.003"
    KERAS_BACKEND=jax python scripts/bench_quality.py --steps 600   # no TensorFlow needed
    .venv/bin/python scripts/bench_quality.py --plot-only docs/quality.json

Every contender trains on the same Moving Digits windows (the default data config,
2000 training sequences, 64x64, 10 -> 10) for the same budget: `--minutes` of wall
clock (the default, 10), or `--steps` optimizer steps (to compare recipes at equal
compute on a faster machine). Schedules (cosine, onecycle) are sized to the budget
from a timed probe. Each is then scored on the same validation windows by the same
rollout (`framepred.models.forecast`) and `framepred.verification.evaluate_forecast`,
against every baseline.

Contenders:

- `default`: configs/train.yaml as `./scripts/train.sh` runs it (the flow head).
- Contenders whose name starts with `natural` train and score on the natural pans.
- `residual`, `motion`, `forward_warp`: the default with the residual head (the
  default before the motion heads), the softmax-kernel motion head, or the flow head
  warping forward (docs/recipes.md, "Forecasts that move the last frame").
- `next_frame`: the best next_frame recipe (`NEXT_FRAME_RECIPE`).
- `keras_io`: keras-io's examples/vision/conv_lstm.py as published: ConvLSTM2D(64)
  with kernels 5, 3, 1, ReLU and batch norm, a Conv3D(3x3x3) sigmoid head, binary
  cross-entropy, Adam, trained next-frame on full-resolution frames.
- `natural`: the default config on RGB camera pans and zooms over scikit-image's
  sample photographs (64x64, 6 -> 6); training on some photographs, validation on
  others. On footage where little moves, copy-last is the bar.

Writes `<out>.json` (every number), `<out>.md` (a markdown table per data set) and
`<out>.png` (SSIM and MSE per forecast step, contenders and baselines). The PNG
needs matplotlib (the `dev` extra); `--plot-only` redraws it from the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

import keras  # noqa: E402
from bench_train import describe_device  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from framepred import data, models, scoreboard, verification  # noqa: E402
from framepred.run.folder import strict_json  # noqa: E402

# The best next_frame recipe measured (docs/recipes.md): scheduled sampling whose
# probability of the true frame reaches 0 after 500 steps, about a 5-minute CPU budget.
NEXT_FRAME_RECIPE = ["model.form=next_frame", "trainer.sampling=scheduled",
                     "trainer.sampling_changing_rate=0.002", "trainer.sampling_stop_step=500"]

CONTENDERS = {
    "default": [],  # the flow head (model.head=flow), its forecaster reading its forecasts
    # The other heads on the default's settings (docs/recipes.md).
    "residual": ["model.head=residual", "model.forecaster_input=zeros"],
    "motion": ["model.head=motion"],
    "forward_warp": ["model.warp=forward"],
    "next_frame": NEXT_FRAME_RECIPE,
    "keras_io": None,  # its own model, loss and optimizer
    "natural": ["data.channels=3", "data.context_frames=6", "data.future_frames=6"],
}
# Photographs for the natural footage: training pans over the first, validation the rest.
TRAIN_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field")
VAL_PHOTOS = ("immunohistochemistry", "retina", "colorwheel")


def compose(overrides):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from framepred.config import config_dir, validate

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = hydra_compose("train", overrides=list(overrides))
    validate(cfg)
    return cfg


def read_windows(source, length: int) -> np.ndarray:
    """Every first window of every sequence: [N, length, H, W, C]."""
    return np.stack([source.read(i, 0, length) for i in range(len(source))])


def load_photos(names, photos_file: str | None) -> list[np.ndarray]:
    """float32 [H, W, 3] photographs: scikit-image's samples, or a saved .npz of them
    (for machines without scikit-image; write one with --save-photos)."""
    if photos_file:
        with np.load(photos_file) as saved:
            return [saved[name].astype(np.float32) / 255.0 for name in names]
    from skimage import data as samples

    return [getattr(samples, name)().astype(np.float32) / 255.0 for name in names]


def camera_pans(photos, sequences: int, frames: int, size: int, seed: int) -> np.ndarray:
    """[sequences, frames, size, size, 3]: a camera drifting and zooming over a photograph.

    Each sequence picks a photograph, a start box (a third to a half of the photo's
    short side), a pan velocity (0 to 1.5 output pixels a frame) and a zoom rate
    (+-1.5% a frame); each frame is that box resampled to size x size.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    clips = np.empty((sequences, frames, size, size, 3), np.float32)
    for i in range(sequences):
        photo = photos[i % len(photos)]
        image = Image.fromarray((photo * 255).astype(np.uint8))
        height, width = photo.shape[:2]
        box = rng.uniform(0.33, 0.5) * min(height, width)
        centre = rng.uniform([box, box], [height - box, width - box])
        velocity = rng.uniform(-1.5, 1.5, 2) * box / size  # photo pixels per frame
        zoom = rng.uniform(-0.015, 0.015)
        for t in range(frames):
            half = box * (1.0 + zoom) ** t / 2.0
            y, x = np.clip(centre + velocity * t, half, [height - half, width - half])
            crop = image.resize((size, size), Image.BILINEAR,
                                box=(x - half, y - half, x + half, y + half))
            clips[i, t] = np.asarray(crop, np.float32) / 255.0
    return clips


def build_keras_io(frame_size, channels) -> keras.Model:
    """keras-io examples/vision/conv_lstm.py, layer for layer."""
    layers = keras.layers
    frames = keras.Input((None, *frame_size, channels))
    x = frames
    for kernel in ((5, 5), (3, 3), (1, 1)):
        x = layers.ConvLSTM2D(64, kernel, padding="same", return_sequences=True,
                              activation="relu")(x)
        if kernel != (1, 1):
            x = layers.BatchNormalization()(x)
    forecast = layers.Conv3D(channels, (3, 3, 3), activation="sigmoid", padding="same")(x)
    model = keras.Model(frames, forecast, name="keras_io_conv_lstm")
    model.compile(loss=keras.losses.binary_crossentropy, optimizer=keras.optimizers.Adam())
    return model


class Budget(keras.callbacks.Callback):
    """Stops training after `seconds` of wall clock or `steps` optimizer steps."""

    def __init__(self, seconds: float | None, steps: int | None):
        super().__init__()
        self.seconds, self.steps, self.done = seconds, steps, 0
        self.start = None

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):  # fit's epochs are unbounded
        self.done += 1
        elapsed = time.perf_counter() - self.start
        if (self.steps and self.done >= self.steps) or (self.seconds and elapsed >= self.seconds):
            self.model.stop_training = True


def build_contender(name, cfg, steps_budget: int):
    """(network, trained model, form), compiled for `steps_budget` optimizer steps.

    The trained model is the network itself, or, with `trainer.sampling`, the network
    unrolled with scheduled sampling (sharing its weights), as `framepred.train` builds it.
    """
    from framepred import losses, optimizers

    if name == "keras_io":
        model = build_keras_io(tuple(cfg.data.frame_size), int(cfg.data.channels))
        return model, model, "next_frame"
    network = models.build_model(cfg.model, cfg.data)
    model = models.with_sampling(network, cfg.trainer, cfg.data)
    # Sized so a cosine or one-cycle schedule ends with the budget.
    trainer = cfg.trainer.copy()
    trainer.epochs = 1
    model.compile(optimizer=optimizers.build_optimizer(trainer, max(steps_budget, 1)),
                  loss=losses.build_loss(**OmegaConf.to_container(cfg.loss, resolve=True)))
    return network, model, cfg.model.form


def fit(name, cfg, windows, seconds, steps, seed):
    """Trains one contender within the budget; returns (network, steps, seconds)."""
    batch = int(cfg.trainer.batch_size)
    if steps is None:  # a timed probe sizes the schedule to the wall-clock budget
        keras.utils.set_random_seed(seed)
        _, probe, form = build_contender(name, cfg, 1000)
        inputs, targets = data.split_window(windows[: batch * 8], form, cfg.data.context_frames)
        probe.fit(inputs, targets, batch_size=batch, epochs=1, verbose=0)  # warm-up
        start = time.perf_counter()
        probe.fit(inputs, targets, batch_size=batch, epochs=1, verbose=0)
        planned = int(seconds / ((time.perf_counter() - start) / 8))
    else:
        planned = steps
    keras.utils.set_random_seed(seed)
    network, model, form = build_contender(name, cfg, planned)
    if name != "keras_io":
        models.init_head(network, float(windows[:batch].mean()))
    inputs, targets = data.split_window(windows, form, cfg.data.context_frames)
    budget = Budget(seconds if steps is None else None, steps)
    start = time.perf_counter()
    model.fit(inputs, targets, batch_size=batch, epochs=10**6, shuffle=True, verbose=0,
              callbacks=[budget])
    return network, budget.done, time.perf_counter() - start


def score(model, cfg, windows) -> dict:
    batch = 8  # keras-io's full-resolution rollout needs ~12 GiB at 32
    batches = (windows[i: i + batch] for i in range(0, len(windows), batch))
    return verification.evaluate_forecast(model, batches, int(cfg.data.context_frames),
                                        int(cfg.data.future_frames))


def dataset_for(name, cfg, args) -> tuple[str, np.ndarray, np.ndarray]:
    length = int(cfg.data.context_frames) + int(cfg.data.future_frames)
    if name.startswith("natural"):
        size = int(cfg.data.frame_size[0])
        train = camera_pans(load_photos(TRAIN_PHOTOS, args.photos), args.natural_sequences,
                            length, size, seed=0)
        val = camera_pans(load_photos(VAL_PHOTOS, args.photos), 96, length, size, seed=1)
        return "natural RGB pans", train, val
    return ("Moving Digits", read_windows(data.build_source(cfg.data, "train"), length),
            read_windows(data.build_source(cfg.data, "val"), length))


def run(args) -> dict:
    report = {"device": describe_device(), "backend": keras.backend.backend(),
              "budget": f"{args.steps} steps" if args.steps else f"{args.minutes} min",
              "datasets": {}}
    contenders = dict(CONTENDERS)
    for extra in args.extra:
        label, _, overrides = extra.partition("=")
        contenders[label] = [o for o in overrides.split(",") if o]
    cache = {}
    names = [n for n in args.contenders.split(",") if n]  # --contenders "": extras only
    for name in names + [e.partition("=")[0] for e in args.extra]:
        overrides = [*(contenders[name] or []), *args.override]
        cfg = compose(overrides)
        # Contenders whose data config is the same train and score on the same arrays.
        key = (name.startswith("natural"), OmegaConf.to_yaml(cfg.data))
        if key not in cache:
            cache[key] = dataset_for(name, cfg, args)
        label, train, val = cache[key]
        print(f"[{name}] training on {label}: {len(train)} windows ...", flush=True)
        model, steps, seconds = fit(name, cfg, train, args.minutes * 60, args.steps, args.seed)
        results = score(model, cfg, val)
        entry = report["datasets"].setdefault(label, {"contenders": {}, "baselines": {}})
        entry["contenders"][name] = {"steps": steps, "seconds": seconds,
                                     "overrides": overrides, **results}
        for baseline in scoreboard.BASELINES:
            entry["baselines"][baseline] = results[baseline]
        ssim = results["model"]["ssim"]["mean"]
        print(f"[{name}] {steps} steps in {seconds:.0f} s: mean SSIM {ssim:.3f}", flush=True)
    return report


def markdown(report) -> str:
    lines = [f"Measured on {report['device']} ({report['backend']} backend), budget "
             f"{report['budget']} per contender. SSIM: Gaussian 11x11 (as tf.image.ssim); "
             "ssim_openstl: OpenSTL's (7x7 uniform, data_range 2); MSE per pixel.", ""]
    for label, entry in report["datasets"].items():
        rows = {**{k: v["model"] for k, v in entry["contenders"].items()},
                **entry["baselines"]}
        steps = len(next(iter(rows.values()))["ssim"]["per_step"])
        lines += [f"### {label}", "",
                  "| entry | metric | " + " | ".join(f"t+{s + 1}" for s in range(steps))
                  + " | mean |", "|---|---|" + "---|" * (steps + 1)]
        for metric in ("ssim", "ssim_openstl", "mse"):
            for name, values in rows.items():
                if metric not in values:
                    continue
                digits = 4 if metric == "mse" else 3
                cells = [f"{v:.{digits}f}" for v in values[metric]["per_step"]]
                lines.append(f"| {name} | {metric} | " + " | ".join(cells)
                             + f" | {values[metric]['mean']:.{digits}f} |")
        trained = ", ".join(f"{k}: {v['steps']} steps in {v['seconds']:.0f} s"
                            for k, v in entry["contenders"].items())
        lines += ["", f"Training: {trained}.", ""]
    return "\n".join(lines)


def plot(report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = report["datasets"]
    figure, axes = plt.subplots(len(datasets), 2, figsize=(11, 3.6 * len(datasets)),
                                squeeze=False)
    for row, (label, entry) in enumerate(datasets.items()):
        for column, metric in enumerate(("ssim", "mse")):
            axis = axes[row, column]
            for name, values in entry["contenders"].items():
                series = values["model"][metric]["per_step"]
                axis.plot(range(1, len(series) + 1), series, marker="o", label=name)
            for name, values in entry["baselines"].items():
                series = values[metric]["per_step"]
                axis.plot(range(1, len(series) + 1), series, linestyle="--", label=name)
            axis.set_title(f"{label}: {metric.upper()} per step "
                           f"({'higher' if metric == 'ssim' else 'lower'} is better)")
            axis.set_xlabel("forecast step t+k")
            axis.grid(alpha=0.3)
            axis.legend(fontsize=7)
    figure.suptitle(f"{report['device']}, {report['budget']} per contender", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=None,
                        help="train each contender this many steps instead of --minutes")
    parser.add_argument("--contenders", default="default,next_frame,keras_io,natural")
    parser.add_argument("--extra", action="append", default=[],
                        help='another contender: "label=override,override"')
    parser.add_argument("--override", action="append", default=[],
                        help="a Hydra override applied to every contender")
    parser.add_argument("--natural-sequences", type=int, default=1000)
    parser.add_argument("--photos", default=None, help="an .npz of the sample photographs")
    parser.add_argument("--save-photos", default=None, help="write that .npz and exit")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", default=str(REPO / "docs" / "quality"))
    parser.add_argument("--plot-only", default=None, help="redraw <out>.png from a JSON")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    out = Path(args.out)
    if args.save_photos:
        from skimage import data as samples

        np.savez_compressed(args.save_photos, **{n: getattr(samples, n)()
                                                 for n in TRAIN_PHOTOS + VAL_PHOTOS})
        return
    if args.plot_only:
        report = json.loads(Path(args.plot_only).read_text())
    else:
        report = run(args)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(strict_json(report, indent=1))
    table = markdown(report)
    out.with_suffix(".md").write_text(table + "\n")
    print(table)
    try:
        plot(report, out.with_suffix(".png"))
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")


if __name__ == "__main__":
    main()
