"""Window batches without TensorFlow: a `keras.utils.PyDataset` over a source.

The input pipeline of every backend but TensorFlow's (`window_batches()` in
`framepred.data` picks it), so a run trains on a JAX machine with no TensorFlow
installed. It cuts the same windows as the tf.data pipeline (`pipeline.py`):
the same (sequence, start) index of the same source, the same splits, batches in
index order unless shuffled. Shuffling is a permutation of the whole index per pass,
drawn from (seed, pass), so every process of a multi-host job draws the same order
and takes its own slice of each global batch (`shard`): together the processes
read exactly the global batch one process would.

Reads overlap training through PyDataset's worker threads (`workers`): sources
read with numpy and Pillow, which release the GIL for the heavy part.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import keras
import numpy as np

from framepred.data.source import SequenceSource, split_window


class WindowBatches(keras.utils.PyDataset):
    """Batches float32 `[B, length, H, W, C]` of a source's windows; with `form`,
    (inputs, targets) pairs of them as the model form trains on (`split_window`).

    Args:
        source: The split's sequences.
        length: Frames per window.
        batch_size: The global batch: windows per step over every process.
        stride: Frames between window starts (default: `length`).
        shuffle, seed: A new permutation of the windows every pass, from (seed, pass).
        repeat: Endless batches (the pass wraps around), for `trainer.steps_per_epoch`.
        drop_remainder: Leave out a last batch shorter than `batch_size` (a batch
            sharded over devices must divide evenly).
        shard: (process index, process count): this process reads its contiguous
            slice of each global batch; `batch_size` must divide by the count.
        cache_in_memory: Keep every window read, for sources slow to decode.
        workers: Threads reading batches ahead of training.
    """

    def __init__(self, source: SequenceSource, length: int, batch_size: int,
                 stride: int | None = None, shuffle: bool = False, seed: int = 0,
                 repeat: bool = False, drop_remainder: bool = False,
                 shard: tuple[int, int] = (0, 1), cache_in_memory: bool = False,
                 workers: int = 1, form: str | None = None, context_frames: int = 0):
        super().__init__(workers=max(1, int(workers)), use_multiprocessing=False)
        self.source, self.length = source, int(length)
        self.index = np.asarray(source.window_starts(self.length, stride or self.length),
                                dtype=np.int64).reshape(-1, 2)  # [N, 2]
        if len(self.index) == 0:
            raise ValueError("the source yields no window")  # sources check this with context
        self.batch_size, self.shuffle, self.seed = int(batch_size), shuffle, int(seed)
        self.repeat, self.drop_remainder = repeat, drop_remainder
        self.process, self.processes = int(shard[0]), int(shard[1])
        if self.processes > 1 and (self.batch_size % self.processes or not drop_remainder):
            # Every process must read as many windows per step as every other.
            raise ValueError(f"a batch of {self.batch_size} split over {self.processes} "
                             "processes must divide evenly and drop a short last batch")
        self.form, self.context_frames = form, int(context_frames)
        self._cache: dict[tuple[int, int], np.ndarray] | None = {} if cache_in_memory else None
        self._orders: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()
        self._passes = 0  # passes completed (fit's epochs), for a new order each
        self._offset = 0  # batches an endless stream had given before a resume

    def on_epoch_end(self):
        if not self.repeat:
            self._passes += 1

    def resume_at(self, epoch: int, steps_per_epoch: int) -> None:
        """Before `fit` resumes an endless stream at `epoch`: continue it where an
        uninterrupted run would be, `epoch` x `steps_per_epoch` batches in. (Keras
        reads ahead before any callback runs, so this cannot wait for the restore.)"""
        self._offset = int(epoch) * int(steps_per_epoch)

    def pairs(self, form: str, context_frames: int) -> WindowBatches:
        """The same batches as (inputs, targets) for `form` (what `fit` takes)."""
        paired = object.__new__(WindowBatches)
        paired.__dict__.update(self.__dict__)
        paired.form, paired.context_frames = form, int(context_frames)
        return paired

    # --- PyDataset -------------------------------------------------------------------

    @property
    def batches_per_pass(self) -> int:
        full, rest = divmod(len(self.index), self.batch_size)
        return full + (1 if rest and not self.drop_remainder else 0)

    @property
    def num_batches(self) -> int | None:
        return None if self.repeat else self.batches_per_pass

    def __len__(self) -> int:
        return self.batches_per_pass

    def __getitem__(self, batch: int):
        frames = self.read_batch(int(batch))
        if self.form is None:
            return frames
        return split_window(frames, self.form, self.context_frames)

    # --- reading ---------------------------------------------------------------------

    def read_batch(self, batch: int, whole: bool = False) -> np.ndarray:
        """Batch `batch` (counting on across passes when repeating): this process's
        slice of it (`whole`: every process's), float32 `[b, length, H, W, C]`."""
        per_pass = self.batches_per_pass
        passes, position = divmod(batch + self._offset, per_pass)
        if passes and not self.repeat:
            raise IndexError(f"batch {batch} of a pass of {per_pass}")
        order = self._order(passes if self.repeat else self._passes)
        first = position * self.batch_size
        chosen = order[first: first + self.batch_size]
        if self.processes > 1 and not whole:
            size = len(chosen) // self.processes
            chosen = chosen[self.process * size: (self.process + 1) * size]
        return np.stack([self._window(*self.index[i]) for i in chosen])

    def _order(self, passes: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.index))
        with self._lock:
            if passes not in self._orders:
                rng = np.random.default_rng([self.seed, passes])
                self._orders = {passes: rng.permutation(len(self.index))}  # keep one pass
            return self._orders[passes]

    def _window(self, sequence: int, start: int) -> np.ndarray:
        key = (int(sequence), int(start))
        if self._cache is not None and key in self._cache:
            return self._cache[key]
        frames = self.source.read(key[0], key[1], key[1] + self.length)
        frames = np.asarray(frames, dtype=np.float32)
        if self._cache is not None:
            self._cache[key] = frames
        return frames

    # --- the interface train, evaluate and the callbacks use -----------------------------

    @property
    def steps(self) -> int:
        """Batches in one pass."""
        return self.batches_per_pass

    def numpy(self) -> Iterator[np.ndarray]:
        """One pass of window batches, as numpy (the next pass's order when shuffled)."""
        for batch in range(self.batches_per_pass):
            yield self.read_batch(batch)
        self.on_epoch_end()

    def first(self) -> np.ndarray:
        """The first batch of the current pass, whole: the same on every process."""
        return self.read_batch(0, whole=True)
