"""Forecast new footage:  python -m framepred.predict checkpoint=PATH input=PATH output=DIR

    python -m framepred.predict checkpoint=outputs/framepred/<run>/checkpoints/best.keras \\
        input=clip.gif output=forecast/
    python -m framepred.predict checkpoint=... input=frames_folder/ output=out/ predict.steps=30
    python -m framepred.predict checkpoint=... input=clips/ output=out/ predict.sequence=2
    python -m framepred.predict checkpoint=... input=clip.npy output=out/ predict.start=0

`input` is what training takes (`framepred.data.clips`): a folder of frames, a folder
of sequence folders, an animated image, a video (with `pip install "framepred[video]"`)
or a .npy array of one or several sequences. It is read as the run read its data:
resized to its frame size, converted to its channels. The context is the last
`context_frames` frames (as the run was trained), so the forecast is of what comes
next; `predict.start=N` puts it at frame N instead, and frames after it are the
truth. Writes to `output` (to `output/<clip>/` for each of several clips):
forecast_01.png ... (one per forecast step), forecast.npy (float32 [steps, H, W, C]),
forecast.gif (context then forecast; truth on the left and forecast on the right
where the input has truth) and grid.png. A motion-head model (model.head=motion or
flow) also writes motion_01.png ... (its motion per step in flow colours) and
motion.npy (float32 [steps, H, W, 2], (dy, dx) in pixels), and grid.png gains a motion
row. A failed predict leaves no folder behind that holds only its log
(framepred.errors.after_failure).
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig

import framepred  # noqa: F401  (registers Keras objects, quiets TF start-up)
from framepred import config
from framepred.config import config_dir
from framepred.errors import FramepredError, exit_on_user_error, install_cli_error_handler

log = logging.getLogger("framepred.predict")
# Hydra's errors as one `framepred: error:` line; a misspelled key names the closest.
install_cli_error_handler("output", partial(config.unknown_key, config.PredictSchema))


def predict(cfg: DictConfig) -> dict:
    """Forecasts each chosen clip of `cfg.input` into `cfg.output`. Returns
    {"output", "context_frames", "steps", "clips": [{"name", "output", "start",
    "truth_frames", "files"}]}."""
    from framepred import models
    from framepred.data.clips import read_clips, warn_if_other_kind
    from framepred.run import trained

    config.validate_predict(cfg)
    model = trained.load_checkpoint(cfg.checkpoint)
    data_cfg = trained.data_config(cfg.checkpoint, cfg.data)
    normalization = trained.normalization(cfg.checkpoint, int(data_cfg.channels))
    context_frames = int(data_cfg.context_frames)
    steps = int(cfg.predict.steps) if cfg.predict.steps is not None else int(
        data_cfg.future_frames)
    # The motion head's largest shift: the full colour of the motion pictures.
    motion_radius = trained.run_config(cfg.checkpoint).model.get("motion_radius")
    clips = read_clips(cfg.input, data_cfg, cfg.predict.sequence)
    warn_if_other_kind(clips, data_cfg, normalization.units, f"input={cfg.input}")
    output = Path(str(cfg.output)).expanduser()
    written = []
    for clip in clips:
        where = f"input={cfg.input}" + (f" ({clip.name})" if len(clips) > 1 else "")
        start = _context_start(cfg.predict.start, len(clip.frames), context_frames, where)
        trained.check_frames(model, clip.frames.shape[1:3], clip.frames.shape[-1],
                             context_frames, where=where)
        # The model sees normalized frames; forecast.npy is in data units again.
        frames = normalization.forward(clip.frames)
        context = frames[start : start + context_frames]  # [Tc, H, W, C]
        truth = frames[start + context_frames : start + context_frames + steps]
        forecast = models.forecast(model, context[None], steps)[0]  # [steps, H, W, C]
        # [1, steps, H, W, 2] -> [steps, H, W, 2]; None without a motion head.
        motion = models.motion_fields(model, context[None], steps, forecasts=forecast[None])
        folder = output / clip.name if len(clips) > 1 else output
        files = _write(folder, context, truth, forecast, normalization.inverse(forecast),
                       float(cfg.predict.fps), cfg.visualize,
                       motion=None if motion is None else motion[0], motion_radius=motion_radius)
        log.info("%s: context frames %d-%d of %d, forecast: %d step(s), truth in input: "
                 "%d frame(s); wrote %s", clip.name, start, start + context_frames - 1,
                 len(clip.frames), steps, len(truth), folder)
        written.append({"name": clip.name, "output": str(folder), "start": start,
                        "truth_frames": len(truth), "files": [str(f) for f in files]})
    return {"output": str(output), "context_frames": context_frames, "steps": steps,
            "clips": written}


def _context_start(start: int | None, frames: int, context_frames: int, where: str) -> int:
    """The first context frame: `start`, or the last `context_frames` frames."""
    if frames < context_frames:
        raise FramepredError(
            f"{where} has {frames} frame(s); the checkpoint was trained on "
            f"context_frames={context_frames}, so give at least {context_frames}")
    if start is None:
        return frames - context_frames
    if start + context_frames > frames:
        raise FramepredError(
            f"predict.start={start} leaves {max(0, frames - start)} context frame(s) in "
            f"{where} ({frames} frames), but the checkpoint reads {context_frames}; give "
            f"predict.start={frames - context_frames} or less")
    return start


def _write(folder: Path, context, truth, forecast, forecast_units, fps: float,
           options, motion=None, motion_radius: float | None = None) -> list[Path]:
    """PNG per forecast step, forecast.npy (data units), forecast.gif and grid.png in
    `folder`; the pictures show what the model sees (normalized), one channel through
    a colormap as `options` (`visualize.channel`, `visualize.colormap`) say. With a
    motion head's `motion` [steps, H, W, 2] also its files (`_write_motion`) and a
    motion row in grid.png."""
    from framepred import visualize

    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "forecast.npy", np.asarray(forecast_units, np.float32))
    channel, colormap = int(options.channel), str(options.colormap)
    raw = (context, truth, forecast)  # [T, H, W, C] -> pictures [T, H, W, 1 or 3]
    context, truth, forecast = (visualize.picture(frames, channel, colormap) for frames in raw)

    steps = len(forecast)
    digits = max(2, len(str(steps)))
    # Enlarged as the GIF and the grid are: a 16x16 forecast is a speck at its own size.
    scale = visualize.display_scale(forecast.shape[1:3], target=128)
    files = [visualize.save_png(folder / f"forecast_{t:0{digits}d}.png",
                                visualize.upscale(frame, scale))
             for t, frame in enumerate(forecast, start=1)]
    played = visualize.upscale(np.concatenate([context, forecast]), scale)  # [Tc + steps, ...]
    if len(truth):
        # Truth on the left, forecast on the right; blank once the input's truth ends.
        blank = np.zeros((steps - len(truth), *truth.shape[1:]), np.float32)
        truth_played = visualize.upscale(np.concatenate([context, truth, blank]), scale)
        played = visualize.side_by_side(truth_played, played)
    gif = visualize.save_gif(folder / "forecast.gif",
                             visualize.progress_bar(played, len(context)), fps=fps)
    files += [folder / "forecast.npy", gif]
    if motion is not None:
        files += _write_motion(folder, motion, motion_radius, scale)
    grid = _grid(*raw, options, motion, motion_radius)
    return [*files, visualize.save_png(folder / "grid.png", grid)]


def _write_motion(folder: Path, motion, max_displacement: float | None,
                  scale: int = 1) -> list[Path]:
    """A motion-head model's motion `[steps, H, W, 2]`: motion.npy ((dy, dx) in pixels)
    and motion_01.png ... in flow colours, full colour at `max_displacement` pixels
    (`visualize.flow_to_rgb`), numbered and enlarged (`scale`) as the forecast PNGs."""
    from framepred import visualize

    np.save(folder / "motion.npy", np.asarray(motion, np.float32))
    colours = visualize.flow_to_rgb(motion, max_displacement)  # uint8 [steps, H, W, 3]
    digits = max(2, len(str(len(motion))))
    files = [visualize.save_png(folder / f"motion_{t:0{digits}d}.png",
                                visualize.upscale(colour / 255.0, scale))
             for t, colour in enumerate(colours, start=1)]
    return [*files, folder / "motion.npy"]


def _grid(context, truth, forecast, options, motion=None, max_displacement=None):
    """grid.png's picture: the forecast grid where the input has truth, else the context
    and forecast rows; a motion row last when `motion` is given."""
    from framepred import visualize

    channel, colormap = int(options.channel), str(options.colormap)
    scale = visualize.display_scale(np.shape(forecast)[1:3], target=128)
    if len(truth):
        return visualize.forecast_grid(context, truth, forecast, scale=scale, channel=channel,
                                       colormap=colormap, motion=motion,
                                       max_displacement=max_displacement)
    rows = [visualize.picture(frames, channel, colormap) for frames in (context, forecast)]
    names = (visualize.FORECAST_ROWS[0], visualize.FORECAST_ROWS[2])  # context, forecast
    return visualize.grid_with_motion(rows, motion, max_displacement, scale=scale,
                                      labels=names)


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="predict")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        predict(cfg)


if __name__ == "__main__":
    main()
