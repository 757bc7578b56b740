"""data=npy: sequences stored in one .npy or .npz array, memory-mapped.

Layouts (`data.layout`): `tbhw` is Moving MNIST's `mnist_test_seq.npy`
(time, sequences, H, W); `bthw` is (sequences, time, H, W); `bthwc` adds
channels. `auto` takes 5 axes as bthwc, 3 axes (time, H, W) as one sequence,
and 4 axes as tbhw when the file is named mnist_test_seq* or its first axis is the
shorter (Moving MNIST: 20 frames of 10000 sequences), else bthw; it logs what it
chose, since a 4-axis shape alone cannot tell.

The array is opened with `np.load(mmap_mode="r")`, so windows are read from disk
as the pipeline asks for them and a file larger than memory trains. An .npz is a
zip: a member stored uncompressed (`np.savez`) is memory-mapped at its offset in
the zip; a compressed one (`np.savez_compressed`) cannot be, and is read into
memory whole (logged).

Float arrays are checked for NaN, inf and values outside [0, 1] when the source is
built, in chunks of about 64 MiB, so the check never holds the whole array; that
costs one pass over the file, but the error comes before the first training step.
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np

from framepred.data.formats import FrameFormat
from framepred.data.source import SequenceSource
from framepred.errors import FramepredError

log = logging.getLogger("framepred.data")

LAYOUTS = ("tbhw", "bthw", "bthwc")
CHECK_CHUNK_BYTES = 64 << 20


def split_member(path: str) -> tuple[str, str | None]:
    """`clips.npz:frames` -> ("clips.npz", "frames"): picks one array of an .npz."""
    head, sep, member = str(path).rpartition(":")
    if sep and head.lower().endswith(".npz") and "/" not in member and "\\" not in member:
        return head, member
    return str(path), None


def _npz_member(path: Path, member: str | None) -> np.ndarray:
    with zipfile.ZipFile(path) as archive:
        names = [n[:-4] for n in archive.namelist() if n.endswith(".npy")]
        if member is None:
            if len(names) != 1:
                raise FramepredError(
                    f"{path} holds {len(names)} arrays ({', '.join(names)}); pick one with "
                    f"data.path={path}:NAME"
                )
            member = names[0]
        if member not in names:
            raise FramepredError(
                f"{path} has no array {member!r}; it holds: {', '.join(names)}"
            )
        info = archive.getinfo(member + ".npy")
        if info.compress_type == zipfile.ZIP_STORED:
            with open(path, "rb") as raw:
                # The member's data starts after its local header: 30 bytes, then the
                # name and the extra field (PKWARE APPNOTE 4.3.7).
                raw.seek(info.header_offset + 26)
                name_len, extra_len = np.frombuffer(raw.read(4), dtype="<u2")
                raw.seek(info.header_offset + 30 + int(name_len) + int(extra_len))
                version = np.lib.format.read_magic(raw)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = read_header(raw)
                offset = raw.tell()
            if dtype.hasobject:
                raise FramepredError(f"{path}:{member} holds Python objects, not frames")
            return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape,
                             order="F" if fortran else "C")
        log.info("%s:%s is compressed, so it is read into memory whole; save it with "
                 "np.savez or as .npy to memory-map it instead", path, member)
        with np.load(path, allow_pickle=False) as arrays:
            return arrays[member]


def open_array(path: Path, member: str | None = None) -> np.ndarray:
    """The array in an .npy (memory-mapped) or an .npz member; FramepredError if unreadable."""
    try:
        if path.suffix.lower() == ".npz" or zipfile.is_zipfile(path):
            return _npz_member(path, member)
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except FramepredError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise FramepredError(
            f"cannot read {path} as a NumPy array (.npy or .npz): {reason}"
        ) from error


def resolve_layout(array: np.ndarray, layout: str, where: str) -> str:
    shape = tuple(array.shape)
    if layout == "auto":
        if array.ndim == 3:
            return "thw"
        if array.ndim == 5:
            return "bthwc"
        if array.ndim == 4:
            # Moving MNIST's file, or fewer frames than sequences as in that file.
            moving_mnist = Path(where).name.startswith("mnist_test_seq")
            chosen = "tbhw" if moving_mnist or shape[0] < shape[1] else "bthw"
            sequences, frames = (shape[1], shape[0]) if chosen == "tbhw" else shape[:2]
            log.info("data.layout=auto: reading %s %s as %s: %d sequences of %d frames; "
                     "set data.layout if that is wrong", where, shape, chosen, sequences, frames)
            return chosen
    elif array.ndim == len(layout):
        return layout
    expected = {"auto": "3, 4 or 5", "tbhw": "4", "bthw": "4", "bthwc": "5"}[layout]
    raise FramepredError(
        f"{where} has shape {shape} ({array.ndim} axes), but data.layout={layout} needs "
        f"{expected} axes; layouts: tbhw (time, sequences, H, W, as mnist_test_seq.npy), "
        "bthw (sequences, time, H, W), bthwc (sequences, time, H, W, channels)"
    )


class ArrayFile(SequenceSource):
    """The sequences of one array, read window by window from the memory map."""

    def __init__(self, path: str, layout: str, frame_format: FrameFormat):
        file_name, member = split_member(path)
        self.path = Path(file_name)
        self.where = f"{self.path}:{member}" if member else str(self.path)
        self.array = open_array(self.path, member)
        self.layout = resolve_layout(self.array, layout, self.where)
        self.format = frame_format
        if self.array.dtype.kind not in "uf" or self.array.dtype.itemsize > 8 or (
            self.array.dtype.kind == "u" and self.array.dtype.itemsize > 2
        ):
            raise FramepredError(
                f"{self.where} has dtype {self.array.dtype}; use uint8 (0..255), uint16 "
                "(0..65535) or float in [0, 1]"
            )
        if self.layout == "bthwc" and self.array.shape[-1] not in (1, 2, 3, 4):
            raise FramepredError(
                f"{self.where} has shape {tuple(self.array.shape)}: {self.array.shape[-1]} "
                "channels; data.layout=bthwc needs 1 (gray), 3 (RGB) or 4 (RGBA)"
            )
        height, width = self.frame_shape
        frame_format.check_size(height, width, self.where)
        if self.array.dtype.kind == "f":
            self._check_values()

    @property
    def frame_shape(self) -> tuple[int, int]:
        return tuple(self.array.shape[-3:-1] if self.layout == "bthwc" else self.array.shape[-2:])

    def __len__(self) -> int:
        if self.layout == "thw":
            return 1
        return int(self.array.shape[1] if self.layout == "tbhw" else self.array.shape[0])

    def num_frames(self, index: int) -> int:
        if self.layout == "thw":
            return int(self.array.shape[0])
        return int(self.array.shape[0] if self.layout == "tbhw" else self.array.shape[1])

    def describe(self, index: int) -> str:
        return f"{self.where} sequence {index}"

    def _raw(self, index: int, start: int, stop: int) -> np.ndarray:
        if self.layout == "thw":
            return self.array[start:stop]
        if self.layout == "tbhw":
            return self.array[start:stop, index]
        return self.array[index, start:stop]

    def read(self, index: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        stop = self.num_frames(index) if stop is None else stop
        return self.format.array(np.asarray(self._raw(index, start, stop)))

    def _check_values(self) -> None:
        """NaN, inf and range, one ~64 MiB slab of the first axis at a time."""
        first = self.array.shape[0]
        per_item = max(1, self.array[:1].nbytes)
        step = max(1, CHECK_CHUNK_BYTES // per_item)
        axis_name = "frame" if self.layout in ("tbhw", "thw") else "sequence"
        for begin in range(0, first, step):
            chunk = np.asarray(self.array[begin:begin + step])
            finite = np.isfinite(chunk)
            if not finite.all():
                at = begin + int(np.argwhere(~finite)[0][0])
                raise FramepredError(
                    f"{self.where} holds NaN or inf (first at {axis_name} {at}); "
                    "frames must be finite, in [0, 1]"
                )
            low, high = float(chunk.min()), float(chunk.max())
            if low < 0.0 or high > 1.0:
                bad = (chunk < 0.0) | (chunk > 1.0)
                at = begin + int(np.argwhere(bad)[0][0])
                raise FramepredError(
                    f"{self.where} holds float values outside [0, 1] (min {low:g}, max {high:g} "
                    f"in the slab from {axis_name} {begin}; first at {axis_name} {at}); scale "
                    "the array to [0, 1] (0..255 data: divide by 255) or store it as uint8"
                )
