"""Benchmark the data sources against what the default model consumes in training.

Run:

    .venv/bin/python scripts/bench_data.py            # 160 sequences per source
    .venv/bin/python scripts/bench_data.py --quick    # fewer sequences and steps

For each source (npy, frames, video, moving_mnist, and the built-in moving_digits)
at 64x64, gray and RGB, and for the fields in physical units (hdf5, netcdf and the
built-in rain_cells, and a folder of ODIM_H5 radar files (data=odim, one file per
frame, RATE packed as bytes), gray, with data.normalize=log1p), it writes a small data set of
20-frame sequences to a temporary folder, builds the source as training does, then
times one pass over every training window through `framepred.data.window_batches` (tf.data, parallel
reads, batch 16): `frames/s` counts the frames of the windows delivered. The
pass starts cold, so it includes decoding (video files are decoded on first use).
`build s` is the time to build the source (scanning files, checking values) and, for
the fields, to compute data.normalize's statistics in their streaming pass.
Each source is timed over `--repeats` cold passes (rebuilt each time) and the
best pass is reported; the model side likewise reports its fastest step. On a
shared machine the best of several runs is the one least disturbed by others.

The reference is the default model, as `python -m framepred.train` composes it
from configs/train.yaml (model, 64x64 frames, 10 -> 10, loss, batch size; printed
above the table), trained in the same run: the fastest of a few train steps
after two warm-up steps, as frames/s = batch * 20 / step time. `ratio` = data frames/s / model
frames/s; at >= 10 the input never starves training.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from framepred.config import DataConfig  # noqa: E402
from framepred.data import MovingDigits, build_source, window_batches  # noqa: E402

FRAMES = 20  # the default window: 10 context + 10 future
BATCH = 16  # the default trainer.batch_size


def clips(count: int, channels: int) -> np.ndarray:
    """Moving-digit clips as uint8 [N, 20, 64, 64, C]: realistic content for encoders."""
    source = MovingDigits(count, FRAMES, (64, 64), channels=channels, seed=7)
    video = np.stack([source.read(i) for i in range(count)])
    if channels == 3:  # tint the digits so the colour planes differ
        video = video * np.array([1.0, 0.7, 0.4], dtype=np.float32)
    return np.rint(video * 255).astype(np.uint8)


def write_sources(root: Path, count: int, channels: int) -> dict[str, dict]:
    """Each source's data config overrides, over the same clips."""
    video = clips(count, channels)
    images = video[..., 0] if channels == 1 else video
    tbhw = np.ascontiguousarray(np.swapaxes(video[..., 0], 0, 1))  # (T, B, H, W)
    np.save(root / "clips.npy", tbhw if channels == 1 else video)
    for s, clip in enumerate(images):
        folder = root / "frames" / f"seq{s}"
        folder.mkdir(parents=True)
        for t, frame in enumerate(clip):
            Image.fromarray(frame).save(folder / f"frame{t}.png")
    (root / "gif").mkdir()
    for s, clip in enumerate(images):
        pictures = [Image.fromarray(frame) for frame in clip]
        pictures[0].save(root / "gif" / f"clip{s}.gif", save_all=True,
                         append_images=pictures[1:], duration=100)
    digits = np.zeros((1000, 28, 28), dtype=np.uint8)
    digits[:, 4:24, 9:19] = 255
    np.savez(root / "mnist.npz", x_train=digits, x_test=digits)
    mnist = {"path": str(root / "mnist.npz"), "train_sequences": count, "digit_size": [28, 28]}
    fields = {}
    if channels == 1:  # fields in physical units: the clips as rain rates, 0-50 mm/h
        rates = video[..., 0].astype(np.float32) * np.float32(50 / 255)  # [N, T, H, W]
        fields = write_fields(root, rates, count)
    return {
        **fields,
        "npy": {"path": str(root / "clips.npy"), "layout": "tbhw" if channels == 1 else "bthwc"},
        "frames": {"path": str(root / "frames")},
        "video": {"path": str(root / "gif")},
        "moving_mnist": mnist,
        "moving_digits": {"train_sequences": count},
    }


def write_fields(root: Path, rates: np.ndarray, count: int) -> dict[str, dict]:
    """HDF5 (bthw), netCDF and ODIM (one time series) copies of `rates`, and rain_cells."""
    import h5py
    import xarray as xr

    with h5py.File(root / "rain.h5", "w") as file:
        file.create_dataset("rain", data=rates, chunks=(1, FRAMES, 64, 64))
    series = rates.reshape(-1, 64, 64)  # [N*T, H, W]: consecutive windows of 20 frames
    xr.Dataset({"rain": (("time", "y", "x"), series)},
               coords={"time": np.arange(len(series))}).to_netcdf(
        root / "rain.nc", engine="h5netcdf")
    (root / "odim").mkdir()
    start = np.datetime64("2024-05-01T00:00")
    for step, frame in enumerate(series):  # OPERA's RATE: bytes of 0.2 mm/h, 255 nodata
        when = str(start + np.timedelta64(5 * step, "m")).replace("-", "").replace(":", "")
        with h5py.File(root / "odim" / f"comp_{step:05d}.h5", "w") as file:
            file.create_group("what").attrs.update(
                {"date": np.bytes_(when[:8]), "time": np.bytes_(when[9:13] + "00")})
            data = file.create_group("dataset1/data1")
            data.create_dataset("data", data=np.minimum(np.rint(frame / 0.2), 254).astype(
                np.uint8))
            data.create_group("what").attrs.update({"quantity": np.bytes_("RATE"), "gain": 0.2,
                                                    "offset": 0.0, "nodata": 255.0,
                                                    "undetect": 0.0})
    field = {"normalize": "log1p", "clip": [0.0, 100.0]}
    return {
        "hdf5": {"path": str(root / "rain.h5"), "dataset": "rain", "layout": "bthw", **field},
        "netcdf": {"path": str(root / "rain.nc"), "variable": "rain", "stride": FRAMES,
                   **field},
        "odim": {"path": str(root / "odim"), "quantity": "RATE", "stride": FRAMES, **field},
        "rain_cells": {"train_sequences": count, **field},
    }


def data_config(source: str, channels: int, overrides: dict) -> DataConfig:
    data = DataConfig(source=source, channels=channels, val_fraction=0.0, test_fraction=0.0)
    for key, value in overrides.items():
        setattr(data, key, value)
    return data


def data_rate(data: DataConfig, repeats: int) -> tuple[float, float]:
    """(frames/s of the best of `repeats` cold passes over every training window,
    seconds to build the source)."""
    from framepred import data as data_module

    rates, builds = [], []
    for _ in range(repeats):
        data_module._READERS.clear()  # build from scratch, as a new run would
        start = time.perf_counter()
        build_source(data, "train")
        normalization = data_module.fit_normalization(data)  # a no-op without normalize
        builds.append(time.perf_counter() - start)
        dataset = window_batches(data, "train", BATCH, normalization=normalization)
        start = time.perf_counter()
        frames = sum(int(batch.shape[0]) * int(batch.shape[1]) for batch in dataset.numpy())
        rates.append(frames / (time.perf_counter() - start))
    return max(rates), min(builds)


def default_config(channels: int):
    """The composed default training config (configs/train.yaml), as a plain run gets it."""
    from hydra import compose, initialize_config_dir

    from framepred.config import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("train", overrides=[f"data.channels={channels}"])


def model_rate(channels: int, steps: int) -> tuple[float, str]:
    """(frames/s the default model consumes in training: fastest step after warm-up,
    a description of the model)."""
    import keras
    from omegaconf import OmegaConf

    from framepred import losses, models

    cfg = default_config(channels)
    keras.backend.clear_session()
    model = models.build_model(cfg.model, cfg.data)
    model.compile(optimizer=keras.optimizers.Adam(1e-3, clipnorm=1.0),
                  loss=losses.build_loss(**OmegaConf.to_container(cfg.loss, resolve=True)),
                  jit_compile=False)
    batch, context = int(cfg.trainer.batch_size), int(cfg.data.context_frames)
    frames = context + int(cfg.data.future_frames)
    height, width = cfg.data.frame_size
    rng = np.random.default_rng(0)
    window = rng.uniform(0, 1, (batch, frames, height, width, channels)).astype(np.float32)
    inputs, targets = window[:, :context], window[:, context:]
    if models.model_form(model) == "next_frame":
        inputs, targets = window[:, :-1], window[:, 1:]
    for _ in range(2):
        model.train_on_batch(inputs, targets)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(inputs, targets)
        times.append(time.perf_counter() - start)
    form, loss = (option for option in (cfg.model.form, cfg.loss.name))
    about = (f"{form} filters={list(cfg.model.filters)} patch={cfg.model.patch_size}, "
             f"{height}x{width}, {context} -> {frames - context}, loss={loss}, "
             f"batch {batch}, {model.count_params():,} parameters")
    return batch * frames / min(times), about


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="48 sequences, fewer repeats")
    parser.add_argument("--sequences", type=int, default=160)
    parser.add_argument("--steps", type=int, default=4, help="timed train steps")
    parser.add_argument("--repeats", type=int, default=3, help="cold passes per source")
    parser.add_argument("--sources", default="",
                        help="comma-separated sources to time (default: every one)")
    args = parser.parse_args()
    count, steps, repeats = ((48, 2, 2) if args.quick
                             else (args.sequences, args.steps, args.repeats))

    import tensorflow as tf

    device = "GPU" if tf.config.list_physical_devices("GPU") else f"CPU ({os.cpu_count()} cores)"
    print(f"# bench_data: 64x64, {count} sequences of {FRAMES} frames per source, "
          f"batch {BATCH}; model on {device}; TF {tf.__version__}")
    wanted = set(args.sources.split(",")) if args.sources else set()
    # Fields in physical units are gray only: timing only them needs no RGB pass.
    passes = (1,) if wanted and wanted <= {"hdf5", "netcdf", "odim", "rain_cells"} else (1, 3)
    model_fps = {}
    for channels in passes:
        model_fps[channels], about = model_rate(channels, steps)
        print(f"# default model, {'gray' if channels == 1 else 'RGB'}: {about}")
    print("| source | channels | build s | data frames/s | model frames/s | ratio |")
    print("|---|---|---|---|---|---|")
    worst = float("inf")
    for channels in passes:
        with tempfile.TemporaryDirectory() as folder:
            for source, overrides in write_sources(Path(folder), count, channels).items():
                if args.sources and source not in args.sources.split(","):
                    continue
                fps, built = data_rate(data_config(source, channels, overrides), repeats)
                ratio = fps / model_fps[channels]
                worst = min(worst, ratio)
                print(f"| {source} | {'gray' if channels == 1 else 'RGB'} | {built:.2f} | "
                      f"{fps:,.0f} | {model_fps[channels]:,.0f} | {ratio:.1f} |", flush=True)
    print(f"# lowest ratio: {worst:.1f} ({'ok' if worst >= 10 else 'BELOW 10'})")


if __name__ == "__main__":
    main()
