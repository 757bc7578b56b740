"""The user's own clips for `predict`, read as training reads its data.

`read_clips(path, data)` takes what training takes: a folder of frames (one clip), a
folder of sequence folders (one clip each), an animated image or video file, a folder
of them, or a `.npy` / `.npz` array of one sequence ([T, H, W] or [T, H, W, C]) or of
several (as `data.layout` says, `auto` guessing as training does). Each clip goes
through the run's own `FrameFormat`: resized to `data.frame_size` with
`data.interpolation` (unless `data.resize=false`), converted to `data.channels` (gray
to RGB and back, for pictures only: an array read with `data.normalize` set, or of 2
channels, must hold `data.channels` of them) and scaled to float32 in [0, 1], so a
clip that training accepted is one `predict` accepts, and one it refused is refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from framepred.data.files import IMAGE_SUFFIXES, BadFiles
from framepred.data.formats import FrameFormat
from framepred.data.registry import SOURCES, source_kind
from framepred.data.videos import FFMPEG_SUFFIXES, PILLOW_SUFFIXES
from framepred.errors import FramepredError

log = logging.getLogger("framepred.data")

ARRAY_SUFFIXES = (".npy", ".npz")


@dataclass(frozen=True)
class Clip:
    name: str  # names the clip's output folder when there are several
    frames: np.ndarray  # float32 [T, H, W, C] in [0, 1], at the run's format
    # What the input file holds: "pictures" (image files, animations, video), "fields"
    # (HDF5, netCDF: values in physical units), or "array" (.npy, read as the run reads).
    holds: str = "array"


def warn_if_other_kind(clips: list[Clip], data: Any, units: str | None, where: str) -> None:
    """One warning where pictures go into a model of fields in physical units, or
    fields into a model of pictures: the forecast runs, but its numbers mean nothing
    (colours read as mm/h, or mm/h drawn as colours)."""
    holds = {clip.holds for clip in clips}
    fields = source_kind(str(data.source)).data_units or str(data.normalize) != "none"
    trained_on = (f"data={data.source}, data.normalize={data.normalize}" +
                  (f", in {units}" if units else ""))
    if fields and "pictures" in holds:
        log.warning("%s holds pictures, but the checkpoint was trained on fields in physical "
                    "units (%s): colours are read as [0, 1] and forecast.npy is not in those "
                    "units; give a clip of the run's kind (.npy, .h5 or .nc)", where, trained_on)
    elif not fields and "fields" in holds:
        log.warning("%s holds a field in physical units, but the checkpoint was trained on "
                    "pictures (%s): the values are scaled as colours; give frames, an "
                    "animation or a video", where, trained_on)


# input=split:<name>: the sequences of one split of the run's own data, as training reads
# them. A built-in source (Moving Digits, Rain Cells) has no file to give, and this is
# what the ready-to-paste predict command at the end of a run names.
SPLIT_INPUT = "split:"


def read_clips(path: str | Path, data: Any, sequence: int | None = None) -> list[Clip]:
    """Every clip at `path`, in the run's frame format (`data`: its data config), or
    only clip `sequence` (0-based; `predict.sequence`): a source of several sequences
    then reads that one alone."""
    from framepred.data.arrays import split_member

    given = str(path)
    if given.startswith(SPLIT_INPUT):
        return _split_clips(given[len(SPLIT_INPUT):], data, sequence)
    path = Path(given).expanduser()
    file_name = Path(split_member(str(path))[0])
    if not file_name.exists():
        raise FramepredError(
            f"input={path} does not exist; give a folder of frames (or of sequence "
            "folders), an animated image, a video or a .npy file")
    frame_format = FrameFormat.from_config(data)
    try:
        if file_name.suffix.lower() in ARRAY_SUFFIXES:
            return _array_clips(path, data, frame_format, sequence, given)
        field = _field_kind(path, str(data.source))
        if field is not None:
            return _field_clips(path, data, field, sequence, given)
        source = _file_source(path, frame_format)
    except FramepredError as error:
        # The training sources name their key, data.path; here the user gave input=.
        raise FramepredError(str(error).replace("data.path=", "input=")) from None
    return _clips(source, _clip_names(source, path.stem), "pictures", sequence, given)


def _chosen(sequence: int, count: int, given: str) -> int:
    """`sequence`, where input `given` holds that many clips."""
    if sequence >= count:
        raise FramepredError(f"predict.sequence={sequence}, but input={given} holds {count} "
                             f"clip(s) (0 to {count - 1})")
    return sequence


def _field_kind(path: Path, run_source: str) -> str | None:
    """The field source (hdf5, netcdf, ...) whose files `path` holds, or None: the run's
    own source where its suffixes fit, else the first source of the registry they fit."""
    if path.is_dir():
        files = [p for p in path.iterdir() if p.is_file()]
        suffixes = {p.suffix.lower() for p in files}
    else:
        files, suffixes = [path], {path.suffix.lower()}
    fitting = [name for name, kind in SOURCES.items()
               if kind.field_key and files and suffixes <= set(kind.suffixes)
               and (path.is_file() or kind.folders)]
    if run_source in fitting:
        return run_source
    return fitting[0] if fitting else None


def _field_clips(path: Path, data: Any, kind: str, sequence: int | None,
                 given: str) -> list[Clip]:
    """HDF5 / netCDF input, read as the training source of that kind reads it (the
    run's data.dataset or data.variable, or the ones given to predict)."""
    from omegaconf import OmegaConf

    from framepred.data import read_whole

    # The run's data.layout describes its own files; for another kind, guess (`auto`).
    layout = data.layout if data.source == kind else "auto"
    source = read_whole(OmegaConf.merge(data, {"source": kind, "layout": layout}), str(path),
                        "input")
    return _clips(source, _clip_names(source, path.stem), "fields", sequence, given)


def _file_source(path: Path, frame_format: FrameFormat):
    """The training source for image files (FrameFolders) or animations (VideoFiles)."""
    from framepred.data.folders import FrameFolders
    from framepred.data.videos import VideoFiles

    bad_files = BadFiles("error")
    animations = PILLOW_SUFFIXES + FFMPEG_SUFFIXES
    if path.is_dir():
        entries = list(path.iterdir())
        has_images = any(p.suffix.lower() in IMAGE_SUFFIXES for p in entries if p.is_file())
        has_animations = any(p.suffix.lower() in animations for p in entries if p.is_file())
        if has_animations and not has_images and not any(p.is_dir() for p in entries):
            return VideoFiles(path, frame_format, bad_files)
        return FrameFolders(path, frame_format, bad_files)
    if path.suffix.lower() in animations:
        return VideoFiles(path, frame_format, bad_files)
    raise FramepredError(
        f"input={path} has an unknown type {path.suffix!r}; give a folder of frames, an "
        f"animated image ({', '.join(PILLOW_SUFFIXES)}), a video "
        f"({', '.join(FFMPEG_SUFFIXES)}) or a .npy array")


def _split_clips(split: str, data: Any, sequence: int | None) -> list[Clip]:
    """The sequences of `split` of the run's data config, each a clip named by its index."""
    from framepred.data import SPLITS, build_source

    if split not in SPLITS:
        raise FramepredError(f"input={SPLIT_INPUT}{split} names no split; use "
                             + ", ".join(f"input={SPLIT_INPUT}{name}" for name in SPLITS))
    source = build_source(data, split)
    names = [f"{split}_{index:03d}" for index in range(len(source))]
    return _clips(source, names, "array", sequence, f"{SPLIT_INPUT}{split}")


def _clips(source, names: list[str], holds: str, sequence: int | None,
           given: str) -> list[Clip]:
    """The sequences of `source` as clips named `names`: every one, or only `sequence`,
    the only one read then."""
    chosen = range(len(names)) if sequence is None else [_chosen(sequence, len(names), given)]
    return [Clip(names[index], source.read(index), holds) for index in chosen]


def _clip_names(source, stem: str) -> list[str]:
    """A short, distinct name per clip: the input's name for one clip; for several,
    each one's folder or file name, else its index."""
    if len(source) == 1:
        return [stem]
    candidates = []
    for index in range(len(source)):
        if hasattr(source, "sequences"):  # frame folders: the folder's name
            candidates.append(source.sequences[index][0].parent.name)
        elif hasattr(source, "files"):  # animations: the file's name
            candidates.append(source.files[index].stem)
    if len(set(candidates)) == len(source):
        return candidates
    return [f"sequence_{index:03d}" for index in range(len(source))]


def _array_clips(path: Path, data: Any, frame_format: FrameFormat, sequence: int | None,
                 given: str) -> list[Clip]:
    from framepred.data.arrays import ArrayFile, open_array, split_member

    file_name, member = split_member(str(path))
    array = open_array(Path(file_name), member)
    layout = str(data.layout)
    # [T, H, W], or [T, H, W, C]: one sequence of the run's layout (a 4-axis tbhw /
    # bthw array holds several gray sequences instead). A last axis of the run's
    # channels, or of at most 4 (no frame is that narrow), is C, checked as training
    # checks it: the same .npy with other channels stops here, naming its count.
    single = array.ndim == 3 or (layout in ("auto", "bthwc") and array.ndim == 4 and (
        array.shape[-1] == frame_format.channels or array.shape[-1] <= 4))
    if single:
        # Pictures with data.normalize=none, as ArrayFile reads them; variables otherwise.
        pictures = frame_format.unit_range
        found = array.shape[-1] if array.ndim == 4 else 1
        frame_format.check_channels(found, str(path), pictures, f"shape {tuple(array.shape)}")
        frames = _checked(array, path, frame_format.unit_range)
        if sequence is not None:
            _chosen(sequence, 1, given)  # the only clip is 0
        return [Clip(Path(file_name).stem, frame_format.array(frames, pictures=pictures))]
    source = ArrayFile(str(path), layout, frame_format)
    return _clips(source, _clip_names(source, Path(file_name).stem), "array", sequence, given)


def _checked(array: np.ndarray, path: Path, unit_range: bool) -> np.ndarray:
    """Finite frames; pictures (`unit_range`) as uint8 / uint16 or floats in [0, 1]."""
    frames = np.asarray(array)
    values = frames.astype(np.float32, copy=False)
    if not np.isfinite(values).all():
        raise FramepredError(f"input={path} holds NaN or inf; frames must be finite")
    if unit_range and frames.dtype.kind == "f" and (values.min() < 0.0 or values.max() > 1.0):
        raise FramepredError(
            f"input={path} holds {array.dtype} values outside [0, 1]; give uint8 0-255 or "
            "floats in [0, 1] (a run trained with data.normalize takes data units)")
    return frames
