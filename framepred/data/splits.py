"""Training, validation and test splits of a disk source, without leakage.

The rule (documented in docs/data.md, "Every source"):

- Whole sequences. When the source has at least one sequence per split asked for,
  sequences are dealt to the splits by a permutation drawn from `data.seed`:
  `round(n * data.test_fraction)` to test, `round(n * data.val_fraction)` to
  validation (at least one each when its fraction is above zero), the rest to
  training. Windows are cut only after the split, so no two splits share a frame.
- Time chunks. With fewer sequences than that (typically one long video), every
  sequence is cut in time into contiguous chunks instead: the first
  1 - val_fraction - test_fraction of its frames train, the next val_fraction
  validate, the last test_fraction test. A window never crosses a chunk boundary,
  so no frame is in two splits; neighbouring chunks still share the scene, which
  is the price of having one recording.
- `data.val_path` names a separate validation set: validation is all of it, and
  `path` is split into training and test only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from framepred.data.source import SequenceSource

log = logging.getLogger("framepred.data")


@dataclass(frozen=True)
class Span:
    """Frames [start, stop) of sequence `sequence` of a source."""

    sequence: int
    start: int
    stop: int


class SpanSource(SequenceSource):
    """The sequences of one split: whole sequences of `source`, or contiguous spans."""

    def __init__(self, source: SequenceSource, spans: list[Span], where: str = ""):
        self.source = source
        self.parallel_reads = source.parallel_reads
        self.spans = list(spans)
        self.where = where

    def __len__(self) -> int:
        return len(self.spans)

    def num_frames(self, index: int) -> int:
        span = self.spans[index]
        return span.stop - span.start

    def read(self, index: int, start: int = 0, stop: int | None = None):
        span = self.spans[index]
        stop = self.num_frames(index) if stop is None else stop
        return self.source.read(span.sequence, span.start + start, span.start + stop)

    def describe(self, index: int) -> str:
        span = self.spans[index]
        describe = getattr(self.source, "describe", str)
        return f"{describe(span.sequence)} frames {span.start}..{span.stop - 1}"


def split_counts(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """(validation, test) sequence counts of n sequences; leaves at least one for training."""
    n_val = max(1, round(n * val_fraction)) if val_fraction > 0 else 0
    n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
    while n - n_val - n_test < 1:  # rounding up can eat the training set
        if n_val >= n_test and n_val > 1:
            n_val -= 1
        elif n_test > 1:
            n_test -= 1
        else:
            break
    return n_val, n_test


# The sequence lengths and fractions whose split in time this process has announced.
_SAID_TIME_SPLIT: set[tuple] = set()


def split_spans(
    lengths: list[int], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[Span]]:
    """Spans of each split ("train", "val", "test") of sequences with `lengths` frames."""
    n = len(lengths)
    wanted = 1 + (val_fraction > 0) + (test_fraction > 0)
    if n >= wanted:
        n_val, n_test = split_counts(n, val_fraction, test_fraction)
        order = np.random.default_rng(seed).permutation(n)
        chosen = {
            "test": order[:n_test],
            "val": order[n_test:n_test + n_val],
            "train": order[n_test + n_val:],
        }
        return {
            split: [Span(int(i), 0, lengths[i]) for i in sorted(indices)]
            for split, indices in chosen.items()
        }
    said = (tuple(lengths), val_fraction, test_fraction)
    if said not in _SAID_TIME_SPLIT:  # every split's source comes here: say it once
        _SAID_TIME_SPLIT.add(said)
        log.info("%d sequence(s) for %d splits: splitting each sequence in time into "
                 "contiguous train | val | test chunks", n, wanted)
    spans: dict[str, list[Span]] = {"train": [], "val": [], "test": []}
    for i, length in enumerate(lengths):
        val_start = round(length * (1.0 - val_fraction - test_fraction))
        test_start = round(length * (1.0 - test_fraction))
        for split, start, stop in (("train", 0, val_start), ("val", val_start, test_start),
                                   ("test", test_start, length)):
            if stop > start:
                spans[split].append(Span(i, start, stop))
    return spans
