"""TensorBoard event files without TensorFlow: one folder, one writer.

Written on TensorBoard's own `EventFileWriter` (the one PyTorch's SummaryWriter
uses) and TensorBoard's summary protos, laid out as `tf.summary` lays them out
(tensor summaries with the scalars, images, text and hparams plugins' metadata),
so TensorBoard draws them as it draws `tf.summary`'s, on every Keras backend.
TensorBoard's writer uses TensorFlow's file system when TensorFlow is importable
(cloud paths as before) and its own stub otherwise.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.hparams import summary_v2 as hparams_summary
from tensorboard.plugins.image import metadata as image_metadata
from tensorboard.plugins.scalar.summary_v2 import scalar_pb
from tensorboard.plugins.text.summary_v2 import text_pb
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.util import tensor_util


class SummaryWriter:
    """Writes summaries into one TensorBoard run (a folder); the file is created now.

    Usable as a context manager, which closes it.
    """

    def __init__(self, log_dir: str | Path):
        # No ".v2" suffix (tf.summary's): a TensorFlow writer in the same folder, made
        # in the same second, would otherwise get this file's name and overwrite it.
        self._events = EventFileWriter(str(log_dir))

    def scalar(self, tag: str, value, step: int, description: str | None = None) -> None:
        """A float32 scalar, as `tf.summary.scalar` writes it (Scalars tab)."""
        self._write(scalar_pb(tag, np.asarray(value), description=description), step)

    def image(self, tag: str, picture: np.ndarray, step: int,
              description: str | None = None) -> None:
        """One uint8 picture `[H, W]` or `[H, W, C]` (C = 1 ... 4) as a PNG, laid out as
        `tf.summary.image` lays it out: [width, height, png] (Images tab)."""
        from PIL import Image

        picture = np.asarray(picture)
        if picture.dtype != np.uint8 or picture.ndim not in (2, 3):
            raise ValueError(f"expected a uint8 [H, W] or [H, W, C] picture, got "
                             f"{picture.dtype} {picture.shape}")
        png = io.BytesIO()
        Image.fromarray(picture[..., 0] if picture.shape[2:] == (1,) else picture).save(
            png, format="PNG")
        height, width = picture.shape[:2]
        tensor = tensor_util.make_tensor_proto(
            np.array([str(width).encode(), str(height).encode(), png.getvalue()],
                     dtype=np.object_))
        summary = summary_pb2.Summary()
        summary.value.add(tag=tag, tensor=tensor, metadata=image_metadata.create_summary_metadata(
            display_name=None, description=description))
        self._write(summary, step)

    def text(self, tag: str, text: str, step: int, description: str | None = None) -> None:
        """A (Markdown) string, as `tf.summary.text` writes it (Text tab)."""
        self._write(text_pb(tag, text, description=description), step)

    def hparams(self, hparams: Mapping[str, bool | int | float | str], trial_id: str) -> None:
        """One HParams session: this run's hyperparameter values (HParams tab)."""
        self._write(hparams_summary.hparams_pb(hparams, trial_id=trial_id), 0)

    def hparams_config(self, hparams: Iterable[str],
                       metrics: Iterable[tuple[str, str, str]]) -> None:
        """The HParams experiment: hyperparameter names (no domains) and the metrics it
        compares, each (tag, run subfolder, display name)."""
        self._write(hparams_summary.hparams_config_pb(
            hparams=[hparams_summary.HParam(name) for name in hparams],
            metrics=[hparams_summary.Metric(tag, group=group, display_name=name)
                     for tag, group, name in metrics]), 0)

    def _write(self, summary: summary_pb2.Summary, step: int) -> None:
        self._events.add_event(event_pb2.Event(wall_time=time.time(), step=int(step),
                                               summary=summary))

    def flush(self) -> None:
        self._events.flush()

    def close(self) -> None:
        self._events.close()

    def __enter__(self) -> SummaryWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
