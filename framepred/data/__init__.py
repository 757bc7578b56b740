"""Sequence data: every source feeds the same [batch, time, H, W, C] pipeline.

`build_source(data_cfg, split)` picks the reader for `data.source` from the
registry (`registry.py`: every source's reader, config check, preset);
`window_batches()` turns a split into batches: tf.data on the TensorFlow backend
(`pipeline.py`), a PyDataset without TensorFlow on the others (`batches.py`);
`training_batches()` gives a run's training and validation batches and how an
epoch is cut from them.

    registry.py        every source by name: its reader, its config check, its preset
    moving_digits.py   data=moving_digits: procedural digits, no file
    mnist.py           data=moving_mnist: real MNIST digits in the same generator
    rain_cells.py      data=rain_cells: procedural rain cells in mm/h, no file
    arrays.py          data=npy: one memory-mapped .npy / .npz array
    folders.py         data=frames: folders of image files
    videos.py          data=video: animated images, video files
    hdf5.py            data=hdf5: one HDF5 dataset, in data units (weather extra)
    netcdf.py          data=netcdf: one netCDF variable, a file or a folder (weather extra)
    formats.py         resize, channels, [0, 1] scaling: shared by the disk sources
    splits.py          train / val / test by whole sequence (or time chunks), no leakage
    pipeline.py        tf.data batches (TensorFlow backend)
    batches.py         PyDataset batches (JAX and other backends; no TensorFlow)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from framepred.data.files import existing_path
from framepred.data.formats import FrameFormat
from framepred.data.moving_digits import MovingDigits
from framepred.data.registry import SPLITS, source_kind
from framepred.data.source import SequenceSource, split_window
from framepred.data.splits import Span, SpanSource, split_spans
from framepred.errors import FramepredError

__all__ = [
    "SPLITS", "MovingDigits", "SequenceSource", "TrainingBatches", "build_source",
    "check_split_fills_batch", "split_window", "training_batches", "training_pairs", "units",
    "window_batches", "window_dataset", "window_length",
]


def __getattr__(name: str):
    # The tf.data pipeline loads TensorFlow; the sources do not, so they also serve
    # code that runs without it (a JAX machine, scripts/bench_quality.py).
    if name in ("training_pairs", "window_dataset"):
        from framepred.data import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def window_length(data: Any) -> int:
    return int(data.context_frames) + int(data.future_frames)


def build_source(data: Any, split: str) -> SequenceSource:
    """The sequences of one split ("train", "val" or "test") of `data.source`."""
    if split not in SPLITS:
        raise FramepredError(f"split={split!r} is not one of: {', '.join(SPLITS)}")
    kind = source_kind(str(data.source))
    if kind.generate is not None:
        return kind.generate(data, split)
    length = window_length(data)
    val_path = data.val_path if split == "val" else None
    if val_path:
        reader = _reader(data, val_path, "data.val_path")
        spans = [Span(i, 0, reader.num_frames(i)) for i in range(len(reader))]
    else:
        reader = _reader(data, data.path, "data.path")
        # With a separate validation set, `path` splits into training and test only.
        val_fraction = 0.0 if data.val_path else float(data.val_fraction)
        lengths = [reader.num_frames(i) for i in range(len(reader))]
        spans = split_spans(lengths, val_fraction, float(data.test_fraction),
                            int(data.seed))[split]
    skipped = 0
    if kind.data_units and str(data.missing) == "skip_window":
        spans, skipped = _complete_stretches(reader, spans)
    source = SpanSource(reader, spans, where=_where(reader))
    longest = max((span.stop - span.start for span in spans), default=0)
    if longest < length:
        remedy = ("give more or longer sequences, or lower data.val_fraction and "
                  "data.test_fraction" if split == "train" else
                  f"raise data.{split}_fraction or give more or longer sequences")
        if split == "val":
            remedy += " (or a separate validation set: data.val_path)"
        if skipped:
            remedy += (f"; data.missing=skip_window left out its {skipped} frame(s) holding a "
                       "missing value, and a window never spans one (data.missing=zero reads "
                       "them as 0)")
        raise FramepredError(
            f"the {split} split of {_where(reader)} has no sequence long enough for one "
            f"window: a window needs {length} frames (data.context_frames + "
            f"data.future_frames), the longest of its {len(spans)} sequence(s) has "
            f"{longest}; {remedy}"
        )
    return source


def _complete_stretches(reader, spans: list[Span]) -> tuple[list[Span], int]:
    """data.missing=skip_window: each span cut into its stretches of frames without a
    missing value, so no window holds one; and how many frames were left out."""
    stretches, skipped = [], 0
    for span in spans:
        missing = reader.missing_frames(span.sequence)[span.start:span.stop]
        skipped += int(missing.sum())
        # Edges where a stretch starts and ends, in pairs: [start0, stop0, start1, ...].
        edges = np.flatnonzero(np.diff(np.concatenate([[1], missing, [1]]).astype(np.int8)))
        stretches += [Span(span.sequence, span.start + int(a), span.start + int(b))
                      for a, b in zip(edges[::2], edges[1::2])]
    return stretches, skipped


def count_windows(data: Any, split: str) -> tuple[int, int]:
    """(sequences, windows) of one split, as `window_batches()` reads them."""
    source = build_source(data, split)
    length = window_length(data)
    return len(source), len(source.window_starts(length, data.stride or length))


def _where(reader: SequenceSource) -> str:
    return str(getattr(reader, "where", None) or getattr(reader, "root", "the data"))


_READERS: dict[tuple, SequenceSource] = {}
READER_KEYS = ("layout", "on_bad_file", "dataset", "variable", "time_dim", "spatial_dims",
               "missing", "quantity", "dbz_floor", "to_rain_rate", "zr_a", "zr_b")


def read_whole(data: Any, path: str, key: str) -> SequenceSource:
    """Every sequence of the file or folder at `path`, as `data.source` reads it, not
    split (predict's input, for the field sources)."""
    _require_field_key(data, key)
    return _reader(data, path, key)


def _require_field_key(data: Any, key: str) -> None:
    name = source_kind(str(data.source)).field_key
    if name and not data[name]:
        raise FramepredError(f"{key} is a data={data.source} file; give data.{name}=NAME "
                             "(the run's is used when it trained on one)")


def _reader(data: Any, path: str | None, key: str) -> SequenceSource:
    """The whole source at `path`, built once per process for the splits to share
    (building scans every file, and checks float arrays value by value)."""
    from framepred.data.arrays import split_member

    name = str(data.source)
    kind = source_kind(name)
    member = split_member(path)[1] if name == "npy" and path else None
    file_name = split_member(path)[0] if member else path
    resolved = existing_path(file_name, key, name, kind.reads)
    frame_format = FrameFormat.from_config(data)
    if kind.data_units:
        frame_format = frame_format.in_data_units()
    stat = resolved.stat()
    # Every key a reader reads: another value is another reader.
    cache_key = (name, str(path), str(resolved.resolve()), stat.st_mtime_ns, stat.st_size,
                 frame_format, *(str(getattr(data, key)) for key in READER_KEYS))
    reader = _READERS.get(cache_key)
    if reader is None:
        reader = kind.open(data, f"{resolved}:{member}" if member else resolved, frame_format)
        if len(_READERS) >= 2:  # training path and val_path; a sweep reuses them
            _READERS.pop(next(iter(_READERS)))
        _READERS[cache_key] = reader
    length = window_length(data)
    longest = max(reader.num_frames(i) for i in range(len(reader)))
    if longest < length:
        # data=video reads one sequence per file: a folder of still images gives
        # sequences of one frame, which data=frames reads as one sequence.
        stills = ("; these are still images, and data=video reads each file as a sequence: "
                  "for a folder of frames use data=frames" if name == "video" and longest == 1
                  else "")
        raise FramepredError(
            f"{key}={path}: every sequence is shorter than one window: a window needs "
            f"{length} frames (data.context_frames={data.context_frames} + "
            f"data.future_frames={data.future_frames}), the longest of its {len(reader)} "
            f"sequence(s) has {longest}{stills}"
        )
    return reader


def fit_normalization(data: Any):
    """`data.normalize` fitted on the training split (`framepred.data.normalize`); with
    `none`, a check that a source in data units already lies in [0, 1]."""
    from framepred.data import normalize

    source = build_source(data, "train")
    if str(data.normalize) == "none" and source_kind(str(data.source)).data_units:
        normalize.check_unit_range(data, source, window_length(data))
    return normalize.fit(data, source, units(data))


def units(data: Any) -> str | None:
    """The unit of the values of `data.source`: mm/h for rain_cells, the `units`
    attribute of an HDF5 dataset or netCDF variable, the ODIM quantity's (dBZ, mm/h,
    mm); None for pictures and for files that name none."""
    kind = source_kind(str(data.source))
    if not kind.data_units:
        return None
    if kind.generate is not None:
        return build_source(data, "train").units
    return _reader(data, data.path, "data.path").units  # built once, then cached


def window_batches(data: Any, split: str, batch_size: int, shuffle: bool = False,
                   seed: int = 0, repeat: bool = False, drop_remainder: bool = False,
                   normalization=None, shard: tuple[int, int] = (0, 1)):
    """Window batches [B, context+future, H, W, C] of one split, through
    `normalization` (`fit_normalization`) where given: tf.data on the TensorFlow
    backend (`pipeline.DatasetWindows`), a PyDataset on every other
    (`batches.WindowBatches`, no TensorFlow). Both offer `.pairs(form, context)` for
    fit, `.numpy()` for one pass, `.first()` and `.steps`. `shard`: (process, count)
    of a multi-host job, each process reading its slice of every global batch."""
    import keras

    source = build_source(data, split)
    if normalization is not None:
        source = normalization.wrap(source)
    length = window_length(data)
    cache = data.cache
    if keras.backend.backend() != "tensorflow":
        from framepred.data.batches import WindowBatches

        if cache not in (None, "memory"):
            raise FramepredError(
                f"data.cache={cache!r}: a cache file is tf.data's, for the TensorFlow "
                f"backend; on the {keras.backend.backend()} backend use data.cache=memory "
                "or null")
        workers = data.parallel_calls if data.parallel_calls > 0 else (
            source.parallel_reads or 4)
        return WindowBatches(source, length, batch_size, stride=data.stride, shuffle=shuffle,
                             seed=seed, repeat=repeat, drop_remainder=drop_remainder,
                             shard=shard, cache_in_memory=cache == "memory", workers=workers)
    from framepred.data.pipeline import DatasetWindows, window_dataset

    if shard != (0, 1):
        raise FramepredError("several processes need the JAX backend (KERAS_BACKEND=jax)")
    height, width = data.frame_size
    if cache not in (None, "memory"):
        # One cache file per split: tf.data would otherwise hand validation the
        # training windows cached under the same name.
        cache = str(Path(f"{cache}_{split}").expanduser())
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
    return DatasetWindows(window_dataset(
        source,
        length=length,
        frame_shape=(int(height), int(width), int(data.channels)),
        batch_size=batch_size,
        stride=data.stride,
        shuffle=shuffle,
        seed=seed,
        repeat=repeat,
        cache=cache,
        shuffle_buffer=data.shuffle_buffer,
        parallel_calls=data.parallel_calls,
        drop_remainder=drop_remainder,
    ))


@dataclass
class TrainingBatches:
    """What `fit` reads: the training and validation batches as (inputs, targets)
    pairs, and how an epoch is cut from them."""

    train: Any  # window batches (`window_batches`) of the training split
    train_pairs: Any
    val_pairs: Any
    steps_per_epoch: int
    # One endless stream cut into epochs by steps, rather than one pass an epoch.
    stream: bool
    # The training windows one epoch reads; None where the windows repeat
    # (trainer.steps_per_epoch).
    windows_per_epoch: int | None


def training_batches(data: Any, global_batch: int, *, form: str, seed: int,
                     steps_per_epoch: int | None, windows: int, normalization=None,
                     shard: tuple[int, int] = (0, 1),
                     drop_remainder: bool = False) -> TrainingBatches:
    """The training and validation batches of a run, for its model's `form`: the
    training split shuffled by `seed`, `windows` of it in one pass (`count_windows`).
    `steps_per_epoch` (trainer.steps_per_epoch) repeats the windows and cuts epochs
    by steps; `drop_remainder` leaves out a short last batch (`devices.Setup.sharded`)."""
    import keras

    repeat = steps_per_epoch is not None
    # The PyDataset pipeline is one endless stream cut into epochs by steps: which batch a
    # step reads then depends on the step alone, although Keras reads ahead across the
    # epoch's end, so a resumed run reads what an uninterrupted one would.
    stream = repeat or keras.backend.backend() != "tensorflow"
    if drop_remainder and not repeat:
        windows -= windows % global_batch
    batches = {"shard": shard, "drop_remainder": drop_remainder, "normalization": normalization}
    train = window_batches(data, "train", global_batch, shuffle=True, seed=seed, repeat=stream,
                           **batches)
    val = window_batches(data, "val", global_batch, **batches)
    return TrainingBatches(
        train=train,
        train_pairs=train.pairs(form, data.context_frames),
        val_pairs=val.pairs(form, data.context_frames),
        steps_per_epoch=steps_per_epoch or max(1, train.steps),
        stream=stream,
        windows_per_epoch=None if repeat else windows,
    )


def check_split_fills_batch(split: str, windows: int, global_batch: int,
                            per_device: int) -> None:
    """Refuses a split of fewer windows than one global batch where batches leave out
    a short last one: it would give no batch at all, and a pass over none waits
    forever."""
    if windows < global_batch:
        raise FramepredError(
            f"the {split} split has {windows} window(s), fewer than one global batch of "
            f"{global_batch} (trainer.batch_size={per_device} x "
            f"{global_batch // per_device} devices); batches split over devices leave "
            f"out a short last batch, so it would give none: give the {split} split at "
            f"least {global_batch} windows or lower trainer.batch_size")
