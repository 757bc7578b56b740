"""tf.data pipelines: windows of a source -> batches [B, T, H, W, C], then
(inputs, targets) pairs for the model form. The TensorFlow backend's input
pipeline; every other backend reads through `batches.py` (no TensorFlow)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from framepred.data.source import SequenceSource, split_window


def window_dataset(
    source: SequenceSource,
    length: int,
    frame_shape: tuple[int, int, int],
    batch_size: int,
    stride: int | None = None,
    shuffle: bool = False,
    seed: int = 0,
    repeat: bool = False,
    cache: str | None = None,
    shuffle_buffer: int = 512,
    parallel_calls: int = -1,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Batches of windows, float32 [B, length, H, W, C], read in parallel."""
    index = np.asarray(source.window_starts(length, stride or length), dtype=np.int64)  # [N, 2]
    if len(index) == 0:
        raise ValueError("the source yields no window")  # sources check this with context
    if parallel_calls < 0:
        parallel = source.parallel_reads or tf.data.AUTOTUNE
    else:
        parallel = parallel_calls

    def read(window):
        sequence, start = int(window[0]), int(window[1])
        return source.read(sequence, start, start + length).astype(np.float32, copy=False)

    def load(window):
        frames = tf.numpy_function(read, [window], tf.float32, stateful=False)
        frames.set_shape((length, *frame_shape))
        return frames

    dataset = tf.data.Dataset.from_tensor_slices(index)
    if cache is None and shuffle:
        # Shuffling the (sequence, start) pairs is free; shuffle frames only when cached.
        dataset = dataset.shuffle(len(index), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(load, num_parallel_calls=parallel, deterministic=True)
    if cache is not None:
        dataset = dataset.cache("" if cache == "memory" else cache)
        if shuffle:
            dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def training_pairs(windows: tf.data.Dataset, form: str, context_frames: int) -> tf.data.Dataset:
    return windows.map(
        lambda frames: split_window(frames, form, context_frames),
        num_parallel_calls=tf.data.AUTOTUNE,
    )


class DatasetWindows:
    """A tf.data of window batches with the interface `batches.WindowBatches` has, so
    train, evaluate and the callbacks read either pipeline the same way."""

    def __init__(self, dataset: tf.data.Dataset):
        self.dataset = dataset

    def __iter__(self):
        return iter(self.dataset)

    def __getattr__(self, name):  # the rest of tf.data's interface (take, cardinality...)
        return getattr(self.dataset, name)

    def pairs(self, form: str, context_frames: int) -> tf.data.Dataset:
        return training_pairs(self.dataset, form, context_frames)

    @property
    def steps(self) -> int:
        return int(self.dataset.cardinality())

    def numpy(self):
        return self.dataset.as_numpy_iterator()

    def first(self) -> np.ndarray:
        return next(iter(self.dataset.take(1).as_numpy_iterator()))
