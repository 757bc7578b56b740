"""Sequence data: every source feeds the same [batch, time, H, W, C] pipeline.

`build_source(data_cfg, split)` picks the reader for `data.source`;
`window_dataset`/`training_pairs` turn it into tf.data batches.
"""

from __future__ import annotations

from typing import Any

from framepred.data.moving_digits import MovingDigits
from framepred.data.pipeline import split_window, training_pairs, window_dataset
from framepred.data.source import SequenceSource
from framepred.errors import FramepredError

SPLITS = ("train", "val", "test")

__all__ = [
    "SPLITS", "MovingDigits", "SequenceSource", "build_source", "split_window",
    "training_pairs", "window_dataset", "windows", "window_length",
]


def window_length(data: Any) -> int:
    return int(data.context_frames) + int(data.future_frames)


def _source_name(data: Any) -> str:
    return getattr(data.source, "value", data.source)


def build_source(data: Any, split: str) -> SequenceSource:
    """The sequences of one split ("train", "val" or "test") of `data.source`."""
    if split not in SPLITS:
        raise FramepredError(f"split={split!r} is not one of: {', '.join(SPLITS)}")
    name = _source_name(data)
    if name == "moving_digits":
        return MovingDigits(
            num_sequences=getattr(data, f"{split}_sequences"),
            frames=window_length(data),
            frame_size=tuple(data.frame_size),
            channels=data.channels,
            num_digits=data.num_digits,
            digit_size=tuple(data.digit_size),
            speed=tuple(data.speed),
            # Different seeds per split: validation never repeats a training sequence.
            seed=int(data.seed) + SPLITS.index(split),
        )
    raise FramepredError(f"data.source={name!r} is not available yet; use moving_digits")


def windows(data: Any, split: str, batch_size: int, shuffle: bool = False, seed: int = 0,
            repeat: bool = False, drop_remainder: bool = False):
    """tf.data of window batches [B, context+future, H, W, C] for one split."""
    source = build_source(data, split)
    height, width = data.frame_size
    return window_dataset(
        source,
        length=window_length(data),
        frame_shape=(int(height), int(width), int(data.channels)),
        batch_size=batch_size,
        stride=data.stride,
        shuffle=shuffle,
        seed=seed,
        repeat=repeat,
        cache=data.cache,
        shuffle_buffer=data.shuffle_buffer,
        parallel_calls=data.parallel_calls,
        drop_remainder=drop_remainder,
    )
