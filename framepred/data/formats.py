"""Frame format: how every disk source turns what it read into the configured frames.

Sources hand over frames as they found them (uint8, uint16 or float; gray, RGB,
RGBA; any size). `FrameFormat` resizes them to `data.frame_size` with
`data.interpolation`, converts them to `data.channels` and scales them to
float32 in [0, 1]. Gray is ITU-R 601-2 luma (0.299 R + 0.587 G + 0.114 B), the
weights Pillow's "L" conversion uses, so images and arrays turn gray alike.

Channels convert only in pictures: image files, video, and arrays read with
`data.normalize=none`. Gray (1), RGB (3) and RGBA (4) turn into gray or RGB. Every
other source holds variables (rain rate, temperature), and luma weights, a dropped
"alpha" or a repeated "gray" would silently mix or lose them, so their
channel count must equal `data.channels`. So must a 2-channel array, whatever
`data.normalize` is: gray plus alpha is rare in an array, two variables common.
`FrameFormat.check_channels` says which counts a source may hold.
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
PICTURE_CHANNELS = (1, 3, 4)  # gray, RGB, RGBA: what converts to gray or RGB
WHERE_COLOURS_CONVERT = ("gray, RGB and RGBA convert to data.channels=1 or 3 only in pictures: "
                         "image files, video, and arrays read with data.normalize=none")

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
    normalize: str = "none"  # data.normalize, for messages

    @classmethod
    def from_config(cls, data: Any) -> FrameFormat:
        height, width = data.frame_size
        # With data.normalize set, frames keep their data units until normalized.
        normalize = str(data.normalize)
        return cls((int(height), int(width)), int(data.channels), bool(data.resize),
                   str(data.interpolation), unit_range=normalize == "none",
                   normalize=normalize)

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

    def converts(self, found: int, pictures: bool) -> bool:
        """Whether frames of `found` channels become data.channels: equal counts always;
        gray, RGB and RGBA to gray or RGB only in pictures (module docstring)."""
        return found == self.channels or (
            pictures and found in PICTURE_CHANNELS and self.channels in (1, 3))

    def check_channels(self, found: int, where: str, pictures: bool, how: str = "") -> None:
        """FramepredError, naming `where` (and `how` the count was read), unless frames of
        `found` channels become data.channels. A source calls it when it is built, so a
        mismatch stops before any work."""
        if self.converts(found, pictures):
            return
        head = (f"{where} holds {found} channel(s) per frame{f' ({how})' if how else ''}, "
                f"but data.channels={self.channels}; set data.channels={found}")
        if pictures and found != 2:
            raise FramepredError(
                f"{head}: only gray, RGB and RGBA pictures (1, 3 or 4 channels) convert, to "
                "data.channels=1 (gray) or 3 (RGB); any other count must match data.channels "
                "one to one")
        if pictures:
            why = "a 2-channel array holds two variables, never gray plus alpha"
        elif self.normalize != "none":
            why = f"with data.normalize={self.normalize} its channels are variables, not colours"
        else:
            why = "its channels are variables in data units, not colours"
        raise FramepredError(f"{head}: {why}, and variables must match data.channels one to "
                             f"one ({WHERE_COLOURS_CONVERT})")

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
        return self.array(pixels[None], pictures=True)[0]

    # --- arrays (.npy, decoded video) -------------------------------------------

    def array(self, frames: np.ndarray, *, pictures: bool) -> np.ndarray:
        """[T, H, W] or [T, H, W, C] (uint8, uint16 or float) -> float32 [T, H', W', C'].

        `pictures`: whether the channels are colours, which convert (`converts`);
        otherwise they are variables and must already be data.channels.
        """
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[..., None]  # [T, H, W] -> [T, H, W, 1]
        # Sources check their channels when built; this guards a reader that did not.
        self.check_channels(frames.shape[-1], "frames", pictures)
        frames = to_unit_float(frames) if self.unit_range else frames.astype(np.float32)
        if frames.shape[-1] != self.channels and frames.shape[-1] == 4:
            frames = frames[..., :3]  # RGBA -> RGB: drop alpha
        if frames.shape[-1] == 3 and self.channels == 1:
            frames = (frames @ LUMA)[..., None]  # [T, H, W, 3] -> [T, H, W, 1]
        elif frames.shape[-1] == 1 and self.channels == 3:
            frames = np.repeat(frames, 3, axis=-1)  # [T, H, W, 1] -> [T, H, W, 3]
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
