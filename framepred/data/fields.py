"""What the sources of fields in physical units share (data=hdf5, data=netcdf).

netCDF-4 files are HDF5 files: both are read through one per-process file handle
(dropped in a forked child, reopened on use), one lock around every library call
(h5py and netCDF readers are not safe to call from tf.data's threads at once), and
one `data.missing` policy: `error` stops at the first window holding a missing value,
naming the file and the time index; `zero` reads them as 0; `skip_window` finds the
frames holding one in a streaming pass when the source is built
(framepred.data.build_source cuts each sequence at them). Their channels are
variables, whatever `data.normalize` is: the file's count must equal `data.channels`
(`FrameFormat.check_channels` with `pictures=False`), never converted as colours.
"""

from __future__ import annotations

import importlib
import os
import threading
import weakref
from typing import Any

import numpy as np

from framepred.data.formats import FrameFormat
from framepred.data.source import SequenceSource
from framepred.errors import FramepredError

SCAN_BYTES = 64 << 20  # frames read at once by the skip_window pass
FILL_ATTRIBUTES = ("_FillValue", "missing_value", "fillvalue")
LISTED = 20  # dataset or variable names listed in an error, at most

# Sources with files open in this process; a forked child drops their handles.
_OPEN_SOURCES: weakref.WeakSet = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for source in list(_OPEN_SOURCES):
        source._forget_files()


if hasattr(os, "register_at_fork"):  # POSIX; Windows starts processes without fork
    os.register_at_fork(after_in_child=_after_fork_in_child)


def weather_module(name: str, source: str):
    """`import name`, or a FramepredError naming the extra that installs it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise FramepredError(
            f'data={source} needs {name}, which is not installed; install the weather '
            f'extra: pip install "framepred[weather]"'
        ) from None


def listing(names: list[str]) -> str:
    shown = ", ".join(names[:LISTED]) or "nothing"
    return shown + (f" (and {len(names) - LISTED} more)" if len(names) > LISTED else "")


def units_attribute(attrs) -> str | None:
    """The `units` attribute of a variable or dataset (the CF conventions' name), as text;
    None where there is none."""
    value = attrs.get("units")
    if isinstance(value, bytes):  # HDF5 stores fixed-length strings as bytes
        value = value.decode(errors="replace")
    value = str(value).strip() if value is not None else ""
    return value or None


class GriddedFile(SequenceSource):
    """Sequences of a field in data units, read window by window from files kept open
    per process, with `data.missing` applied.

    A subclass sets `where`, `format`, `missing`, `frame_shape` and `channels_in_file`,
    calls `_begin()` before its first read, and implements `__len__`, `num_frames`,
    `_open()` (its open files, in this process), `_slab(files, index, start, stop)`
    (float32 [T, H, W, C], missing values NaN) and `locate(index, frame)` (the file and
    time index of a frame, for messages).
    """

    where: str
    format: FrameFormat
    missing: str
    frame_shape: tuple[int, int]
    channels_in_file: int

    def _begin(self) -> None:
        self._lock = threading.Lock()
        self._opened = None
        self._flags: list[np.ndarray] | None = None
        _OPEN_SOURCES.add(self)

    def _files(self) -> Any:
        """This process's open files: opened on first use, and again after a fork."""
        with self._lock:
            if self._opened is None:
                self._opened = self._open()
            return self._opened

    def _forget_files(self) -> None:
        # In a forked child: the parent's handles and lock (held by whatever thread
        # held it at the fork) are not this process's to use.
        self._lock, self._opened = threading.Lock(), None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.update(_lock=None, _opened=None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._forget_files()
        _OPEN_SOURCES.add(self)

    def raw(self, index: int, start: int, stop: int) -> np.ndarray:
        """Frames [start, stop) of sequence `index` as stored: float32 [T, H, W, C],
        missing values NaN."""
        files = self._files()
        with self._lock:
            return self._slab(files, index, start, stop)

    def read(self, index: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        stop = self.num_frames(index) if stop is None else stop
        frames = self.raw(index, start, stop)
        missing = ~np.isfinite(frames)
        if missing.any():
            if self.missing != "zero":
                at = start + int(np.argwhere(missing)[0][0])
                remedy = ("set data.missing=zero to read missing values as 0, or "
                          "data.missing=skip_window to leave out the windows that hold one")
                if self.missing == "skip_window":  # windows never hold one: a longer read
                    remedy = (f"data.missing=skip_window keeps such frames out of windows, "
                              f"but frames {start}..{stop - 1} were read at once; set "
                              "data.missing=zero to read missing values as 0")
                raise FramepredError(
                    f"{self.locate(index, at)} holds a missing value (NaN, inf or the fill "
                    f"value) and data.missing={self.missing}; {remedy}")
            frames[missing] = 0.0
        return self.format.array(frames, pictures=False)  # variables: never converted

    def missing_frames(self, index: int) -> np.ndarray:
        """bool [T]: which frames of sequence `index` hold a missing value."""
        if self._flags is None:
            self._flags = self._scan_missing()  # once, when build_source first asks
        return self._flags[index]

    def _scan_missing(self) -> list[np.ndarray]:
        """The frames holding a missing value, one slab of about SCAN_BYTES at a time."""
        height, width = self.frame_shape
        step = max(1, SCAN_BYTES // (4 * height * width * self.channels_in_file))
        flags = []
        for index in range(len(self)):
            frames = self.num_frames(index)
            missing = np.zeros(frames, dtype=bool)
            for begin in range(0, frames, step):
                slab = self.raw(index, begin, min(begin + step, frames))
                missing[begin:begin + len(slab)] = ~np.isfinite(slab).reshape(
                    len(slab), -1).all(axis=1)
            flags.append(missing)
        return flags
