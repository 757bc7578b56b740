"""Pictures of sequences: frame grids, forecast grids, animated GIFs and motion.

Everything here takes float frames in [0, 1], `[T, H, W, C]` with C = 1 (gray)
or 3 (RGB), and returns or writes 8-bit pictures; numpy and Pillow only, so the
data preview, TensorBoard images and `predict` all draw sequences the same way.
Motion fields `[..., H, W, 2]` (dy, dx) in pixels are drawn in the optical-flow
colour code (`flow_to_rgb`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

# Forecast-grid row order, written left of each row; TensorBoard's image caption and
# docs/dashboards.md name them too.
FORECAST_ROWS = ("context", "truth", "forecast", "abs error")
MOTION_ROW = "motion"  # the row a motion-head model's grid adds (`grid_with_motion`)
# The lines between a grid's cells and between a GIF's panels: grey, since white lines
# vanish between white cells (dry pixels in the radar colormap, still motion, bright
# scenes) and black ones between black cells (digits' background).
GRID_PAD = 0.5
LABEL_SIZE = 11  # pixels: the row labels' font (Pillow's built-in one)
CONTEXT_COLOR = (0.6, 0.6, 0.6)  # the bars over context frames
FUTURE_COLOR = (1.0, 0.15, 0.15)  # and over future / forecast frames


# Colormaps for one channel in [0, 1]: (position, (r, g, b)) anchors, linear between.
COLORMAPS = {
    "gray": ((0.0, (0.0, 0.0, 0.0)), (1.0, (1.0, 1.0, 1.0))),
    # Radar-reflectivity-like: dry white, light rain blue, moderate green and yellow,
    # heavy red, extreme magenta (the usual NWS / pysteps-style ramp, simplified).
    "radar": ((0.0, (1.0, 1.0, 1.0)), (0.05, (0.75, 0.85, 1.0)), (0.2, (0.1, 0.4, 0.95)),
              (0.4, (0.1, 0.75, 0.2)), (0.6, (0.95, 0.9, 0.1)), (0.8, (0.95, 0.2, 0.1)),
              (1.0, (0.75, 0.1, 0.8))),
    # Perceptually ordered, after matplotlib's viridis (five of its anchors).
    "viridis": ((0.0, (0.267, 0.005, 0.329)), (0.25, (0.229, 0.322, 0.546)),
                (0.5, (0.128, 0.567, 0.551)), (0.75, (0.369, 0.789, 0.383)),
                (1.0, (0.993, 0.906, 0.144))),
}


def picture(frames, channel: int = 0, colormap: str = "auto") -> np.ndarray:
    """Frames of any channel count as pictures `[..., H, W, 1 or 3]` in [0, 1].

    `auto` keeps gray (1 channel) and RGB (3 channels) as they are and shows any
    other count's `channel` in gray; a named colormap (`COLORMAPS`) shows `channel`
    through it. Values are clipped to [0, 1], the range normalized frames lie in.
    """
    frames = np.asarray(frames, dtype=np.float32)
    count = frames.shape[-1]
    if colormap == "auto" and count in (1, 3):
        return frames
    if not 0 <= channel < count:
        raise ValueError(f"visualize.channel={channel}, but the frames have {count} channel(s)")
    values = np.clip(frames[..., channel], 0.0, 1.0)  # [..., H, W]
    if colormap in ("auto", "gray"):
        return values[..., None]
    anchors = COLORMAPS[colormap]
    positions = [position for position, _ in anchors]
    return np.stack([np.interp(values, positions, [colour[i] for _, colour in anchors])
                     for i in range(3)], axis=-1).astype(np.float32)


def _as_frames(frames, name: str = "frames") -> np.ndarray:
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim == 3:  # [T, H, W] -> [T, H, W, 1]
        frames = frames[..., None]
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3):
        raise ValueError(f"{name} must be [T, H, W, C] with C = 1 or 3; got {frames.shape}")
    return frames


def as_rgb(frames) -> np.ndarray:
    """`[..., H, W, 1]` gray frames repeated to RGB `[..., H, W, 3]`; RGB as it is."""
    frames = np.asarray(frames, dtype=np.float32)
    return np.repeat(frames, 3, axis=-1) if frames.shape[-1] == 1 else frames


def upscale(frames: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement of the two axes before the channels, so tiny
    frames stay sharp (TensorBoard shows images at their own size)."""
    if factor <= 1:
        return frames
    return np.repeat(np.repeat(frames, factor, axis=-3), factor, axis=-2)


def display_scale(frame_size: Sequence[int], target: int = 64) -> int:
    """Integer factor that brings the smaller frame side to about `target` pixels."""
    return max(1, target // max(1, min(frame_size)))


def frame_grid(rows: Sequence, pad: int = 2, pad_value: float = 1.0, scale: int = 1) -> np.ndarray:
    """Lays sequences out as rows of frames: float32 `[H', W', C]` in [0, 1].

    Args:
        rows: Sequences `[T_i, H, W, C]` (or `[T_i, H, W]`), one per row; rows may
            differ in length, shorter ones end in blank (pad-coloured) cells.
        pad: Pixels of `pad_value` between cells and around the grid.
        pad_value: Brightness of the padding (1.0 white lines between cells).
        scale: Nearest-neighbour enlargement of every frame first.
    """
    rows = [upscale(_as_frames(row, f"rows[{i}]"), scale) for i, row in enumerate(rows)]
    if not rows:
        raise ValueError("frame_grid needs at least one row")
    height, width, channels = rows[0].shape[1:]
    if any(row.shape[1:] != (height, width, channels) for row in rows):
        raise ValueError(f"frame_grid rows differ in frame shape: {[r.shape for r in rows]}")
    columns = max(len(row) for row in rows)
    grid = np.full(
        (pad + len(rows) * (height + pad), pad + columns * (width + pad), channels),
        pad_value, dtype=np.float32,
    )
    for r, row in enumerate(rows):
        for c, frame in enumerate(row):
            top, left = pad + r * (height + pad), pad + c * (width + pad)
            grid[top : top + height, left : left + width] = frame
    return grid


def forecast_grid(context, truth, forecast, scale: int = 1, channel: int = 0,
                  colormap: str = "auto", motion=None,
                  max_displacement: float | None = None, labels: bool = True) -> np.ndarray:
    """One sequence's forecast as a grid `[H', W', C]`: rows are the context
    frames, the ground-truth future, the forecast and |truth - forecast|, each
    drawn through `picture(channel, colormap)`; with `motion` [steps, H, W, 2] a
    fifth row of it in flow colours (`grid_with_motion`), the grid then in RGB.
    With `labels`, each row's name (FORECAST_ROWS, MOTION_ROW) stands left of it."""
    truth, forecast = np.asarray(truth, np.float32), np.asarray(forecast, np.float32)
    steps = min(len(truth), len(forecast))
    error = np.abs(truth[:steps] - forecast[:steps])
    rows = [picture(row, channel, colormap) for row in (context, truth, forecast, error)]
    return grid_with_motion(rows, motion, max_displacement, scale=scale,
                            labels=FORECAST_ROWS if labels else None)


def label_rows(grid, labels: Sequence[str], row_height: int, pad: int = 2) -> np.ndarray:
    """`grid` `[H', W', C]` (rows of cells `row_height` high, `pad` apart, as
    `frame_grid` lays them out) with a white column on its left that names each row
    in black: `[H', L + W', C]`. A name taller than its row is cut to the row."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=LABEL_SIZE)
    width = 2 * pad + max(int(np.ceil(font.getlength(label))) for label in labels)
    column = Image.new("L", (width, grid.shape[0]), 255)
    for index, label in enumerate(labels):
        top = pad + index * (row_height + pad)
        band = Image.new("L", (width, row_height), 255)
        _, text_top, _, text_bottom = font.getbbox(label)
        ImageDraw.Draw(band).text(
            (pad, (row_height - (text_bottom - text_top)) // 2 - text_top), label, fill=0,
            font=font)
        column.paste(band, (0, top))
    # [H', L] -> [H', L, C]
    strip = np.repeat((np.asarray(column, np.float32) / 255.0)[..., None], grid.shape[-1], -1)
    return np.concatenate([strip, grid], axis=1)


def to_uint8(image) -> np.ndarray:
    """[0, 1] floats -> uint8, clipped; a single channel is dropped for Pillow."""
    image = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    image = np.round(image * 255.0).astype(np.uint8)
    return image[..., 0] if image.shape[-1] == 1 else image


def save_png(path: str | Path, image) -> Path:
    """Writes one frame or grid `[H, W, C]` in [0, 1] as PNG."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(image)).save(path)
    return path


def progress_bar(frames, forecast_from: int, height: int = 2) -> np.ndarray:
    """Appends a bar under each frame `[T, H, W, C]` -> RGB `[T, H+height, W, 3]`:
    its length grows with the frame index, gray over the context and red over the
    forecast, so a viewer sees where the forecast starts. It also keeps every GIF
    frame distinct: Pillow merges identical consecutive frames into one, which
    would change the frame count."""
    frames = as_rgb(frames)
    count, _, width, _ = frames.shape
    bar = np.zeros((count, height, width, 3), np.float32)
    for index in range(count):
        # Strictly growing lengths (1 ... width) while width allows.
        length = max(1, int(round(width * (index + 1) / count)))
        color = CONTEXT_COLOR if index < forecast_from else FUTURE_COLOR
        bar[index, :, :length] = color
    return np.concatenate([frames, bar], axis=1)


def save_gif(path: str | Path, frames, fps: float = 5.0) -> Path:
    """Writes `[T, H, W, C]` frames in [0, 1] as an animated GIF that loops.

    Pillow drops a frame identical to the one before (it lengthens the earlier
    one), so a still sequence plays as fewer frames; `progress_bar` avoids that.
    """
    from PIL import Image

    frames = _as_frames(frames)
    if fps <= 0:
        raise ValueError(f"fps must be > 0; got {fps}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(to_uint8(frame)) for frame in frames]
    images[0].save(
        path, save_all=True, append_images=images[1:], duration=int(round(1000 / fps)),
        loop=0, optimize=False,
    )
    return path


def side_by_side(*panels, pad: int = 2, pad_value: float = GRID_PAD) -> np.ndarray:
    """Joins equally long sequences `[T, H, W, C]` left to right, per frame."""
    panels = [_as_frames(panel) for panel in panels]
    count, height, _, channels = panels[0].shape
    divider = np.full((count, height, pad, channels), pad_value, np.float32)
    pieces = []
    for index, panel in enumerate(panels):
        if index:
            pieces.append(divider)
        pieces.append(panel)
    return np.concatenate(pieces, axis=2)


def window_grid(windows, context_frames: int, scale: int = 1, pad: int = 2, channel: int = 0,
                colormap: str = "auto") -> np.ndarray:
    """Windows `[N, T, H, W, C]` as an RGB grid `[H', W', 3]`, one window per row,
    with a red bar between the context frames and the future frames."""
    windows = [as_rgb(_as_frames(picture(window, channel, colormap), f"windows[{i}]"))
               for i, window in enumerate(windows)]
    context = frame_grid([w[:context_frames] for w in windows], pad=pad, pad_value=GRID_PAD,
                         scale=scale)
    future = frame_grid([w[context_frames:] for w in windows], pad=pad, pad_value=GRID_PAD,
                        scale=scale)
    bar = np.empty((context.shape[0], pad, 3), np.float32)
    bar[:] = FUTURE_COLOR
    # [H', Wc, 3] | bar | [H', Wf, 3]; the future grid's own left padding follows the bar.
    return np.concatenate([context, bar, future[:, pad:]], axis=1)


# --- motion: the optical-flow colour code ---------------------------------------------

# The Middlebury colour wheel (Baker et al. 2011, "A Database and Evaluation Methodology
# for Optical Flow", IJCV 92): linear ramps between red, yellow, green, cyan, blue and
# magenta, with (15, 6, 4, 11, 13, 6) of its 55 hues on each, so that hues the eye
# tells apart (after the Munsell system) are about equally far apart in direction.
FLOW_WHEEL_STOPS = ((1, 0, 0), (1, 1, 0), (0, 1, 0), (0, 1, 1), (0, 0, 1), (1, 0, 1))
FLOW_WHEEL_HUES = (15, 6, 4, 11, 13, 6)


def flow_wheel() -> np.ndarray:
    """The colour wheel's 55 hues, float `[55, 3]` in [0, 1], from red (pointing right)
    on through yellow (down), cyan-blue (left) and violet (up)."""
    stops = np.asarray(FLOW_WHEEL_STOPS, np.float32)
    ramps = []
    for index, count in enumerate(FLOW_WHEEL_HUES):
        start, end = stops[index], stops[(index + 1) % len(stops)]
        ramps.append(start + (np.arange(count, dtype=np.float32)[:, None] / count) * (end - start))
    return np.concatenate(ramps)


def flow_to_rgb(field, max_displacement: float | None = None) -> np.ndarray:
    """Motion `[..., H, W, 2]`, (dy, dx) in pixels (y down, x right), as uint8 RGB
    `[..., H, W, 3]` in the Middlebury optical-flow colour code (Baker et al. 2011).

    Formula:

    ```python
    direction = (atan2(-dy, -dx) / pi + 1) / 2      # 0 ... 1 around the wheel
    hue = flow_wheel()[direction * 55]              # linear between its hues
    s = min(1, hypot(dy, dx) / max_displacement)    # the magnitude
    rgb = 255 * (1 - s * (1 - hue))                 # white (no motion) ... full hue
    ```

    The hue says where the content goes: right red, down yellow, left cyan-blue, up
    violet. The colour is paler the shorter the shift: no motion is white, a shift of
    `max_displacement` pixels or more is the full hue. (Middlebury darkens flow beyond
    its maximum; here it stays full, since a diagonal shift of the motion head's radius
    R in both axes is R * sqrt(2) long.) The wheel wraps round (55 hues, not
    Middlebury's 54 steps), so right is red whichever the sign of a zero dy.

    Args:
        field: `[..., H, W, 2]`, the last axis (dy, dx), framepred's order (Middlebury's
            own files hold (u, v) = (dx, dy)).
        max_displacement: Pixels drawn at full colour. Give the model's motion radius,
            so that pictures of different steps and sequences compare; None takes the
            longest shift in `field` (all of its leading axes together), and a field
            without motion is then white.
    """
    field = np.asarray(field, np.float32)
    if field.ndim < 3 or field.shape[-1] != 2:
        raise ValueError(f"flow_to_rgb takes a field [..., H, W, 2] of (dy, dx); got {field.shape}")
    dy, dx = field[..., 0], field[..., 1]
    magnitude = np.hypot(dy, dx)  # [..., H, W]
    if max_displacement is None:
        max_displacement = float(magnitude.max()) if magnitude.size else 0.0
    elif not max_displacement > 0:
        raise ValueError(f"max_displacement must be > 0 pixels; got {max_displacement}")
    saturation = (np.clip(magnitude / max_displacement, 0.0, 1.0) if max_displacement > 0
                  else np.zeros_like(magnitude))
    wheel = flow_wheel()
    hues = len(wheel)
    position = ((np.arctan2(-dy, -dx) / np.pi + 1.0) / 2.0 * hues) % hues  # [0, 55)
    below = np.floor(position).astype(np.int64)
    fraction = (position - below)[..., None]
    hue = (1.0 - fraction) * wheel[below % hues] + fraction * wheel[(below + 1) % hues]
    colour = 1.0 - saturation[..., None] * (1.0 - hue)  # [..., H, W, 3]
    return np.round(np.clip(colour, 0.0, 1.0) * 255.0).astype(np.uint8)


def flow_key(size: int = 65) -> np.ndarray:
    """The colour key, uint8 RGB `[size, size, 3]`: each pixel coloured as a shift from
    the centre to it, full colour at the rim (white outside it)."""
    centre = (size - 1) / 2.0
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) - centre
    field = np.stack([y, x], axis=-1)  # [size, size, 2]: (dy, dx) from the centre
    key = flow_to_rgb(field, max_displacement=max(centre, 1.0))
    key[np.hypot(y, x) > centre + 0.5] = 255
    return key


def grid_with_motion(rows: Sequence, motion=None, max_displacement: float | None = None,
                     scale: int = 1, labels: Sequence[str] | None = None) -> np.ndarray:
    """`frame_grid(rows)` with grey lines (GRID_PAD), and when `motion`
    `[steps, H, W, 2]` is given a last row (`MOTION_ROW`) of it in flow colours
    (`flow_to_rgb`): the grid is then RGB. `labels`: the rows' names, written left of
    them (`label_rows`), MOTION_ROW added for the motion row."""
    if motion is not None:
        colours = flow_to_rgb(motion, max_displacement).astype(np.float32) / 255.0
        rows = [*(as_rgb(_as_frames(row, f"rows[{i}]")) for i, row in enumerate(rows)), colours]
        labels = None if labels is None else [*labels, MOTION_ROW]
    grid = frame_grid(rows, pad_value=GRID_PAD, scale=scale)
    if labels is None:
        return grid
    return label_rows(grid, labels, row_height=_as_frames(rows[0]).shape[1] * scale)
