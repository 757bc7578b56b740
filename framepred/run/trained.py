"""Using a trained checkpoint: load it, find its run's config, check inputs fit it.

Shared by `evaluate` and `predict`. Every checkpoint a run writes carries the run's
composed config inside (`framepred.callbacks.checkpoints.embed_run_config`), which
says what data it was trained on, so neither command asks the user to repeat frame
size, channels or context length, even for a checkpoint copied out of its run folder.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from framepred.config import DataConfig
from framepred.errors import FramepredError
from framepred.run.folder import RUN_MEMBERS, RunPaths


def load_checkpoint(path: str | Path):
    """The Keras model saved at `path`; FramepredError if it is missing or not one."""
    import keras

    import framepred  # noqa: F401  (registers our layers, losses and metrics)

    path = Path(str(path)).expanduser()
    if not path.is_file():
        raise FramepredError(
            f"checkpoint={path} does not exist; give a .keras file, e.g. "
            "checkpoint=outputs/<name>/<run>/checkpoints/best.keras"
        )
    if path.suffix != ".keras":
        raise FramepredError(
            f"checkpoint={path} is not a .keras file; give one written by training "
            "(<run>/checkpoints/best.keras or last.keras)"
        )
    try:
        return keras.models.load_model(path, compile=False)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise FramepredError(
            f"checkpoint={path} cannot be read as a Keras model ({type(error).__name__}: "
            f"{error}); give a .keras file written by training"
        ) from None


def run_config(checkpoint: str | Path) -> DictConfig:
    """The composed training config of the run `checkpoint` came from: the copy saved
    inside the checkpoint, or (checkpoints written before it was) `<run>/config.yaml`."""
    checkpoint = Path(str(checkpoint)).expanduser()
    text = _run_file(checkpoint, "config.yaml")
    if text is not None:
        return OmegaConf.create(text)
    path = RunPaths.of_checkpoint(checkpoint).config
    if not path.is_file():
        raise FramepredError(
            f"checkpoint={checkpoint} holds no run config and none is at {path}; give a "
            "checkpoint that training wrote (it carries its config), or keep an older one "
            "in its run folder (<run>/checkpoints/*.keras next to <run>/config.yaml)"
        )
    return OmegaConf.load(path)


def data_config(checkpoint: str | Path, overrides: Any = None) -> DictConfig:
    """The run's data config with the keys set in `overrides` replaced, typed and
    checked as training checks it (`config.validate_data`)."""
    from framepred.config import validate_data

    data = OmegaConf.merge(OmegaConf.structured(DataConfig), run_config(checkpoint).data)
    if overrides is not None:
        changes = {key: value for key, value in OmegaConf.to_container(overrides).items()
                   if value is not None}
        data = OmegaConf.merge(data, changes)
    validate_data(data)
    return data


def expected_frames(model) -> dict:
    """What a model takes: frame_size [H, W], channels, and context_frames (None for
    next_frame models, which take any number)."""
    from framepred.models import model_form

    _, time, height, width, channels = model.inputs[0].shape
    return {
        "frame_size": [int(height), int(width)],
        "channels": int(channels),
        "context_frames": None if model_form(model) == "next_frame" else int(time),
    }


def check_frames(model, frame_size, channels: int, context_frames: int, where: str) -> None:
    """FramepredError, naming `where` the frames come from, unless frames of this
    size, channel count and context length fit `model`."""
    expected = expected_frames(model)
    frame_size = [int(s) for s in frame_size]
    names = {1: "gray", 3: "RGB"}
    if frame_size != expected["frame_size"]:
        raise FramepredError(
            f"{where} has frames of {frame_size[0]}x{frame_size[1]} (height x width), but the "
            f"checkpoint was trained on {expected['frame_size'][0]}x{expected['frame_size'][1]}; "
            "give frames of that size"
        )
    if int(channels) != expected["channels"]:
        raise FramepredError(
            f"{where} has {channels} channel(s) ({names.get(int(channels), '?')}), but the "
            f"checkpoint takes {expected['channels']} "
            f"({names.get(expected['channels'], '?')})"
        )
    needed = expected["context_frames"] or 1
    if context_frames < needed or (expected["context_frames"] and context_frames != needed):
        raise FramepredError(
            f"{where} gives {context_frames} context frame(s), but the checkpoint "
            f"(an encoder_forecaster) reads exactly {needed}; give {needed} context frames "
            f"(data.context_frames={needed})"
            if expected["context_frames"] else
            f"{where} gives {context_frames} context frame(s); at least 1 is needed"
        )


def _run_file(checkpoint: Path, name: str) -> str | None:
    """A run file carried inside the checkpoint (`RUN_MEMBERS`), or None."""
    try:
        with zipfile.ZipFile(checkpoint) as archive:
            if RUN_MEMBERS[name] in archive.namelist():
                return archive.read(RUN_MEMBERS[name]).decode()
    except (OSError, zipfile.BadZipFile):
        pass  # load_checkpoint names a file that is no checkpoint
    return None


def normalization(checkpoint: str | Path, channels: int):
    """The `data.normalize` statistics the checkpoint's run trained with: carried in the
    checkpoint, else `<run>/normalization.json`; none for runs that did not normalize."""
    from framepred.data.normalize import DataStatistics

    checkpoint = Path(str(checkpoint)).expanduser()
    text = _run_file(checkpoint, "normalization.json")
    where = f"checkpoint={checkpoint}"
    if text is None:
        path = RunPaths.of_checkpoint(checkpoint).normalization
        text, where = (path.read_text(), str(path)) if path.is_file() else (None, where)
    if text is None:
        if str(run_config(checkpoint).data.get("normalize", "none")) != "none":
            raise FramepredError(
                f"{where} was trained with data.normalize but carries no normalization.json "
                "and none is in its run folder; keep the checkpoint in its run folder")
        return DataStatistics()
    fitted = DataStatistics.from_json(text, where)
    fitted.check_channels(channels, where)
    return fitted
