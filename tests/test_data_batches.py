"""The pipeline without TensorFlow (`data.batches.WindowBatches`, a PyDataset) reads
what the tf.data pipeline reads: the same windows of the same sources, in the same
order unshuffled; shuffled, every window once per pass, in an order fixed by the seed
and the pass; sharded over processes, slices that together make the global batch."""

from __future__ import annotations

import numpy as np
import pytest

from framepred import data
from framepred.data.batches import WindowBatches
from framepred.data.pipeline import window_dataset
from tests.helpers.files import write_clips

LENGTH = 4


@pytest.fixture(params=["moving_digits", "npy", "frames"])
def source(request, compose_train, tmp_path):
    overrides = ["debug=fast", "data.context_frames=2", "data.future_frames=2"]
    if request.param == "npy":
        clips = np.random.default_rng(0).uniform(size=(6, 9, 16, 16, 1)).astype(np.float32)
        np.save(tmp_path / "clips.npy", clips)
        overrides += ["data=npy", f"data.path={tmp_path / 'clips.npy'}", "data.stride=2"]
    elif request.param == "frames":
        overrides += ["data=frames", f"data.path={write_clips(tmp_path / 'clips')}",
                      "data.val_fraction=0.25"]
    cfg = compose_train(overrides)
    return data.build_source(cfg.data, "train"), cfg.data.stride or LENGTH


def test_same_windows_as_tf_data_in_order(source):
    source, stride = source
    frame_shape = source.read(0, 0, 1).shape[1:]
    batches = WindowBatches(source, LENGTH, batch_size=3, stride=stride)
    reference = window_dataset(source, LENGTH, frame_shape, batch_size=3, stride=stride)
    ours, theirs = list(batches.numpy()), list(reference.as_numpy_iterator())
    assert [b.shape for b in ours] == [b.shape for b in theirs]
    for mine, tf_batch in zip(ours, theirs):
        np.testing.assert_array_equal(mine, tf_batch)
    assert len(batches) == len(theirs) == batches.steps


def test_shuffled_passes_and_shards(source):
    source, stride = source
    count = len(source.window_starts(LENGTH, stride))
    whole = WindowBatches(source, LENGTH, batch_size=2, stride=stride, shuffle=True, seed=3,
                          repeat=True, drop_remainder=True)
    per_pass = count // 2
    first, second = ([whole.read_batch(i) for i in range(k * per_pass, (k + 1) * per_pass)]
                     for k in (0, 1))
    in_order = np.concatenate(list(WindowBatches(source, LENGTH, 1, stride=stride).numpy()))
    for one_pass in (first, second):  # each window at most once per pass, none made up
        frames = np.concatenate(one_pass)
        matches = [int(np.flatnonzero((in_order == w).all(axis=(1, 2, 3, 4)))[0])
                   for w in frames]
        assert len(set(matches)) == len(matches)
    if count >= 4:
        assert not all(np.array_equal(a, b) for a, b in zip(first, second))
    again = WindowBatches(source, LENGTH, batch_size=2, stride=stride, shuffle=True, seed=3,
                          repeat=True, drop_remainder=True)
    np.testing.assert_array_equal(again.read_batch(per_pass), second[0])  # seed + pass
    # Two processes: each reads its half; together, the one process's batch.
    halves = [WindowBatches(source, LENGTH, batch_size=2, stride=stride, shuffle=True, seed=3,
                            repeat=True, drop_remainder=True, shard=(index, 2)).read_batch(1)
              for index in (0, 1)]
    np.testing.assert_array_equal(np.concatenate(halves), whole.read_batch(1))
    # A resumed stream continues where an uninterrupted one is.
    resumed = WindowBatches(source, LENGTH, batch_size=2, stride=stride, shuffle=True, seed=3,
                            repeat=True, drop_remainder=True)
    resumed.resume_at(epoch=1, steps_per_epoch=per_pass)
    np.testing.assert_array_equal(resumed.read_batch(0), second[0])
