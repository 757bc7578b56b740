"""data=frames: folders of image files, one subfolder per sequence.

    clips/                      data.path=clips
      walk_01/frame1.png ...    one sequence, frames in natural order (frame2 < frame10)
      walk_02/frame1.png ...
A folder that holds image files directly is one sequence. PNG, JPEG, BMP and TIFF.

Every file is opened when the source is built: its header gives the size
(checked against `data.frame_size` when `data.resize=false`) and `verify()`
checks its structure (PNG chunk checksums among others), so a corrupt or
truncated file is named before the first training step. With
`data.on_bad_file=skip`, a bad frame is left out and its sequence is cut in two
there, so no window jumps over the missing frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from framepred.data.files import IMAGE_SUFFIXES, BadFiles
from framepred.data.formats import FrameFormat, natural_key, to_unit_float
from framepred.data.source import SequenceSource
from framepred.errors import FramepredError


def image_files(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
        key=natural_key,
    )


def sequence_folders(root: Path) -> list[Path]:
    """`root` itself when it holds frames, else its subfolders, naturally sorted."""
    if root.is_file():
        raise FramepredError(
            f"data.path={root} is a file; data=frames reads a folder of sequence folders "
            "(use data=video for an animated image or video file, data=npy for an array)"
        )
    if image_files(root):
        return [root]
    return sorted((p for p in root.iterdir() if p.is_dir()), key=natural_key)


class FrameFolders(SequenceSource):
    """Sequences of image files; each frame is decoded when a window asks for it."""

    parallel_reads = 1  # Pillow decodes frame by frame: see SequenceSource

    def __init__(self, root: Path, frame_format: FrameFormat, bad_files: BadFiles):
        self.root = root
        self.format = frame_format
        self.sequences: list[list[Path]] = []
        for folder in sequence_folders(root):
            run: list[Path] = []
            for file in image_files(folder):
                try:
                    with Image.open(file) as image:
                        width, height = image.size
                        image.verify()
                except Exception as error:  # Pillow raises many types for a bad file
                    bad_files(file, error)
                    if run:  # cut the sequence at the missing frame
                        self.sequences.append(run)
                    run = []
                    continue
                frame_format.check_size(height, width, str(file))
                run.append(file)
            if run:
                self.sequences.append(run)
        if not self.sequences:
            raise FramepredError(
                f"data.path={root} holds no sequences: expected subfolders of frames, or frames "
                f"directly ({', '.join(IMAGE_SUFFIXES)})"
            )

    def __len__(self) -> int:
        return len(self.sequences)

    def num_frames(self, index: int) -> int:
        return len(self.sequences[index])

    def describe(self, index: int) -> str:
        files = self.sequences[index]
        return f"{files[0].parent} ({files[0].name}..{files[-1].name})"

    def read(self, index: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        frames = []
        for file in self.sequences[index][start:stop]:
            try:
                with Image.open(file) as image:
                    frames.append(self.format.image(image))
            except Exception as error:
                raise FramepredError(f"cannot decode {file}: {error}") from error
        if any(frame.dtype != np.uint8 for frame in frames):  # 16-bit or float frames
            frames = [to_unit_float(frame) for frame in frames]
        return to_unit_float(np.stack(frames))  # [T, H, W, C]
