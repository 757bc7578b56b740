"""Fields in physical units: the scaling the model trains on, and its inverse.

`data.normalize` (after `data.clip=[lo, hi]`, in data units):

- `none`: frames are used as read; sources of fields in physical units must then
  already lie in [0, 1] (checked on a sample; the error names `data.normalize`).
- `minmax`: `(x - min) / (max - min)` per channel, into [0, 1], the range the default
  sigmoid head forecasts.
- `zscore`: `(x - mean) / std` per channel; unbounded, so it needs
  `model.output_activation=linear`.
- `log1p`: `log1p(x) / log1p(max)` per channel, into [0, 1]; for rain rates and other
  non-negative, heavy-tailed fields, where a few mm/h carry as much weight as 50.

The statistics come from the training split only, in one streaming pass: each
sequence is read a slab of `SLAB_FRAMES` frames at a time, so memory stays bounded by
one slab whatever the size of the file. They are logged and stored as JSON
(`<run>/normalization.json`, and inside every checkpoint the run writes), so `evaluate` and
`predict` scale their inputs the same way and report in data units again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from framepred.data.source import SequenceSource
from framepred.errors import FramepredError

log = logging.getLogger("framepred.data")

SLAB_FRAMES = 32  # frames read at once by the statistics pass
RANGE_SAMPLE = 8  # sequences whose first window is checked to lie in [0, 1]


@dataclass(frozen=True)
class DataStatistics:
    """A fitted `data.normalize`: per-channel statistics in data units."""

    kind: str = "none"
    clip: list[float] | None = None
    minimum: list[float] = field(default_factory=list)
    maximum: list[float] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    # The unit of the data's values ("mm/h"), where the source names one: tables and
    # thresholds say it after the run's folder is gone. None: not known.
    units: str | None = None

    @property
    def active(self) -> bool:
        """Whether frames change at all: a kind other than none, or a clip."""
        return self.kind != "none" or self.clip is not None

    def forward(self, frames: np.ndarray) -> np.ndarray:
        """Data units -> what the model sees; [..., C] float32."""
        x = np.asarray(frames, dtype=np.float32)
        if self.clip is not None:
            x = np.clip(x, self.clip[0], self.clip[1])
        if self.kind == "minmax":
            low, high = np.float32(self.minimum), np.float32(self.maximum)
            return (x - low) / np.maximum(high - low, np.float32(1e-12))
        if self.kind == "zscore":
            return (x - np.float32(self.mean)) / np.maximum(np.float32(self.std),
                                                             np.float32(1e-12))
        if self.kind == "log1p":
            return np.log1p(np.maximum(x, 0.0)) / np.maximum(
                np.log1p(np.float32(self.maximum)), np.float32(1e-12))
        return x

    def inverse(self, values: np.ndarray) -> np.ndarray:
        """What the model forecasts -> data units; [..., C] float32."""
        y = np.asarray(values, dtype=np.float32)
        if self.kind == "minmax":
            low, high = np.float32(self.minimum), np.float32(self.maximum)
            return y * (high - low) + low
        if self.kind == "zscore":
            return y * np.float32(self.std) + np.float32(self.mean)
        if self.kind == "log1p":
            return np.expm1(y * np.log1p(np.float32(self.maximum)))
        return y

    def to_json(self) -> str:
        # Strict JSON: statistics are finite (fit refuses a split without values), and
        # a non-finite one would be a bug, not a `NaN` for other readers to choke on.
        return json.dumps(asdict(self), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = "normalization.json") -> DataStatistics:
        try:
            return cls(**json.loads(text))
        except (TypeError, ValueError) as error:
            raise FramepredError(f"{where} cannot be read as framepred's normalization: "
                                 f"{error}") from None

    def check_channels(self, channels: int, where: str) -> None:
        """FramepredError unless the statistics are for `channels` channels."""
        if self.kind != "none" and len(self.maximum) != int(channels):
            raise FramepredError(
                f"{where} holds statistics for {len(self.maximum)} channel(s), but the "
                f"checkpoint takes {channels}; use the normalization.json of the run that "
                "trained it")

    def wrap(self, source: SequenceSource) -> SequenceSource:
        """`source` whose frames come out normalized."""
        return NormalizedSource(source, self) if self.active else source


class NormalizedSource(SequenceSource):
    """A source read through a `DataStatistics`."""

    def __init__(self, source: SequenceSource, normalization: DataStatistics):
        self.source = source
        self.normalization = normalization
        self.parallel_reads = source.parallel_reads

    def __len__(self) -> int:
        return len(self.source)

    def num_frames(self, index: int) -> int:
        return self.source.num_frames(index)

    def window_starts(self, length: int, stride: int) -> list[tuple[int, int]]:
        return self.source.window_starts(length, stride)  # a source may leave windows out

    def read(self, index: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        return self.normalization.forward(self.source.read(index, start, stop))


def fit(data: Any, source: SequenceSource, units: str | None = None) -> DataStatistics:
    """The `data.normalize` statistics of the training split `source`, in one pass;
    `units`: the unit its values are in, where known."""
    kind = str(data.normalize)
    clip = [float(v) for v in data.clip] if data.clip is not None else None
    if kind == "none":
        return DataStatistics(clip=clip, units=units)
    channels = int(data.channels)
    low = np.full(channels, np.inf)
    high = np.full(channels, -np.inf)
    total, squares, count = np.zeros(channels), np.zeros(channels), 0
    for index in range(len(source)):
        frames = source.num_frames(index)
        for start in range(0, frames, SLAB_FRAMES):
            # Never past the sequence's end: a split's sequence may be a span of a longer
            # one, whose next frames belong to another split.
            stop = min(start + SLAB_FRAMES, frames)
            slab = np.asarray(source.read(index, start, stop), np.float64)
            if clip is not None:
                slab = np.clip(slab, clip[0], clip[1])
            values = slab.reshape(-1, channels)  # [T*H*W, C]
            values = values[np.isfinite(values).all(axis=1)]
            if not len(values):
                continue
            low, high = np.minimum(low, values.min(0)), np.maximum(high, values.max(0))
            total += values.sum(0)
            squares += np.square(values).sum(0)
            count += len(values)
    if count == 0:
        raise FramepredError("data.normalize: the training split holds no finite value to "
                             "compute statistics from")
    if kind == "log1p" and low.min() < 0:
        raise FramepredError(
            f"data.normalize=log1p needs values >= 0, but the training split reaches "
            f"{low.min():g}; set data.clip=[0, HIGH] or data.normalize=minmax or zscore")
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - np.square(mean), 0.0))
    fitted = DataStatistics(kind, clip, low.tolist(), high.tolist(), mean.tolist(), std.tolist(),
                           units)
    log.info("data.normalize=%s from the training split (%d values): min %s, max %s, "
             "mean %s, std %s", kind, count, _fmt(low), _fmt(high), _fmt(mean), _fmt(std))
    return fitted


def check_unit_range(data: Any, source: SequenceSource, length: int) -> None:
    """With `data.normalize=none`, fields must lie in [0, 1]: the first window of a
    few sequences is checked, so the error comes before training starts."""
    for index in range(min(len(source), RANGE_SAMPLE)):
        frames = source.read(index, 0, min(length, source.num_frames(index)))
        finite = frames[np.isfinite(frames)]
        if finite.size and (finite.min() < 0.0 or finite.max() > 1.0):
            raise FramepredError(
                f"data={data.source} holds values from {finite.min():g} to {finite.max():g} "
                "(data units), outside [0, 1] with data.normalize=none; set "
                "data.normalize=minmax (or log1p for rain rates, zscore with "
                "model.output_activation=linear)")


def _fmt(values) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"
