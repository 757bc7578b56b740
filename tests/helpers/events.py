"""TensorBoard's event files, read back with TensorBoard's own reader (the oracle)."""

from __future__ import annotations

from pathlib import Path


def accumulator(folder: Path, **guidance):
    """An `EventAccumulator` of `folder`, loaded, keeping every event of each kind."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"tensors": 0, "images": 0,
                                                          "scalars": 0, **guidance})
    events.Reload()
    return events


def scalars(events, tag: str) -> dict[int, float]:
    """{step: value} of a scalar tag: a tensor summary (tf.summary in TF2, framepred's
    SummaryWriter) or a plain one."""
    if tag in events.Tags().get("tensors", []):
        from tensorboard.util.tensor_util import make_ndarray

        return {e.step: float(make_ndarray(e.tensor_proto)) for e in events.Tensors(tag)}
    return {e.step: e.value for e in events.Scalars(tag)}


def plugin_name(events, tag: str) -> str:
    """The TensorBoard plugin a tag is drawn by (scalars, images, hparams, text)."""
    return events.SummaryMetadata(tag).plugin_data.plugin_name
