"""One clip read as it is, for `predict`: frames folder, animated image, video or .npy.

The training sources (`framepred.data`) split and convert a whole data set to the
configured format (RGB turns gray silently). Here one file is read as it is,
float32 [T, H, W, C] in [0, 1] with C = 1 for gray and 3 for colour, so that a
mismatch with the checkpoint is reported instead of converted away.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from framepred.data.files import IMAGE_SUFFIXES
from framepred.data.formats import natural_key
from framepred.data.videos import FFMPEG_SUFFIXES, PILLOW_SUFFIXES
from framepred.errors import FramepredError


def _image_array(image) -> np.ndarray:
    """A Pillow image -> [H, W, 1] (gray modes) or [H, W, 3] (colour), in [0, 1]."""
    if image.mode in ("1", "L", "LA", "I", "I;16", "F"):
        array = np.asarray(image.convert("L"), dtype=np.float32)[..., None]
    else:
        array = np.asarray(image.convert("RGB"), dtype=np.float32)
    return array / 255.0


def _stack(frames: list[np.ndarray], where: str) -> np.ndarray:
    shapes = sorted({frame.shape[:2] for frame in frames})
    if len(shapes) > 1:
        raise FramepredError(f"input={where} has frames of different sizes {shapes}; "
                             "give frames of one size")
    channels = max(frame.shape[-1] for frame in frames)
    # A mix of gray and colour files: show the gray ones as colour.
    return np.stack([np.repeat(f, channels // f.shape[-1], axis=-1) for f in frames])


def _read_array(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise FramepredError(f"input={path} cannot be read as a .npy array: {error}") from None
    if array.ndim == 5 and array.shape[0] == 1:  # [1, T, H, W, C]
        array = array[0]
    if array.ndim == 3:  # [T, H, W] -> [T, H, W, 1]
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3):
        raise FramepredError(
            f"input={path} has shape {array.shape}; give one sequence [T, H, W] or "
            "[T, H, W, C] with C = 1 or 3")
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    array = array.astype(np.float32)
    if not np.isfinite(array).all() or array.min() < 0.0 or array.max() > 1.0:
        raise FramepredError(
            f"input={path} holds {array.dtype} values outside [0, 1] (or NaN/inf); give uint8 "
            "0-255 or floats in [0, 1]")
    return array


def _read_video(path: Path) -> np.ndarray:
    try:
        import imageio_ffmpeg
    except ImportError:
        raise FramepredError(
            f"input={path} is a video; reading it needs the video extra: "
            'pip install "framepred[video]"') from None
    try:
        reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        width, height = next(reader)["size"]
        frames = [np.frombuffer(data, np.uint8).reshape(height, width, 3) for data in reader]
    except Exception as error:  # ffmpeg's failures come as several types
        raise FramepredError(f"input={path} cannot be read as a video: {error}") from None
    if not frames:
        raise FramepredError(f"input={path} holds no video frames")
    return np.stack(frames).astype(np.float32) / 255.0


def read_clip(path: str | Path) -> np.ndarray:
    """The frames of `path`: float32 [T, H, W, C] in [0, 1]."""
    from PIL import Image, ImageSequence, UnidentifiedImageError

    path = Path(str(path)).expanduser()
    if not path.exists():
        raise FramepredError(f"input={path} does not exist; give a folder of frames, an "
                             "animated image, a video or a .npy file")
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
                       key=natural_key)
        if not files:
            raise FramepredError(f"input={path} holds no frames ({', '.join(IMAGE_SUFFIXES)})")
        frames = []
        for file in files:
            try:
                with Image.open(file) as image:
                    frames.append(_image_array(image))
            except (OSError, UnidentifiedImageError) as error:
                raise FramepredError(f"frame {file} cannot be read: {error}") from None
        return _stack(frames, str(path))
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _read_array(path)
    if suffix in FFMPEG_SUFFIXES:
        return _read_video(path)
    if suffix in PILLOW_SUFFIXES:
        try:
            with Image.open(path) as image:
                frames = [_image_array(frame) for frame in ImageSequence.Iterator(image)]
        except (OSError, UnidentifiedImageError) as error:
            raise FramepredError(f"input={path} cannot be read as an image: {error}") from None
        return _stack(frames, str(path))
    raise FramepredError(
        f"input={path} has an unknown type {suffix!r}; give a folder of frames, "
        f"an animated image ({', '.join(PILLOW_SUFFIXES)}), a video "
        f"({', '.join(FFMPEG_SUFFIXES)}) or a .npy array")


def match_channels(frames: np.ndarray, channels: int) -> np.ndarray:
    """Colour frames whose three channels are equal are gray: a gray model takes them."""
    if frames.shape[-1] == 3 and channels == 1 and np.array_equal(
            frames[..., :1].repeat(3, axis=-1), frames):
        return frames[..., :1]
    return frames
