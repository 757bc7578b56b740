"""Every data source, once: its name, its reader, its config check and its preset.

`SOURCES` maps `data.source` to a `SourceKind`. The schema's choices
(`framepred.config.Source`), `build_source`, `validate_data`, predict's clip reader
and the error messages all read it, so a new source is one entry here, its reader
module, and its preset `configs/data/<name>.yaml` (`tests/test_data_sources.py`
holds presets and entries one to one).

A source either generates sequences per split (`generate(data, split)`: the
procedural sources, which draw each split from its own seed), or opens the whole
file or folder at `data.path` once (`open(data, path, frame_format)`), which
`framepred.data.splits` then cuts into splits without leakage. Readers are
imported when a source is built, so the extras they need (h5py, xarray) are only
asked for by the sources that use them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from framepred.errors import FramepredError

SPLITS = ("train", "val", "test")


def _no_check(data: Any, key: str) -> None:
    pass


@dataclass(frozen=True)
class SourceKind:
    name: str
    # What data.path holds, for messages; None: nothing is read from disk.
    reads: str | None = None
    # (data, split) -> SequenceSource: sequences generated for one split.
    generate: Callable | None = None
    # (data, path, frame_format) -> SequenceSource: the whole file or folder at path.
    open: Callable | None = None
    # (data, key) -> None: what this source needs beyond the schema's types; raises
    # FramepredError naming `key.<name>`.
    check: Callable[[Any, str], None] = _no_check
    # Fields in physical units: never scaled to [0, 1], data.missing applies.
    data_units: bool = False
    # The key naming what to read inside a file (data.dataset, data.variable, ...).
    field_key: str | None = None
    # File suffixes predict's `input=` takes as this source's files, and whether it
    # takes a folder of them.
    suffixes: tuple[str, ...] = ()
    folders: bool = False

    @property
    def preset(self) -> str:
        """The config group option that selects it: configs/data/<name>.yaml."""
        return f"data/{self.name}.yaml"


# --- procedural sources -------------------------------------------------------------


def _moving_digits(data: Any, split: str, glyphs=None):
    """Moving Digits with rendered glyphs, or with `glyphs` (real MNIST digits)."""
    from framepred.data.moving_digits import MovingDigits

    return MovingDigits(
        num_sequences=getattr(data, f"{split}_sequences"),
        frames=int(data.context_frames) + int(data.future_frames),
        frame_size=tuple(data.frame_size),
        channels=data.channels,
        num_digits=data.num_digits,
        digit_size=tuple(data.digit_size),
        speed=tuple(data.speed),
        # Different seeds per split: validation never repeats a training sequence.
        seed=int(data.seed) + SPLITS.index(split),
        glyphs=glyphs,
    )


def _moving_mnist(data: Any, split: str):
    from pathlib import Path

    from framepred.data.files import existing_path
    from framepred.data.mnist import MnistGlyphs, load_digit_sets, split_digits

    path = existing_path(data.path, "data.path", "moving_mnist", SOURCES["moving_mnist"].reads)
    sets = load_digit_sets(Path(path))
    digits = split_digits(sets, split, float(data.val_fraction), float(data.test_fraction),
                          int(data.seed))
    return _moving_digits(data, split, glyphs=MnistGlyphs(digits, tuple(data.digit_size)))


def _rain_cells(data: Any, split: str):
    from framepred.data.rain_cells import RainCells

    return RainCells(
        num_sequences=getattr(data, f"{split}_sequences"),
        frames=int(data.context_frames) + int(data.future_frames),
        frame_size=tuple(data.frame_size),
        channels=int(data.channels),
        wind=tuple(data.speed),
        seed=int(data.seed) + SPLITS.index(split),  # as moving_digits: no repeats across splits
    )


def _check_digits(data: Any, key: str) -> None:
    size = list(data.frame_size)
    if max(data.digit_size) >= min(size):
        raise FramepredError(f"{key}.digit_size={list(data.digit_size)} must be smaller than "
                             f"{key}.frame_size={size}")


# --- sources read from disk -----------------------------------------------------------


def _open_npy(data: Any, path: str, frame_format):
    from framepred.data.arrays import ArrayFile

    return ArrayFile(path, str(data.layout), frame_format)


def _open_frames(data: Any, path, frame_format):
    from framepred.data.files import BadFiles
    from framepred.data.folders import FrameFolders

    return FrameFolders(path, frame_format, BadFiles(str(data.on_bad_file)))


def _open_video(data: Any, path, frame_format):
    from framepred.data.files import BadFiles
    from framepred.data.videos import VideoFiles

    return VideoFiles(path, frame_format, BadFiles(str(data.on_bad_file)))


def _open_hdf5(data: Any, path, frame_format):
    from framepred.data.hdf5 import HDF5Field

    return HDF5Field(path, str(data.dataset), str(data.layout), frame_format, str(data.missing))


def _open_netcdf(data: Any, path, frame_format):
    from framepred.data.netcdf import NetcdfSeries

    spatial_dims = list(data.spatial_dims) if data.spatial_dims else None
    return NetcdfSeries(path, str(data.variable), data.time_dim, spatial_dims, frame_format,
                        str(data.missing))


def _open_odim(data: Any, path, frame_format):
    from framepred.data.odim import OdimSeries

    return OdimSeries(path, str(data.quantity), frame_format, str(data.missing),
                      float(data.dbz_floor), bool(data.to_rain_rate), float(data.zr_a),
                      float(data.zr_b))


def _check_odim(data: Any, key: str) -> None:
    from framepred.data.odim import DBZ_QUANTITIES

    _requires("quantity", "one quantity of each file (DBZH, RATE, ACRR, ...)")(data, key)
    if data.to_rain_rate and str(data.quantity) not in DBZ_QUANTITIES:
        raise FramepredError(
            f"{key}.to_rain_rate=true converts reflectivity (dBZ) to mm/h, but "
            f"{key}.quantity={data.quantity} is no reflectivity; it takes "
            f"{', '.join(DBZ_QUANTITIES)} (or set {key}.to_rain_rate=false)")
    for name in ("zr_a", "zr_b"):
        if not float(getattr(data, name)) > 0:
            raise FramepredError(f"{key}.{name}={getattr(data, name)} must be > 0 (Z = a R^b, "
                                 "Marshall-Palmer: a=200, b=1.6)")


def _requires(name: str, what: str) -> Callable[[Any, str], None]:
    """A check that `data.<name>` is set: `what` says what the source reads by it."""
    def check(data: Any, key: str) -> None:
        if not getattr(data, name):
            raise FramepredError(f"{key}.{name} is not set; data={data.source} reads {what}: "
                                 f"give {key}.{name}=NAME")
    return check


SOURCES: dict[str, SourceKind] = {kind.name: kind for kind in (
    SourceKind("moving_digits", generate=_moving_digits, check=_check_digits),
    SourceKind("moving_mnist", reads="MNIST digits: mnist.npz or *-idx3-ubyte[.gz]",
               generate=_moving_mnist, check=_check_digits),
    SourceKind("npy", reads="a .npy or .npz array of sequences", open=_open_npy),
    SourceKind("frames", reads="a folder of sequence folders of image files",
               open=_open_frames),
    SourceKind("video", reads="an animated image or video file, or a folder of them",
               open=_open_video),
    SourceKind("hdf5", reads="one dataset (data.dataset) of an HDF5 file", open=_open_hdf5,
               check=_requires("dataset", "one dataset of the file"), data_units=True,
               field_key="dataset", suffixes=(".h5", ".hdf5")),
    SourceKind("netcdf",
               reads="one variable (data.variable) of a netCDF file or of a folder of .nc files",
               open=_open_netcdf, check=_requires("variable", "one variable"), data_units=True,
               field_key="variable", suffixes=(".nc", ".nc4"), folders=True),
    SourceKind("odim", reads="a folder of ODIM_H5 radar files, one per time", open=_open_odim,
               check=_check_odim, data_units=True, field_key="quantity",
               suffixes=(".h5", ".hdf5"), folders=True),
    SourceKind("rain_cells", generate=_rain_cells, data_units=True),
)}


def source_kind(name: str) -> SourceKind:
    """The registry's entry for `data.source=name`, or a FramepredError listing them."""
    if name not in SOURCES:
        raise FramepredError(f"data.source={name!r} is not one of: {', '.join(SOURCES)}")
    return SOURCES[name]


def check_source(data: Any, key: str = "data") -> None:
    """The source's own config check, and data.path where it reads one."""
    kind = source_kind(str(data.source))
    kind.check(data, key)
    if kind.reads is not None and not data.path:
        raise FramepredError(f"{key}.path is not set; data={kind.name} reads it: give "
                             f"{key}.path=FILE_OR_FOLDER")
