"""The one interface every data source implements.

A source is an indexable collection of sequences. `read(i, start, stop)` returns
frames `start..stop-1` of sequence `i` as float32 [T, H, W, C] in [0, 1], already
at the configured frame size and channel count. The pipeline cuts windows from
sequences and never needs to know where the frames came from.
"""

from __future__ import annotations

import numpy as np


class SequenceSource:
    """Base class: a list of sequences, each read lazily."""

    #: Windows tf.data reads at once when data.parallel_calls=-1 (auto); None means
    #: tf.data.AUTOTUNE. Readers that spend their time in many small Python calls
    #: (Pillow, one call per frame) set 1: under the GIL, parallel calls contend and
    #: run slower than one (64x64 PNG frames on our 2-core CPU: 11.2k frames/s with
    #: one call, 7.3k with AUTOTUNE). Reading still overlaps training via prefetch.
    parallel_reads: int | None = None
    #: The unit of the values of a field in physical units, where the source knows it
    #: ("mm/h"); None for pictures and for files that name none.
    units: str | None = None

    def __len__(self) -> int:
        raise NotImplementedError

    def num_frames(self, index: int) -> int:
        """Frames in sequence `index`."""
        raise NotImplementedError

    def read(self, index: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Frames [start, stop) of sequence `index`: float32 [T, H, W, C] in [0, 1]."""
        raise NotImplementedError

    def window_starts(self, length: int, stride: int) -> list[tuple[int, int]]:
        """(sequence, first frame) of every window of `length` frames, `stride` apart."""
        return [
            (index, start)
            for index in range(len(self))
            for start in range(0, self.num_frames(index) - length + 1, stride)
        ]


def split_window(frames, form: str, context_frames: int):
    """(inputs, targets) of a window batch for the model form.

    next_frame: inputs are frames 0..T-2, targets frames 1..T-1 (teacher forcing).
    encoder_forecaster: inputs are the context, targets the future.
    """
    if form == "next_frame":
        return frames[:, :-1], frames[:, 1:]
    return frames[:, :context_frames], frames[:, context_frames:]
