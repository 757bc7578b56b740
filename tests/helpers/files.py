"""Files of the kinds users bring (frame folders, arrays of video), and fingerprints of folders."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image


def snapshot(folder: Path, skip=()) -> dict:
    """Every file under `folder`: content hash and modification time."""
    return {
        str(path.relative_to(folder)): (hashlib.sha256(path.read_bytes()).hexdigest(),
                                        path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not any(part in skip for part in path.relative_to(folder).parts)
    }


def write_frames(folder: Path, frames, name: str = "frame{}.png") -> Path:
    """uint8 frames [T, H, W] or [T, H, W, 3] -> one image file per frame."""
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / name.format(t))
    return folder


def write_clips(root: Path, sequences: int = 4, frames: int = 8, size: int = 16) -> Path:
    """`sequences` folders clip0/ ... of `frames` random gray PNGs of size x size."""
    rng = np.random.default_rng(0)
    for s in range(sequences):
        write_frames(root / f"clip{s}", rng.integers(0, 256, (frames, size, size), np.uint8),
                     name="{}.png")
    return root


def moving_squares(frames: int, sequences: int, size: int = 16, side: int = 6,
                   seed: int = 0) -> np.ndarray:
    """Smooth video in Moving MNIST's layout, uint8 [T, N, size, size]: in each sequence
    a white square crosses the frame one pixel per frame, bouncing off the sides."""
    rng = np.random.default_rng(seed)
    video = np.zeros((frames, sequences, size, size), np.uint8)
    room = size - side
    for n in range(sequences):
        row, start = rng.integers(0, room + 1, 2)
        for t in range(frames):
            column = room - abs((start + t) % (2 * room) - room)  # bounces within [0, room]
            video[t, n, row:row + side, column:column + side] = 255
    return video
