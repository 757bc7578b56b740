"""Look at a data source before training on it:

    python -m framepred.data.preview data=frames data.path=clips/
    python -m framepred.data.preview data=npy data.path=mnist_test_seq.npy preview.windows=8

Reads a few training windows exactly as training would (same source, split,
resize and channels) and writes `preview.png`, one window per row with a red bar
between context and future frames, and `preview.gif`, the windows side by side
frame by frame, a green bar over context frames and a red one over the future.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig
from PIL import Image

from framepred.config import config_dir, validate_data
from framepred.errors import FramepredError, exit_on_user_error, install_cli_error_handler

log = logging.getLogger("framepred.preview")
install_cli_error_handler()  # Hydra's errors as one `framepred: error:` line

GAP = 2  # px between frames
CONTEXT_COLOR = (40, 170, 60)
FUTURE_COLOR = (210, 40, 40)


def sample_windows(data, count: int) -> np.ndarray:
    """`count` training windows spread over the split: float32 [N, T, H, W, C]."""
    from framepred.data import build_source, window_length

    source = build_source(data, "train")
    length = window_length(data)
    index = source.windows(length, data.stride or length)
    picks = sorted({int(i) for i in np.linspace(0, len(index) - 1, min(count, len(index)))})
    return np.stack([source.read(seq, start, start + length)
                     for seq, start in (index[i] for i in picks)])


def _to_rgb(frames: np.ndarray, scale: int) -> np.ndarray:
    """float [..., H, W, C] in [0, 1] -> uint8 [..., H*scale, W*scale, 3]."""
    pixels = np.rint(np.clip(frames, 0.0, 1.0) * 255).astype(np.uint8)
    if pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    return pixels.repeat(scale, axis=-3).repeat(scale, axis=-2)


def grid(windows: np.ndarray, context_frames: int, scale: int) -> np.ndarray:
    """[N, T, H, W, C] -> uint8 RGB image: one window per row, a bar after the context."""
    n, t = windows.shape[:2]
    tiles = _to_rgb(windows, scale)  # [N, T, h, w, 3]
    h, w = tiles.shape[2:4]
    bar = 2 * GAP
    image = np.full((n * (h + GAP) + GAP, t * (w + GAP) + GAP + bar, 3), 255, np.uint8)
    for row in range(n):
        y = GAP + row * (h + GAP)
        for col in range(t):
            x = GAP + col * (w + GAP) + (bar if col >= context_frames else 0)
            image[y:y + h, x:x + w] = tiles[row, col]
    x = GAP + context_frames * (w + GAP)
    image[:, x:x + bar - GAP] = FUTURE_COLOR
    return image


def animation(windows: np.ndarray, context_frames: int, scale: int) -> list[Image.Image]:
    """One image per time step: the windows side by side under a context/future bar."""
    n, t = windows.shape[:2]
    tiles = _to_rgb(windows, scale)
    h, w = tiles.shape[2:4]
    frames = []
    for step in range(t):
        image = np.full((h + 4 * GAP, n * (w + GAP) + GAP, 3), 255, np.uint8)
        image[:2 * GAP] = CONTEXT_COLOR if step < context_frames else FUTURE_COLOR
        for col in range(n):
            x = GAP + col * (w + GAP)
            image[3 * GAP:3 * GAP + h, x:x + w] = tiles[col, step]
        frames.append(Image.fromarray(image))
    return frames


def preview(cfg: DictConfig, output_dir: str | Path) -> tuple[Path, Path]:
    """Writes preview.png and preview.gif of `cfg.preview.windows` training windows."""
    validate_data(cfg.data)
    if cfg.preview.windows < 1:
        raise FramepredError(f"preview.windows={cfg.preview.windows} must be >= 1")
    windows = sample_windows(cfg.data, int(cfg.preview.windows))
    context = int(cfg.data.context_frames)
    scale = max(1, -(-64 // min(windows.shape[2:4])))  # small frames drawn >= 64 px
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    png, gif = output / "preview.png", output / "preview.gif"
    Image.fromarray(grid(windows, context, scale)).save(png)
    first, *rest = animation(windows, context, scale)
    first.save(gif, save_all=True, append_images=rest, duration=250, loop=0)
    return png, gif


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="preview")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        output = cfg.preview.output
        if output is None:
            output = hydra.core.hydra_config.HydraConfig.get().runtime.output_dir
        png, gif = preview(cfg, output)
        print(f"preview: {cfg.preview.windows} training windows of "
              f"{cfg.data.context_frames} context + {cfg.data.future_frames} future frames")
        print(f"  grid:      {png}")
        print(f"  animation: {gif}")


if __name__ == "__main__":
    main()
