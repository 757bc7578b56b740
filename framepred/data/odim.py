"""data=odim: a folder of ODIM_H5 files, one radar field per file and time.

ODIM_H5 (OPERA's "Data information model for HDF5", EUMETNET, version 2.x) is the
format of European radar composites. A file holds, under `datasetN/dataM/`, a
`data` array of packed integers and a `what` group with the `quantity` it stores
(DBZH reflectivity in dBZ, RATE in mm/h, ACRR in mm, ...) and how to unpack it:

    value = gain * packed + offset        where packed is neither of:
    nodata    "no radar covers this pixel"   -> missing (NaN), then `data.missing`
    undetect  "covered, and no echo seen"    -> the quantity's "no echo" value:
              0 for rates and accumulations (RATE, ACRR, any non-dBZ quantity),
              `data.dbz_floor` for reflectivities (DBZH, DBZV, TH, TV; default
              -30 dBZ, the value pysteps' importer gives)

The file's time is its root `what/date` (YYYYMMDD) and `what/time` (HHMMSS); the
folder's files are one series in that order (never by file name), and two files of
the same time, or of different grids, stop with one line naming both. `gain` and
`offset` come from the `what` group of the data (else of its dataset, as pysteps
reads them); a gain of 0 would make every value the offset, and stops.

`data.to_rain_rate=true` turns reflectivity into rain rate with the Z-R relation
of Marshall & Palmer (1948), `Z = a R^b` (`data.zr_a`, default 200; `data.zr_b`,
1.6): `R = (10^(dBZ/10) / a)^(1/b)` mm/h, and "no echo" is 0 mm/h.

`pysteps.io.importers.import_odim_hdf5` is the oracle (tests/test_odim.py): the
values equal its, with NaN where it gives NaN. Frames are read file by file as
windows ask for them, under the lock that h5py needs (`fields.GriddedFile`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from framepred.data.fields import GriddedFile, listing, weather_module
from framepred.data.formats import FrameFormat
from framepred.errors import FramepredError

log = logging.getLogger("framepred.data")

SUFFIXES = (".h5", ".hdf5")
# Reflectivities (dBZ): horizontal and vertical, corrected (DBZ*) and total (T*).
DBZ_QUANTITIES = ("DBZH", "DBZV", "TH", "TV")
# The units of the quantities of ODIM 2.x's table of quantities that a rain forecast reads.
UNITS = {**{name: "dBZ" for name in DBZ_QUANTITIES}, "RATE": "mm/h", "ACRR": "mm"}


@dataclass(frozen=True)
class OdimFrame:
    """One file of the series: where its quantity lies and how to unpack it."""

    path: Path
    time: datetime
    data: str  # the HDF5 path of the packed array, e.g. dataset1/data1/data
    gain: float
    offset: float
    nodata: float | None
    undetect: float | None


def _text(value) -> str:
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode("ascii", "replace").strip("\x00 ")
    if isinstance(value, np.ndarray):
        return _text(value.item() if value.size == 1 else value.tobytes())
    return str(value).strip()


def _number(attrs, name: str, default):
    return float(np.asarray(attrs[name]).ravel()[0]) if name in attrs else default


def odim_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not files:
        raise FramepredError(f"data.path={root} holds no ODIM_H5 file ({', '.join(SUFFIXES)}); "
                             "data=odim reads a folder of them, one per time")
    return files


def read_frame_info(h5py, path: Path, quantity: str) -> tuple[OdimFrame, tuple[int, ...]]:
    """Where `quantity` lies in the ODIM file at `path`, its calibration and its shape."""
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise FramepredError(f"cannot read {path} as an HDF5 file: {reason}") from None
    with handle:
        what = handle.get("what")
        if what is None or "date" not in what.attrs or "time" not in what.attrs:
            raise FramepredError(f"{path} is no ODIM_H5 file: it has no what/date and what/time "
                                 "(the time of its data); data=odim reads ODIM_H5 files")
        stamp = _text(what.attrs["date"]) + _text(what.attrs["time"])
        try:
            time = datetime.strptime(stamp[:14], "%Y%m%d%H%M%S")
        except ValueError:
            raise FramepredError(f"{path}: what/date and what/time read {stamp!r}, not "
                                 "YYYYMMDD and HHMMSS") from None
        found = []
        for dataset in sorted((k for k in handle if k.startswith("dataset")), key=_numbered):
            dataset_what = handle[dataset].get("what")
            for data in sorted((k for k in handle[dataset] if k.startswith("data")),
                               key=_numbered):
                group = handle[dataset][data]
                attrs = group["what"].attrs if "what" in group else (
                    dataset_what.attrs if dataset_what is not None else {})
                name = _text(attrs["quantity"]) if "quantity" in attrs else None
                if name is None or "data" not in group:
                    continue
                found.append(name)
                if name != quantity:
                    continue
                gain = _number(attrs, "gain", 1.0)
                if gain == 0:
                    raise FramepredError(
                        f"{path}: {dataset}/{data}/what has gain=0 for {quantity}, which "
                        "would make every value its offset; the file's calibration is broken")
                frame = OdimFrame(path, time, f"{dataset}/{data}/data", gain,
                                  _number(attrs, "offset", 0.0), _number(attrs, "nodata", None),
                                  _number(attrs, "undetect", None))
                return frame, tuple(group["data"].shape)
    raise FramepredError(
        f"{path} has no quantity {quantity!r} (data.quantity); it holds: "
        f"{listing(sorted(set(found)))}")


def _numbered(name: str) -> int:
    digits = "".join(c for c in name if c.isdigit())
    return int(digits) if digits else 0


class OdimSeries(GriddedFile):
    """The files of a folder as one time series of `quantity`, in the quantity's units
    (or in mm/h with `to_rain_rate`)."""

    def __init__(self, path: Path, quantity: str, frame_format: FrameFormat,
                 missing: str = "error", dbz_floor: float = -30.0, to_rain_rate: bool = False,
                 zr_a: float = 200.0, zr_b: float = 1.6):
        h5py = weather_module("h5py", "odim")
        self.root, self.quantity = Path(path), str(quantity)
        self.where = f"{self.root} ({self.quantity})"
        self.format, self.missing = frame_format, str(missing)
        self.channels_in_file = 1
        self.dbz = self.quantity in DBZ_QUANTITIES
        self.no_echo = float(dbz_floor) if self.dbz and not to_rain_rate else 0.0
        self.to_rain_rate, self.zr_a, self.zr_b = bool(to_rain_rate), float(zr_a), float(zr_b)
        self.units = "mm/h" if self.to_rain_rate else UNITS.get(self.quantity)
        frames, shapes = [], {}
        for file in odim_files(self.root):
            frame, shape = read_frame_info(h5py, file, self.quantity)
            frames.append(frame)
            shapes[file] = shape
        frames.sort(key=lambda frame: frame.time)
        first = frames[0]
        for before, after in zip(frames, frames[1:]):
            if after.time == before.time:
                raise FramepredError(
                    f"{before.path} and {after.path} both hold the time "
                    f"{after.time:%Y-%m-%d %H:%M:%S} (what/date, what/time); data=odim reads "
                    "one file per time: "
                    "remove one of them")
        for frame in frames:
            if shapes[frame.path] != shapes[first.path] or len(shapes[frame.path]) != 2:
                raise FramepredError(
                    f"{frame.path} holds {self.quantity} on a grid of {shapes[frame.path]} but "
                    f"{first.path} on {shapes[first.path]}; every file of data.path={self.root} "
                    "must share one grid (one composite product)")
        self.frames = frames
        self.frame_shape = tuple(int(n) for n in shapes[first.path])
        frame_format.check_channels(1, self.where, pictures=False, how="one quantity")
        frame_format.check_size(*self.frame_shape, self.where)
        self._begin()

    def _open(self):
        return weather_module("h5py", "odim")

    def __len__(self) -> int:
        return 1

    def num_frames(self, index: int) -> int:
        return len(self.frames)

    def describe(self, index: int) -> str:
        return self.where

    def locate(self, index: int, frame: int) -> str:
        return f"{self.frames[frame].path} ({self.frames[frame].time:%Y-%m-%d %H:%M:%S})"

    def times(self) -> list[datetime]:
        return [frame.time for frame in self.frames]

    def _slab(self, h5py, index: int, start: int, stop: int) -> np.ndarray:
        slab = np.empty((stop - start, *self.frame_shape, 1), np.float32)
        for number, frame in enumerate(self.frames[start:stop]):
            with h5py.File(frame.path, "r") as handle:
                packed = handle[frame.data][...]
            slab[number, :, :, 0] = self.unpack(packed, frame)
        return slab

    def unpack(self, packed: np.ndarray, frame: OdimFrame) -> np.ndarray:
        """Packed integers -> float32 values in the quantity's units (module docstring)."""
        values = packed.astype(np.float64) * frame.gain + frame.offset
        if self.to_rain_rate:
            # Marshall & Palmer (1948): Z = a R^b, Z in mm^6 m^-3 = 10^(dBZ / 10).
            values = (10.0 ** (values / 10.0) / self.zr_a) ** (1.0 / self.zr_b)
        if frame.undetect is not None:
            values[packed == frame.undetect] = self.no_echo
        if frame.nodata is not None:
            values[packed == frame.nodata] = np.nan
        return values.astype(np.float32)
