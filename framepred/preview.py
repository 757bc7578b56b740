"""Look at a data source before training on it:

    python -m framepred.preview data=frames data.path=clips/
    python -m framepred.preview data=npy data.path=mnist_test_seq.npy preview.windows=8
    python -m framepred.preview debug=fast      # the small data of train's debug=fast

Checks every split that training reads (train and val) as training does, so a
split without a window stops here as it would stop training, and reports each
split's sequences and windows. Then reads a few training windows exactly as
training would (same source, split, resize and channels) and writes, through
`framepred.visualize`, `preview.png`, one
window per row with a red bar between context and future frames, and
`preview.gif`, the windows side by side frame by frame, over a bar that is gray
during the context and red during the future.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig

from framepred import visualize
from framepred.config import PreviewSchema, config_dir, unknown_key, validate_preview
from framepred.errors import exit_on_user_error, install_cli_error_handler

log = logging.getLogger("framepred.preview")
# Hydra's errors as one `framepred: error:` line; a misspelled key names the closest.
install_cli_error_handler("preview.output", partial(unknown_key, PreviewSchema))


# The splits `train` reads: it fits on one and picks its best checkpoint on the other.
TRAINING_SPLITS = ("train", "val")


def split_windows(data) -> dict[str, tuple[int, int]]:
    """{split: (sequences, windows)} of each split `train` reads; the FramepredError
    train would stop with where a split has no window."""
    from framepred.data import count_windows

    return {split: count_windows(data, split) for split in TRAINING_SPLITS}


def sample_windows(data, count: int) -> tuple[np.ndarray, int]:
    """Up to `count` training windows spread over the split, float32 [N, T, H, W, C],
    and how many windows the split holds (N is fewer than `count` when that is)."""
    from framepred.data import build_source, window_length

    source = build_source(data, "train")
    length = window_length(data)
    index = source.window_starts(length, data.stride or length)
    picks = sorted({int(i) for i in np.linspace(0, len(index) - 1, min(count, len(index)))})
    windows = np.stack([source.read(seq, start, start + length)
                        for seq, start in (index[i] for i in picks)])
    return windows, len(index)


@dataclass(frozen=True)
class Preview:
    """What `preview` wrote: the files, the windows drawn and those the split holds."""

    png: Path
    gif: Path
    drawn: int  # windows drawn
    available: int
    splits: dict[str, tuple[int, int]]  # split_windows: each split train reads


def preview(cfg: DictConfig, output_dir: str | Path) -> Preview:
    """Writes preview.png and preview.gif of `cfg.preview.windows` training windows
    (all of them, when the training split holds fewer)."""
    validate_preview(cfg)
    splits = split_windows(cfg.data)
    windows, available = sample_windows(cfg.data, int(cfg.preview.windows))
    if str(cfg.data.normalize) != "none":  # drawn as the model will see them
        from framepred.data import fit_normalization

        windows = fit_normalization(cfg.data).forward(windows)
    channel, colormap = int(cfg.visualize.channel), str(cfg.visualize.colormap)
    context = int(cfg.data.context_frames)
    scale = visualize.display_scale(windows.shape[2:4])  # small frames drawn ~64 px
    output = Path(str(output_dir)).expanduser()
    png = visualize.save_png(output / "preview.png",
                             visualize.window_grid(windows, context, scale=scale,
                                                   channel=channel, colormap=colormap))
    # [N, T, H, W, C] -> [T, H, N*W (+ gaps), C]: the windows side by side, per frame.
    played = visualize.side_by_side(
        *visualize.upscale(visualize.picture(windows, channel, colormap), scale))
    gif = visualize.save_gif(output / "preview.gif",
                             visualize.progress_bar(played, context), fps=4.0)
    return Preview(png, gif, drawn=len(windows), available=available, splits=splits)


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="preview")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        output = cfg.preview.output
        if output is None:
            output = hydra.core.hydra_config.HydraConfig.get().runtime.output_dir
        written = preview(cfg, output)
        fewer = (f" (preview.windows={cfg.preview.windows}, but the training split holds "
                 f"only {written.available})" if written.drawn < cfg.preview.windows else "")
        print(f"preview: {written.drawn} training windows of {cfg.data.context_frames} context "
              f"+ {cfg.data.future_frames} future frames{fewer}")
        print("  splits:    " + "; ".join(
            f"{split} {sequences} sequence(s), {count} window(s)"
            for split, (sequences, count) in written.splits.items()))
        print(f"  grid:      {written.png}")
        print(f"  animation: {written.gif}")


if __name__ == "__main__":
    main()
