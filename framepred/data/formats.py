"""Frame format: how every disk source turns what it read into the configured frames.

Sources hand over frames as they found them (uint8, uint16 or float; gray, RGB,
RGBA; any size). `FrameFormat` resizes them to `data.frame_size` with
`data.interpolation`, converts them to `data.channels` and scales them to
float32 in [0, 1]. Gray is ITU-R 601-2 luma (0.299 R + 0.587 G + 0.114 B), the
weights Pillow's "L" conversion uses, so images and arrays turn gray alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from framepred.errors import FramepredError

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "area": Image.Resampling.BOX,  # the mean over each output pixel's footprint
}

# Pillow modes whose pixels are 8-bit and that convert("L"/"RGB") without loss of range.
_EIGHT_BIT = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}


def natural_key(path: str | Path) -> list:
    """Sort key that orders frame2 before frame10: digit runs compare as numbers."""
    name = Path(path).name
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


@dataclass(frozen=True)
class FrameFormat:
    frame_size: tuple[int, int]  # (height, width)
    channels: int
    resize: bool = True
    interpolation: str = "bilinear"
    # Pictures (uint8 / uint16 / floats in [0, 1]) are scaled to [0, 1] and stay there
    # after resizing; fields in physical units (`unit_range=False`) keep their values.
    unit_range: bool = True

    @classmethod
    def from_config(cls, data: Any) -> FrameFormat:
        height, width = data.frame_size
        # With data.normalize set, frames keep their data units until normalized.
        return cls((int(height), int(width)), int(data.channels), bool(data.resize),
                   str(data.interpolation), unit_range=str(data.normalize) == "none")

    def in_data_units(self) -> FrameFormat:
        """The same format for fields in physical units: values kept, not scaled."""
        return replace(self, unit_range=False)

    def check_size(self, height: int, width: int, where: str) -> None:
        """With data.resize=false every frame must already be frame_size."""
        if not self.resize and (height, width) != self.frame_size:
            wanted = list(self.frame_size)
            raise FramepredError(
                f"{where}: frames are {height}x{width} (HxW) but data.frame_size={wanted} and "
                f"data.resize=false; set data.resize=true to resize them or "
                f"data.frame_size=[{height}, {width}]"
            )

    # --- images (frames folders, animated images) -------------------------------

    def image(self, image: Image.Image) -> np.ndarray:
        """One Pillow image -> [H, W, C] at frame_size: uint8 for 8-bit images, else float32."""
        if image.mode in _EIGHT_BIT:
            # Pillow converts and resizes 8-bit images in C, far faster than NumPy.
            mode = "L" if self.channels == 1 else "RGB"
            if image.mode != mode:
                image = image.convert(mode)
            if image.size != self.frame_size[::-1]:
                image = image.resize(self.frame_size[::-1], RESAMPLING[self.interpolation])
            pixels = np.asarray(image)
            return pixels[:, :, None] if pixels.ndim == 2 else pixels
        # 16-bit and float images ("I;16", "I", "F"): NumPy keeps their precision.
        pixels = np.asarray(image)
        if image.mode.startswith("I"):
            pixels = pixels.astype(np.float32) / 65535.0
        return self.array(pixels[None])[0]

    # --- arrays (.npy, decoded video) -------------------------------------------

    def array(self, frames: np.ndarray) -> np.ndarray:
        """[T, H, W] or [T, H, W, C] (uint8, uint16 or float) -> float32 [T, H', W', C']."""
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[..., None]  # [T, H, W] -> [T, H, W, 1]
        frames = to_unit_float(frames) if self.unit_range else frames.astype(np.float32)
        pictures = self.channels in (1, 3)
        if pictures and frames.shape[-1] in (2, 4):
            frames = frames[..., :-1]  # drop alpha
        if pictures and frames.shape[-1] == 3 and self.channels == 1:
            frames = (frames @ LUMA)[..., None]  # [T, H, W, 3] -> [T, H, W, 1]
        elif pictures and frames.shape[-1] == 1 and self.channels == 3:
            frames = np.repeat(frames, 3, axis=-1)
        if frames.shape[-1] != self.channels:
            # Variables are not colours: N channels convert to no other number.
            raise FramepredError(
                f"frames have {frames.shape[-1]} channel(s) but data.channels={self.channels}; "
                f"set data.channels={frames.shape[-1]}")
        if frames.shape[1:3] != self.frame_size:
            frames = self._resize_float(frames)
        return np.ascontiguousarray(frames, dtype=np.float32)

    def _resize_float(self, frames: np.ndarray) -> np.ndarray:
        height, width = self.frame_size
        method = RESAMPLING[self.interpolation]
        out = np.empty((frames.shape[0], height, width, frames.shape[-1]), dtype=np.float32)
        for t in range(frames.shape[0]):
            for c in range(frames.shape[-1]):
                plane = Image.fromarray(np.ascontiguousarray(frames[t, :, :, c]))  # mode "F"
                out[t, :, :, c] = np.asarray(plane.resize((width, height), method))
        # Bicubic and Lanczos overshoot at edges; pictures stay in [0, 1].
        return np.clip(out, 0.0, 1.0, out=out) if self.unit_range else out


def to_unit_float(frames: np.ndarray) -> np.ndarray:
    """uint8 / uint16 scaled by their maximum to [0, 1]; floats as float32."""
    if frames.dtype == np.uint8:
        return frames.astype(np.float32) * np.float32(1.0 / 255.0)
    if frames.dtype == np.uint16:
        return frames.astype(np.float32) * np.float32(1.0 / 65535.0)
    return frames.astype(np.float32, copy=False)
