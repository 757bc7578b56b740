"""examples/: the library example runs as a user runs it, at a tiny size."""

from __future__ import annotations

import runpy
import sys

import numpy as np
import tensorflow as tf

from framepred.data import MovingDigits
from tests.helpers.cli import REPO
from tests.helpers.run_if import run_if


@run_if(backend="tensorflow")  # tf.image.ssim is the oracle of the printed baseline
def test_train_keras_example_trains_and_scores_its_forecast(monkeypatch, capsys):
    """In this interpreter (Keras is imported already): 8 sequences of 16x16 frames,
    one epoch, 2 context frames and 1 forecast (each frame more costs tracing time);
    the copy-last column it prints is tf.image.ssim's of the same validation frames."""
    argv = ["train_keras.py", "--size", "16", "--sequences", "8", "--epochs", "1",
            "--context", "2", "--future", "1"]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(REPO / "examples" / "train_keras.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "training on 8 sequences of 16x16 frames" in out
    assert "val_ssim" in out  # model.fit reported the framepred metrics
    rows = out[out.index("step  model SSIM"):].splitlines()[1:]
    table = {row.split()[0]: [float(v) for v in row.split()[1:]] for row in rows}
    assert list(table) == ["1", "mean"]
    assert all(-1.0 <= value <= 1.0 for values in table.values() for value in values)

    source = MovingDigits(4, 3, frame_size=(16, 16), digit_size=(4, 7), seed=1)
    val = np.stack([source.read(i) for i in range(len(source))])  # [4, 3, 16, 16, 1]
    expected = tf.image.ssim(val[:, 2], val[:, 1], max_val=1.0).numpy().mean()
    np.testing.assert_allclose(table["1"][1], expected, atol=1e-3)
