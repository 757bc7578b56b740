"""Forecast new footage:  python -m framepred.predict checkpoint=PATH input=PATH output=DIR

    python -m framepred.predict checkpoint=outputs/framepred/<run>/checkpoints/best.keras \\
        input=clip.gif output=forecast/
    python -m framepred.predict checkpoint=... input=frames_folder/ output=out/ predict.steps=30
    python -m framepred.predict checkpoint=... input=sequence.npy output=out/ predict.fps=10

`input` is a folder of frames (PNG, JPEG, BMP, TIFF; sorted naturally), an
animated image (GIF, APNG, WebP, multi-page TIFF), a video (.mp4/.avi/.mov/.mkv/
.webm, with `pip install "framepred[video]"`) or a .npy array [T, H, W] or
[T, H, W, C] (uint8 0-255 or floats in [0, 1]). Its first `context_frames` frames
(as the run was trained) are the context; frames after them, if any, are the
ground truth. Writes to `output`: forecast_01.png ... (one per forecast step),
forecast.npy (float32 [steps, H, W, C]), forecast.gif (context then forecast; truth
on the left and forecast on the right where the input has truth) and grid.png.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig

import framepred  # noqa: F401  (registers Keras objects, quiets TF start-up)
from framepred.config import config_dir
from framepred.data.files import IMAGE_SUFFIXES
from framepred.data.formats import natural_key
from framepred.data.videos import FFMPEG_SUFFIXES, PILLOW_SUFFIXES
from framepred.errors import FramepredError, exit_on_user_error, install_cli_error_handler

log = logging.getLogger("framepred.predict")
install_cli_error_handler()  # Hydra's errors as one `framepred: error:` line

# --- reading one input sequence ----------------------------------------------------
# framepred.data's sources split and convert a whole data set to the configured
# format (RGB turns gray silently). Here one file is read as it is, float32
# [T, H, W, C] in [0, 1] with C = 1 for gray and 3 for colour, so a mismatch with
# the checkpoint is reported instead of converted away.


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


def read_sequence(path: str | Path) -> np.ndarray:
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


# --- the forecast ---------------------------------------------------------------------


def predict(cfg: DictConfig) -> dict:
    """Forecasts after the context of `cfg.input`; writes to `cfg.output`. Returns
    {"output", "context_frames", "steps", "truth_frames", "files"}."""
    from framepred import checkpoints, models, visualize

    checkpoints.require_keys(cfg, ("checkpoint", "input", "output"),
                             "checkpoint=<run>/checkpoints/best.keras input=clip.gif output=out/")
    model = checkpoints.load_checkpoint(cfg.checkpoint)
    trained = checkpoints.run_config(cfg.checkpoint).data
    context_frames = int(trained.context_frames)
    steps = int(cfg.predict.steps) if cfg.predict.steps is not None else int(trained.future_frames)
    if steps < 1:
        raise FramepredError(f"predict.steps={steps} must be >= 1 (or null: as trained, "
                             f"{trained.future_frames})")
    if float(cfg.predict.fps) <= 0:
        raise FramepredError(f"predict.fps={cfg.predict.fps} must be > 0")

    expected = checkpoints.expected_frames(model)
    frames = match_channels(read_sequence(cfg.input), expected["channels"])
    checkpoints.check_frames(model, frames.shape[1:3], frames.shape[-1],
                             min(len(frames), context_frames), where=f"input={cfg.input}")
    if len(frames) < context_frames:
        raise FramepredError(
            f"input={cfg.input} has {len(frames)} frame(s); the checkpoint was trained on "
            f"context_frames={context_frames}, so give at least {context_frames}")

    context = frames[:context_frames]  # [Tc, H, W, C]
    truth = frames[context_frames : context_frames + steps]  # [<= steps, H, W, C]
    forecast = models.forecast(model, context[None], steps)[0]  # [steps, H, W, C]

    output = Path(str(cfg.output)).expanduser()
    output.mkdir(parents=True, exist_ok=True)
    digits = max(2, len(str(steps)))
    files = [visualize.save_png(output / f"forecast_{t:0{digits}d}.png", frame)
             for t, frame in enumerate(forecast, start=1)]
    np.save(output / "forecast.npy", forecast.astype(np.float32))

    scale = visualize.display_scale(forecast.shape[1:3], target=128)
    played = visualize.upscale(np.concatenate([context, forecast]), scale)  # [Tc + steps, ...]
    if len(truth):
        # Truth on the left, forecast on the right; blank once the input's truth ends.
        blank = np.zeros((steps - len(truth), *truth.shape[1:]), np.float32)
        truth_played = visualize.upscale(np.concatenate([context, truth, blank]), scale)
        played = visualize.side_by_side(truth_played, played)
        grid = visualize.forecast_grid(context, truth, forecast, scale=scale)
    else:
        grid = visualize.frame_grid([context, forecast], scale=scale)
    gif = visualize.save_gif(
        output / "forecast.gif",
        visualize.progress_bar(played, context_frames),
        fps=float(cfg.predict.fps))
    grid_png = visualize.save_png(output / "grid.png", grid)
    files += [output / "forecast.npy", gif, grid_png]

    log.info("context: %d frame(s), forecast: %d step(s), truth in input: %d frame(s)",
             context_frames, steps, len(truth))
    log.info("wrote %s ... %s, %s, %s to %s", files[0].name, files[steps - 1].name,
             gif.name, grid_png.name, output)
    return {"output": str(output), "context_frames": context_frames, "steps": steps,
            "truth_frames": len(truth), "files": [str(f) for f in files]}


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="predict")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        predict(cfg)


if __name__ == "__main__":
    main()
