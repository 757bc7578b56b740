"""data=video: animated images and video files, one sequence per file.

`data.path` is one file or a folder of them. Animated GIF, APNG, WebP and
multi-page TIFF are read by Pillow; .mp4, .avi, .mov, .mkv, .webm and .m4v by
ffmpeg through the optional extra `pip install "framepred[video]"`
(imageio-ffmpeg, whose wheel ships the ffmpeg binary).

These formats decode frame after frame (GIF frames are deltas of the previous
one; a video seeks to keyframes), so a window in the middle of a file would
cost decoding everything before it. Each file is therefore decoded whole on the
first window that needs it, already at the configured size and channels, and
kept in memory (uint8) while the decoded files fit in `CACHE_BYTES`; beyond that
the least recently used is dropped. For very long recordings, extract frames
(data=frames) or an array (data=npy) instead.
"""

from __future__ import annotations

import importlib.util
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PIL import Image

from framepred.data.files import BadFiles
from framepred.data.formats import FrameFormat, natural_key, to_unit_float
from framepred.data.source import SequenceSource
from framepred.errors import FramepredError

PILLOW_SUFFIXES = (".gif", ".png", ".apng", ".webp", ".tif", ".tiff")
FFMPEG_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
CACHE_BYTES = 2 << 30
VIDEO_EXTRA = 'pip install "framepred[video]"'


def video_files(root: Path) -> list[Path]:
    suffixes = PILLOW_SUFFIXES + FFMPEG_SUFFIXES
    if root.is_file():
        return [root]
    return sorted((p for p in root.iterdir() if p.is_file() and p.suffix.lower() in suffixes),
                  key=natural_key)


def _needs_ffmpeg(file: Path) -> bool:
    return file.suffix.lower() in FFMPEG_SUFFIXES


def _require_ffmpeg(file: Path) -> None:
    if importlib.util.find_spec("imageio_ffmpeg") is None:
        raise FramepredError(
            f"{file}: reading {file.suffix} files needs the video extra: {VIDEO_EXTRA} "
            "(imageio-ffmpeg, which ships ffmpeg)"
        )


def probe(file: Path) -> tuple[int, int, int]:
    """(frames, height, width) of a file, without decoding it whole where avoidable."""
    if _needs_ffmpeg(file):
        import imageio_ffmpeg

        reader = imageio_ffmpeg.read_frames(str(file))
        meta = next(reader)
        reader.close()
        width, height = meta["size"]
        frames, _ = imageio_ffmpeg.count_frames_and_secs(str(file))
        return int(frames), int(height), int(width)
    with Image.open(file) as image:
        width, height = image.size
        # n_frames walks the whole GIF/APNG, which also finds a truncated file.
        return int(getattr(image, "n_frames", 1)), int(height), int(width)


class VideoFiles(SequenceSource):
    """One sequence per animated image or video file, decoded whole and cached."""

    parallel_reads = 1  # Pillow decodes frame by frame: see SequenceSource

    def __init__(self, root: Path, frame_format: FrameFormat, bad_files: BadFiles):
        self.root = root
        self.format = frame_format
        self.files: list[Path] = []
        self.lengths: list[int] = []
        for file in video_files(root):
            if _needs_ffmpeg(file):
                _require_ffmpeg(file)  # a missing extra is no bad file: always an error
            try:
                frames, height, width = probe(file)
            except Exception as error:  # Pillow and ffmpeg raise many types for a bad file
                bad_files(file, error)
                continue
            frame_format.check_size(height, width, str(file))
            self.files.append(file)
            self.lengths.append(frames)
        if not self.files:
            raise FramepredError(
                f"data.path={root} holds no video files: expected "
                f"{', '.join(PILLOW_SUFFIXES + FFMPEG_SUFFIXES)}"
            )
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._file_locks = [threading.Lock() for _ in self.files]

    def __len__(self) -> int:
        return len(self.files)

    def num_frames(self, index: int) -> int:
        return self.lengths[index]

    def describe(self, index: int) -> str:
        return str(self.files[index])

    def read(self, index: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        return to_unit_float(self._decoded(index)[start:stop])

    def _decoded(self, index: int) -> np.ndarray:
        with self._cache_lock:
            if index in self._cache:
                self._cache.move_to_end(index)
                return self._cache[index]
        with self._file_locks[index]:  # two windows of one file decode it once
            with self._cache_lock:
                if index in self._cache:
                    return self._cache[index]
            try:
                frames = self._decode(self.files[index])
            except Exception as error:
                raise FramepredError(f"cannot decode {self.files[index]}: {error}") from error
            with self._cache_lock:
                self._cache[index] = frames
                while sum(f.nbytes for f in self._cache.values()) > CACHE_BYTES and len(
                    self._cache
                ) > 1:
                    self._cache.popitem(last=False)
            return frames

    def _decode(self, file: Path) -> np.ndarray:
        """All frames of `file` at the configured format: [T, H, W, C], uint8 or float32."""
        if _needs_ffmpeg(file):
            import imageio_ffmpeg

            reader = imageio_ffmpeg.read_frames(str(file), pix_fmt="rgb24")
            width, height = next(reader)["size"]
            frames = [
                self.format.image(Image.frombytes("RGB", (width, height), data))
                for data in reader
            ]
        else:
            frames = []
            with Image.open(file) as image:
                for t in range(getattr(image, "n_frames", 1)):
                    image.seek(t)
                    frames.append(self.format.image(image))
        if any(f.dtype != np.uint8 for f in frames):
            frames = [to_unit_float(f) for f in frames]
        return np.stack(frames)
