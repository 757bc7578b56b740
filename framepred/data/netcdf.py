"""data=netcdf: one variable of a netCDF file, or of a folder of them, as one time series.

`data.path` is a file or a folder of `.nc` / `.nc4` files; a folder's files are one
series, concatenated in time order: sorted by the first value of their time
coordinate (by natural file name when a file has none), and files whose times overlap
stop with an error naming both. A file whose own times are out of order is read in
time order, with one log line saying so (two equal times in a file stop, naming
it). Files are opened with xarray: netCDF-4 (HDF5) through
the h5netcdf engine, classic netCDF-3 through scipy's; the netCDF4 package is not
needed. xarray masks `_FillValue` / `missing_value` to NaN and applies
`scale_factor` / `add_offset`, so values arrive in data units and stay so.

Dims of `data.variable`:

- time: `data.time_dim`, or when null the dim named `time` or `t` (any case), else
  the dim of a datetime coordinate (or one marked `axis: T` / `standard_name: time`).
  A variable without one stops with an error.
- space: `data.spatial_dims` ([y, x]), or when null the last two of the others that
  are longer than 1 (netCDF's CF order is time, level, y, x).
- any other dim of size 1 is dropped; one of size > 1 is the channels when its size
  is `data.channels`, and an error otherwise. Every file of a folder must share the
  dims and the grid (the error names both files and both shapes).

Windows are read lazily: `isel` of the time slice, one file at a time, never the whole
variable; each process opens the files once (again after a fork) and reads under a
lock, as data=hdf5 (whose `GriddedFile` this shares, with `data.missing`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from framepred.data.fields import GriddedFile, listing, units_attribute, weather_module
from framepred.data.formats import FrameFormat, natural_key
from framepred.data.hdf5 import _fill_values, _packing, decode
from framepred.errors import FramepredError

log = logging.getLogger("framepred.data")

SUFFIXES = (".nc", ".nc4")
TIME_NAMES = ("time", "t")


@dataclass(frozen=True)
class Dims:
    """How a variable's dims map to [T, H, W, C]."""

    time: str
    space: tuple[str, str]
    channel: str | None
    dropped: tuple[str, ...]  # of size 1


@dataclass(frozen=True)
class Part:
    """One file of the series: its frames [start, start + frames) of the series."""

    path: Path
    start: int
    frames: int
    times: np.ndarray | None  # the time coordinate in time order, when the file has one
    # Where each frame of the part, in time order, lies in the file; None: in file order.
    order: np.ndarray | None = None


def netcdf_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    files = sorted((p for p in root.iterdir() if p.suffix.lower() in SUFFIXES), key=natural_key)
    if not files:
        raise FramepredError(f"data.path={root} holds no netCDF file "
                             f"({', '.join(SUFFIXES)}); data=netcdf reads one file or a folder "
                             "of them")
    return files


def open_netcdf(path: Path):
    """`path` as a lazily read xarray Dataset; FramepredError when it is no netCDF file."""
    xarray = weather_module("xarray", "netcdf")
    with open(path, "rb") as raw:
        magic = raw.read(4)
    if magic.startswith(b"CDF"):
        engine = "scipy"  # classic netCDF-3
    elif magic == b"\x89HDF":
        engine = "h5netcdf"  # netCDF-4
    else:
        raise FramepredError(f"cannot read {path} as netCDF: it is neither netCDF-4 (HDF5) "
                             "nor classic netCDF-3")
    weather_module(engine, "netcdf")
    try:
        return xarray.open_dataset(path, engine=engine, cache=False)
    except (OSError, ValueError, TypeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise FramepredError(f"cannot read {path} as netCDF: {reason}") from None


def _variable(dataset, name: str, path: Path):
    if name not in dataset.data_vars:
        raise FramepredError(f"{path} has no variable {name!r} (data.variable); it holds: "
                             f"{listing([str(v) for v in dataset.data_vars])}")
    return dataset[name]


def _time_dim(array, wanted: str | None, path: Path) -> str:
    dims = [str(d) for d in array.dims]
    if wanted:
        if wanted not in dims:
            raise FramepredError(f"{path}: variable {array.name!r} has no dim {wanted!r} "
                                 f"(data.time_dim); its dims: ({', '.join(dims)})")
        return wanted
    named = [d for d in dims if d.lower() in TIME_NAMES]
    if named:
        return named[0]
    for coord in array.coords.values():
        if coord.ndim == 1 and (np.issubdtype(coord.dtype, np.datetime64)
                                or coord.attrs.get("axis") == "T"
                                or coord.attrs.get("standard_name") == "time"):
            return str(coord.dims[0])
    raise FramepredError(
        f"{path}: variable {array.name!r} has no time dimension: its dims ({', '.join(dims)}) "
        "include none named time or t or with datetime coordinates; set data.time_dim=NAME "
        "if one of them is time, or give a file of frames over time")


def resolve_dims(array, time_dim: str | None, spatial_dims, frame_format: FrameFormat,
                 path: Path) -> Dims:
    """Which dim of `array` is time, y, x and channels (module docstring)."""
    time = _time_dim(array, time_dim, path)
    sizes = {str(d): int(n) for d, n in array.sizes.items()}
    others = [d for d in sizes if d != time]
    if spatial_dims:
        space = tuple(str(d) for d in spatial_dims)
        if len(space) != 2 or not set(space) <= set(others) or space[0] == space[1]:
            raise FramepredError(
                f"data.spatial_dims={list(space)} must name two dims of {array.name!r} in "
                f"{path} other than time ({time!r}); its dims: ({', '.join(sizes)})")
    else:
        longer = [d for d in others if sizes[d] > 1]
        space = tuple(longer[-2:] if len(longer) >= 2 else others[-2:])
        if len(space) != 2:
            raise FramepredError(
                f"{path}: variable {array.name!r} has dims ({', '.join(sizes)}): besides time "
                f"({time!r}) it needs two spatial dims, y and x")
    rest = [d for d in others if d not in space]
    channel = [d for d in rest if sizes[d] > 1]
    described = ", ".join(f"{d}={sizes[d]}" for d in channel)
    if len(channel) > 1:
        raise FramepredError(
            f"{path}: variable {array.name!r} has dims ({described}) besides time ({time!r}) "
            f"and space {list(space)}; data=netcdf reads at most one more (the channels): "
            "select the others in the file, or set data.spatial_dims")
    how = (f"dim {described} besides time and space {list(space)}" if channel
           else f"no dim besides time and space {list(space)}")
    frame_format.check_channels(sizes[channel[0]] if channel else 1,
                                f"{path} variable {array.name!r}", pictures=False, how=how)
    dropped = tuple(d for d in rest if sizes[d] == 1)
    return Dims(time, space, channel[0] if channel else None, dropped)


class NetcdfSeries(GriddedFile):
    """One variable over the time of one file, or of a folder's files end to end."""

    def __init__(self, path: Path, variable: str, time_dim: str | None, spatial_dims,
                 frame_format: FrameFormat, missing: str = "error"):
        weather_module("xarray", "netcdf")
        self.root, self.variable = Path(path), str(variable)
        self.where = str(self.root)
        self.format, self.missing = frame_format, str(missing)
        self.channels_in_file = frame_format.channels  # resolve_dims holds them equal
        self.paths = netcdf_files(self.root)
        self._begin()
        opened = self._files()
        first = self.paths[0]
        head = _variable(opened[first], self.variable, first)
        self.dims = resolve_dims(head, time_dim, spatial_dims, frame_format, first)
        self.units = units_attribute(head.attrs)
        grid = self._grid(head, first)
        found = []
        for path in self.paths:
            array = _variable(opened[path], self.variable, path)
            if self._grid(array, path) != grid:
                raise FramepredError(
                    f"{path} has {self.variable!r} frames of shape "
                    f"{_sizes(self._grid(array, path))} but {first} has {_sizes(grid)}; every "
                    f"file of data.path={self.root} must share one grid")
            time = opened[path][self.dims.time] if self.dims.time in opened[path].variables \
                else None
            times = None if time is None else np.asarray(time.values)
            found.append((path, int(array.sizes[self.dims.time]), times))
        self.parts = _in_time_order(found, self.root)
        self.frame_shape = (grid[0][1], grid[1][1])
        frame_format.check_size(*self.frame_shape, self.where)

    def _grid(self, array, path: Path) -> tuple:
        """((dim, size), ...) of every dim but time, in [y, x, channel, dropped] order."""
        names = [*self.dims.space, *([self.dims.channel] if self.dims.channel else []),
                 *self.dims.dropped]
        missing = [d for d in [self.dims.time, *names] if d not in array.sizes]
        if missing or len(array.dims) != len(names) + 1:
            raise FramepredError(
                f"{path} has {self.variable!r} with dims ({', '.join(map(str, array.dims))}) "
                f"but {self.paths[0]} has ({', '.join([self.dims.time, *names])}); every file "
                f"of data.path={self.root} must share them")
        return tuple((d, int(array.sizes[d])) for d in names)

    def _open(self) -> dict:
        self._direct = {}  # this process's h5py datasets, by path (`_stored`)
        return {path: open_netcdf(path) for path in self.paths}

    def _stored(self, opened: dict, path: Path):
        """The variable of a netCDF-4 file as an h5py dataset, or None where xarray
        must read it (netCDF-3, an `_Unsigned` attribute). Reading the HDF5 dataset
        directly, with the CF decoding xarray applies (`hdf5.decode`), skips xarray's
        and h5netcdf's per-read bookkeeping (dimension lookups): about 4x fewer
        seconds per window (scripts/bench_data.py)."""
        if path not in self._direct:
            stored = None
            array = opened[path][self.variable]
            if "_Unsigned" not in array.encoding and _is_hdf5(path):
                import h5py

                handle = h5py.File(path, "r")
                candidate = handle.get(self.variable)
                if isinstance(candidate, h5py.Dataset) and candidate.ndim == array.ndim:
                    stored = (candidate, tuple(str(d) for d in array.dims),
                              _fill_values(candidate), _packing(candidate))
            self._direct[path] = stored
        return self._direct[path]

    def __len__(self) -> int:
        return 1

    def num_frames(self, index: int) -> int:
        last = self.parts[-1]
        return last.start + last.frames

    def describe(self, index: int) -> str:
        return f"{self.where} variable {self.variable}"

    def _part(self, frame: int) -> int:
        starts = [part.start for part in self.parts]
        return int(np.searchsorted(starts, frame, side="right")) - 1

    def locate(self, index: int, frame: int) -> str:
        part = self.parts[self._part(frame)]
        local = frame - part.start
        if part.order is not None:
            local = int(part.order[local])
        when = f" ({self.dims.time}={_when(part.times[frame - part.start])})" \
            if part.times is not None else ""
        return f"{part.path} variable {self.variable} time index {local}{when}"

    def _slab(self, opened: dict, index: int, start: int, stop: int) -> np.ndarray:
        order = [self.dims.time, *self.dims.space,
                 *([self.dims.channel] if self.dims.channel else [])]
        pieces = []
        for number in range(self._part(start), len(self.parts)):
            part = self.parts[number]
            if part.start >= stop:
                break
            first, last = max(start - part.start, 0), min(stop - part.start, part.frames)
            picked = None
            if part.order is not None:  # the file's frames in time order: read their span
                picked = part.order[first:last]
                first, last = int(picked.min()), int(picked.max()) + 1
            window = {self.dims.time: slice(first, last), **{d: 0 for d in self.dims.dropped}}
            stored = self._stored(opened, part.path)
            if stored is None:
                array = opened[part.path][self.variable].isel(window).transpose(*order)
                values = np.asarray(array.values, dtype=np.float32)  # reads the slice only
            else:
                dataset, dims, fills, packing = stored
                kept = [d for d in dims if d not in self.dims.dropped]
                values = dataset[tuple(window.get(d, slice(None)) for d in dims)]
                # file order -> [T, y, x(, channel)]
                values = decode(np.transpose(values, [kept.index(d) for d in order]),
                                fills, packing)
            pieces.append(values if picked is None else values[picked - first])
        frames = np.concatenate(pieces) if len(pieces) > 1 else pieces[0]
        return frames if frames.ndim == 4 else frames[..., None]  # [T, H, W] -> [T, H, W, 1]

    def _forget_files(self) -> None:
        super()._forget_files()
        self._direct = {}

    def __getstate__(self) -> dict:
        return {**super().__getstate__(), "_direct": {}}


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as raw:
        return raw.read(4) == b"\x89HDF"


def _sizes(grid: tuple) -> str:
    return "(" + ", ".join(f"{dim}={size}" for dim, size in grid) + ")"


def _when(value) -> str:
    """A time coordinate's value for a message: datetimes to the second."""
    if isinstance(value, np.datetime64):
        return str(value.astype("datetime64[s]"))
    return str(value)


def _in_time_order(found: list[tuple[Path, int, np.ndarray | None]], root: Path) -> list[Part]:
    """The files as Parts, sorted by their first time; overlapping times stop."""
    orders = {}
    for number, (path, frames, times) in enumerate(found):
        if times is None or len(times) < 2 or bool(np.all(times[1:] > times[:-1])):
            continue
        order = np.argsort(times, kind="stable")
        ordered = times[order]
        equal = np.flatnonzero(ordered[1:] == ordered[:-1])
        if len(equal):
            raise FramepredError(
                f"{path} holds the time {_when(ordered[equal[0]])} twice; data=netcdf reads "
                "one frame per time: remove the repeated one")
        log.warning("%s: its %d times are out of order; read in time order (%s to %s)",
                    path, len(times), _when(ordered[0]), _when(ordered[-1]))
        found[number] = (path, frames, ordered)
        orders[path] = order
    timed = all(times is not None and len(times) for _, _, times in found)
    if timed and len(found) > 1:
        found = sorted(found, key=lambda item: item[2][0])
        for (before, _, earlier), (after, _, later) in zip(found, found[1:]):
            if later[0] <= earlier[-1]:
                raise FramepredError(
                    f"{after} starts at time {_when(later[0])}, before {before} ends "
                    f"({_when(earlier[-1])}); "
                    f"the files of data.path={root} must be one series, each after the last")
    parts, start = [], 0
    for path, frames, times in found:
        parts.append(Part(path, start, frames, times, orders.get(path)))
        start += frames
    return parts
