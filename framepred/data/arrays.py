"""data=npy: sequences stored in one .npy or .npz array, memory-mapped.

Layouts (`data.layout`): `tbhw` is Moving MNIST's `mnist_test_seq.npy`
(time, sequences, H, W); `bthw` is (sequences, time, H, W); `bthwc` adds
channels. `auto` takes 5 axes as bthwc and 3 axes (time, H, W) as one sequence.
With `data.normalize=none` the channels are a picture's (gray, RGB or RGBA, converted
to `data.channels`); with it set they are variables, exactly `data.channels` of
them; a 2-channel array is always two variables (framepred.data.formats).
4 axes cannot be told apart by their shape (a (20, 10, H, W) array read the wrong
way trains on scrambled frames without a word), so `auto` looks at the data: real
video is smooth in time, so neighbouring frames along the time axis differ far
less than neighbours along the sequence axis. `neighbour_differences` measures
both on a few small blocks; the axis whose mean |difference| is under half the
other's is time, and the choice is logged with both numbers. When the data does
not decide, a file named mnist_test_seq* is read as tbhw, and any other stops
with a FramepredError asking for `data.layout`. An explicit layout is obeyed.

The array is opened with `np.load(mmap_mode="r")`, so windows are read from disk
as the pipeline asks for them and a file larger than memory trains. An .npz is a
zip: a member stored uncompressed (`np.savez`) is memory-mapped at its offset in
the zip; a compressed one (`np.savez_compressed`) cannot be, and is read into
memory whole (logged).

Float arrays are checked for NaN, inf and (unless `data.normalize` scales them from
data units) values outside [0, 1] when the source is
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

CHECK_CHUNK_BYTES = 64 << 20
# `auto` on 4 axes: the time axis's neighbours must differ by less than this fraction
# of the other axis's. Moving digits at 64x64 measure 0.4; white noise measures 1.
SMOOTHER = 0.5
SAMPLE_RUN = 4  # neighbours read in a row, along each of the first two axes
SAMPLE_BLOCKS = 3  # blocks spread along each of the first two axes
SAMPLE_PIXELS = 64  # most pixels kept per image side (strided) when measuring


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


def neighbour_differences(array: np.ndarray) -> tuple[float, float]:
    """Mean |difference| between neighbouring frames along axis 0 and along axis 1 of
    a 4-axis array, on the [0, 1] scale frames are read at.

    Reads at most SAMPLE_BLOCKS**2 blocks of SAMPLE_RUN x SAMPLE_RUN frames, each frame
    strided down to at most SAMPLE_PIXELS per side: under a megabyte, however
    large the memory-mapped file.
    """
    first, second, height, width = array.shape
    step_y, step_x = -(-height // SAMPLE_PIXELS), -(-width // SAMPLE_PIXELS)
    scale = float(np.iinfo(array.dtype).max) if array.dtype.kind == "u" else 1.0
    totals, counts = np.zeros(2), np.zeros(2)
    for a in _block_starts(first):
        for b in _block_starts(second):
            # [<=RUN, <=RUN, H/step_y, W/step_x]; NaN is reported by the value check later.
            block = np.nan_to_num(np.asarray(
                array[a:a + SAMPLE_RUN, b:b + SAMPLE_RUN, ::step_y, ::step_x], dtype=np.float64))
            for axis in (0, 1):
                difference = np.abs(np.diff(block, axis=axis))
                totals[axis] += difference.sum()
                counts[axis] += difference.size
    along_first, along_second = totals / np.maximum(counts, 1) / scale
    return float(along_first), float(along_second)


def _block_starts(length: int) -> list[int]:
    return sorted({int(s) for s in np.linspace(0, max(length - SAMPLE_RUN, 0), SAMPLE_BLOCKS)})


def _time_axis_of(array: np.ndarray, where: str) -> str:
    """tbhw or bthw for a 4-axis array under data.layout=auto (module docstring)."""
    shape = tuple(array.shape)
    first, second = shape[:2]
    if 1 in (first, second):
        chosen = "bthw" if first == 1 else "tbhw"
        reason = "the other reading makes sequences of one frame, which hold no window"
    else:
        along_first, along_second = neighbour_differences(array)
        measured = (f"neighbouring frames differ by {along_first:.3g} on average along axis 0 "
                    f"and by {along_second:.3g} along axis 1")
        if along_first < SMOOTHER * along_second:
            chosen, reason = "tbhw", f"{measured}: axis 0 is the smooth one, time"
        elif along_second < SMOOTHER * along_first:
            chosen, reason = "bthw", f"{measured}: axis 1 is the smooth one, time"
        elif Path(where).name.startswith("mnist_test_seq"):
            chosen = "tbhw"
            reason = f"named as Moving MNIST's file; the data did not tell: {measured}"
        else:
            raise FramepredError(
                f"{where} has shape {shape}: {first} frames of {second} sequences "
                f"(data.layout=tbhw) or {first} sequences of {second} frames "
                f"(data.layout=bthw)? Its data does not tell: {measured}, and neither is "
                "under half the other, as time's would be in a video; set data.layout=tbhw "
                "or data.layout=bthw"
            )
    sequences, frames = (second, first) if chosen == "tbhw" else (first, second)
    other = "bthw" if chosen == "tbhw" else "tbhw"
    log.info("data.layout=auto: reading %s %s as %s: %d sequences of %d frames (%s); "
             "set data.layout=%s if that is wrong", where, shape, chosen, sequences, frames,
             reason, other)
    return chosen


def resolve_layout(array: np.ndarray, layout: str, where: str) -> str:
    """The layout to read `array` in: `layout` itself, or what `auto` makes of it."""
    shape = tuple(array.shape)
    if layout == "auto" and array.ndim == 4:
        return _time_axis_of(array, where)
    if layout == "auto" and array.ndim in (3, 5):
        return "thw" if array.ndim == 3 else "bthwc"
    if layout != "auto" and array.ndim == len(layout):
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
        if self.array.dtype.kind not in "uf" or self.array.dtype.itemsize > 8 or (
            self.array.dtype.kind == "u" and self.array.dtype.itemsize > 2
        ):
            raise FramepredError(
                f"{self.where} has dtype {self.array.dtype}; use uint8 (0..255), uint16 "
                "(0..65535) or float in [0, 1]"
            )
        self.layout = resolve_layout(self.array, layout, self.where)  # may read a sample
        self.format = frame_format
        # An array read in [0, 1] (data.normalize=none) holds pictures; one that
        # data.normalize scales from data units holds variables, which never convert.
        self.pictures = frame_format.unit_range
        found = self.array.shape[-1] if self.layout == "bthwc" else 1
        frame_format.check_channels(found, self.where, self.pictures,
                                    f"shape {tuple(self.array.shape)}")
        height, width = self.frame_shape
        frame_format.check_size(height, width, self.where)
        if self.array.dtype.kind == "f":
            self._check_values()  # NaN / inf always; the range unless data.normalize

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
        return self.format.array(np.asarray(self._raw(index, start, stop)),
                                 pictures=self.pictures)

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
            if self.format.unit_range and (low < 0.0 or high > 1.0):
                bad = (chunk < 0.0) | (chunk > 1.0)
                at = begin + int(np.argwhere(bad)[0][0])
                raise FramepredError(
                    f"{self.where} holds float values outside [0, 1] (min {low:g}, max {high:g} "
                    f"in the slab from {axis_name} {begin}; first at {axis_name} {at}); for "
                    "fields in physical units set data.normalize=minmax (or log1p, zscore); "
                    "for pictures scale the array to [0, 1] (0..255: divide by 255) or store "
                    "it as uint8"
                )
