"""data=hdf5: one dataset of an HDF5 file, fields in physical units, read lazily.

`data.dataset` names the dataset (`rain` or `/radar/rain`); `data.layout` its axes:

- `tbhw` (time, sequences, H, W), `bthw` (sequences, time, H, W) and `bthwc`
  (sequences, time, H, W, channels), as for data=npy;
- `auto` (the default): 3 axes are one sequence (time, H, W); 4 axes are one
  sequence of multi-channel frames (time, H, W, C) when the last axis equals
  `data.channels` (so `data.channels=1` takes (T, H, W, 1)), and otherwise stop with
  an error asking for `data.layout=tbhw` or `bthw`: unlike data=npy, fields need
  not be smooth in time, so the data is not asked; 5 axes are `bthwc`.

Frames keep their values (mm/h stay mm/h): `data.normalize` scales them later. They
are resized to `data.frame_size` (unless `data.resize=false`), and the file's channel
count must equal `data.channels`.

Windows are sliced from the h5py dataset as the pipeline asks for them; the file is
never read whole. Each process opens the file once (again after a fork), and every
h5py call holds a lock: h5py is not safe to call from tf.data's threads at once.

A dataset packed by the CF conventions (integers with `scale_factor` and
`add_offset` attributes, as netCDF-4 writers pack them) is unpacked to
`packed * scale_factor + add_offset`, as xarray and netCDF4 decode it.

Missing values (`data.missing`) are NaN, inf, and the values of the dataset's
`_FillValue`, `missing_value` or `fillvalue` attribute, compared with the packed
values as CF defines them (HDF5's own fill value of unwritten chunks is 0 by
default, a real value, so it is not one). `error` stops at
the first window that holds one, naming the file and the time index; `zero` reads
them as 0; `skip_window` finds the frames that hold one in a streaming pass when the
source is built, and no window holds such a frame (framepred.data.build_source cuts
each sequence at them).

What it shares with data=netcdf (the file handle, the lock, the missing-value
policy) is `framepred.data.fields.GriddedFile`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from framepred.data.fields import (
    FILL_ATTRIBUTES,
    GriddedFile,
    listing,
    units_attribute,
    weather_module,
)
from framepred.data.formats import FrameFormat
from framepred.errors import FramepredError


def _layout(shape: tuple[int, ...], layout: str, channels: int, where: str) -> str:
    """thw, thwc (one sequence), tbhw, bthw or bthwc: how to read a dataset of `shape`."""
    if layout == "auto":
        if len(shape) == 3:
            return "thw"
        if len(shape) == 4 and shape[-1] == channels:
            return "thwc"
        if len(shape) == 5:
            return "bthwc"
    elif len(shape) == len(layout):
        return layout
    if layout == "auto" and len(shape) == 4:
        raise FramepredError(
            f"{where} has shape {shape}: its last axis is not data.channels={channels}, so "
            "it is not one sequence of (time, H, W, channels); is it (time, sequences, H, W) "
            f"or (sequences, time, H, W)? Set data.layout=tbhw or data.layout=bthw (or "
            f"data.channels={shape[-1]} for one sequence of {shape[-1]}-channel frames)"
        )
    expected = {"auto": "3, 4 or 5", "tbhw": "4", "bthw": "4", "bthwc": "5"}[layout]
    raise FramepredError(
        f"{where} has shape {shape} ({len(shape)} axes), but data.layout={layout} needs "
        f"{expected} axes; layouts: auto ((time, H, W), (time, H, W, channels)), tbhw "
        "(time, sequences, H, W), bthw (sequences, time, H, W), bthwc (sequences, time, "
        "H, W, channels)"
    )


class HDF5Field(GriddedFile):
    """The sequences of one HDF5 dataset, sliced window by window."""

    def __init__(self, path: Path, dataset: str, layout: str, frame_format: FrameFormat,
                 missing: str = "error"):
        weather_module("h5py", "hdf5")  # the extra's error before anything else
        self.path, self.name = Path(path), str(dataset)
        self.where = f"{self.path}:{self.name}"
        self.format, self.missing = frame_format, str(missing)
        self._begin()
        stored = self._files()
        self.shape, dtype = tuple(stored.shape), stored.dtype
        if dtype.kind not in "uif":
            raise FramepredError(
                f"{self.where} has dtype {dtype}; data=hdf5 reads numbers (integers or floats)")
        self.fill_values = _fill_values(stored)
        self.units = units_attribute(stored.attrs)
        self.scale_factor, self.add_offset = _packing(stored)
        self.layout = _layout(self.shape, str(layout), frame_format.channels, self.where)
        self.channels_in_file = self.shape[-1] if self.layout in ("thwc", "bthwc") else 1
        frame_format.check_channels(self.channels_in_file, self.where, pictures=False,
                                    how=f"data.layout={self.layout}, shape {self.shape}")
        self.frame_shape = self.shape[-3:-1] if self.layout.endswith("c") else self.shape[-2:]
        frame_format.check_size(*self.frame_shape, self.where)

    def _open(self):
        h5py = weather_module("h5py", "hdf5")
        try:
            handle = h5py.File(self.path, "r")
        except OSError as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise FramepredError(f"cannot read {self.path} as an HDF5 file: {reason}") from None
        stored = handle.get(self.name)
        if not isinstance(stored, h5py.Dataset):
            names: list[str] = []
            handle.visititems(lambda name, item: names.append("/" + name)
                              if isinstance(item, h5py.Dataset) else None)
            handle.close()
            raise FramepredError(
                f"{self.path} has no dataset {self.name!r} (data.dataset); it holds: "
                f"{listing(names)}"
            )
        return stored

    def __len__(self) -> int:
        if self.layout in ("thw", "thwc"):
            return 1
        return int(self.shape[1] if self.layout == "tbhw" else self.shape[0])

    def num_frames(self, index: int) -> int:
        if self.layout in ("bthw", "bthwc"):
            return int(self.shape[1])
        return int(self.shape[0])

    def describe(self, index: int) -> str:
        return self.where if len(self) == 1 else f"{self.where} sequence {index}"

    def locate(self, index: int, frame: int) -> str:
        return f"{self.describe(index)} time index {frame}"

    def _slab(self, stored, index: int, start: int, stop: int) -> np.ndarray:
        if self.layout in ("thw", "thwc"):
            values = stored[start:stop]
        elif self.layout == "tbhw":
            values = stored[start:stop, index]
        else:
            values = stored[index, start:stop]
        return decode(values, self.fill_values, (self.scale_factor, self.add_offset))


def _fill_values(stored) -> list:
    """The values an attribute of `stored` declares missing."""
    values = []
    for name in FILL_ATTRIBUTES:
        if name in stored.attrs:
            values.extend(np.atleast_1d(np.asarray(stored.attrs[name])).ravel().tolist())
    return values


def _packing(stored) -> tuple[float, float]:
    """CF packing (CF conventions 1.11, section 8.1): `value = packed * scale_factor +
    add_offset`, each 1 / 0 when absent. The fill values compare with the packed data."""
    def number(name, default):
        return float(np.asarray(stored.attrs[name]).ravel()[0]) if name in stored.attrs \
            else default

    return number("scale_factor", 1.0), number("add_offset", 0.0)


def decode(values: np.ndarray, fill_values: list, packing: tuple[float, float]) -> np.ndarray:
    """Stored values -> float32 [T, H, W, C] in data units, as xarray's CF decoding
    gives them: the fill values NaN, then `* scale_factor + add_offset`."""
    frames = _masked(values, fill_values)
    scale_factor, add_offset = packing
    if scale_factor != 1.0 or add_offset != 0.0:
        frames = (frames * np.float32(scale_factor) + np.float32(add_offset)).astype(np.float32)
    return frames


def _masked(values: np.ndarray, fill_values: list) -> np.ndarray:
    """float32 [T, H, W, C] with the fill values as NaN (compared before the cast)."""
    frames = values.astype(np.float32)
    for fill in fill_values:
        frames[values == fill] = np.nan
    return frames if frames.ndim == 4 else frames[..., None]  # [T, H, W] -> [T, H, W, 1]
