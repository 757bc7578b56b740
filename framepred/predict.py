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
from framepred.errors import FramepredError, exit_on_user_error, install_cli_error_handler

log = logging.getLogger("framepred.predict")
install_cli_error_handler("output")  # Hydra's errors as one `framepred: error:` line

def predict(cfg: DictConfig) -> dict:
    """Forecasts after the context of `cfg.input`; writes to `cfg.output`. Returns
    {"output", "context_frames", "steps", "truth_frames", "files"}."""
    from framepred import config, models, visualize
    from framepred.data.clips import match_channels, read_clip
    from framepred.run import trained

    config.validate_predict(cfg)
    model = trained.load_checkpoint(cfg.checkpoint)
    run_data = trained.run_config(cfg.checkpoint).data
    context_frames = int(run_data.context_frames)
    steps = int(cfg.predict.steps) if cfg.predict.steps is not None else int(run_data.future_frames)

    expected = trained.expected_frames(model)
    frames = match_channels(read_clip(cfg.input), expected["channels"])
    trained.check_frames(model, frames.shape[1:3], frames.shape[-1],
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
