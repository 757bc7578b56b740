"""python -m framepred.preview: a PNG grid and a GIF of training windows."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from framepred.preview import preview, sample_windows
from tests.helpers.cli import error_lines, run_in_one_process
from tests.helpers.files import moving_squares, write_clips

TILE = 66  # a 16-px frame drawn 4x (64 px) and its 2-px gap


def grid_windows(png, frames: int, context: int) -> np.ndarray:
    """The windows drawn in preview.png, read back: uint8 [N, T, 16, 16]. Rows of
    66-px cells after a 2-px border; a 2-px red bar between context and future."""
    with Image.open(png) as grid:
        pixels = np.asarray(grid.convert("L"))
    rows = (pixels.shape[0] - 2) // TILE
    return np.stack([[pixels[2 + r * TILE:, 2 + t * TILE + 2 * (t >= context):]
                      [:64:4, :64:4] for t in range(frames)] for r in range(rows)])


def test_preview_writes_grid_and_animation(tmp_path, compose_train):
    clips = write_clips(tmp_path / "clips")
    # Every clip trains: validation reads the same clips (data.val_path), as preview
    # checks it, train reading it too.
    cfg = compose_train(["data=frames", f"data.path={clips}", f"data.val_path={clips}",
                         "data.frame_size=[16,16]", "data.context_frames=3",
                         "data.future_frames=2", "data.test_fraction=0", "preview.windows=3"],
                        config_name="preview")
    written = preview(cfg, tmp_path / "out")
    windows, available = sample_windows(cfg.data, 3)
    assert windows.shape == (3, 5, 16, 16, 1) and written.drawn == 3 and available == 4
    assert written.splits == {"train": (4, 4), "val": (4, 4)}  # 8 frames: one 5-frame window
    with Image.open(written.png) as grid:
        # 3 rows of 64-px tiles (16 px drawn 4x) with 2-px gaps; 5 columns, a 2-px bar.
        assert grid.size == (5 * 66 + 2 + 2, 3 * 66 + 2)
    drawn = grid_windows(written.png, frames=5, context=3)
    np.testing.assert_allclose(drawn / 255, windows[..., 0], atol=1 / 255)
    with Image.open(written.gif) as animation:
        # The 3 windows side by side with 2-px gaps, over a 2-px progress bar.
        assert animation.n_frames == 5 and animation.size == (3 * 64 + 2 * 2, 64 + 2)


@pytest.mark.slow
def test_preview_cli_debug_fast_on_a_time_first_array(tmp_path):
    """The real command: debug=fast, a (T=20, N=10) array read as 10 sequences of 20
    frames (time-contiguous windows), fewer windows than asked and the count printed
    as drawn; random noise has no time axis to find, so it asks for data.layout. Both
    commands in one interpreter, a forked child each."""
    video = moving_squares(frames=20, sequences=10)  # [T, N, 16, 16]
    np.save(tmp_path / "smooth.npy", video)
    np.save(tmp_path / "noise.npy",
            np.random.default_rng(0).integers(0, 256, (20, 10, 16, 16), dtype=np.uint8))
    done, noise = run_in_one_process([
        {"module": "framepred.preview",
         "args": ["debug=fast", "data=npy", f"data.path={tmp_path / 'smooth.npy'}",
                  "preview.windows=30", f"hydra.run.dir={tmp_path / 'run'}"]},
        {"module": "framepred.preview",
         "args": ["data=npy", f"data.path={tmp_path / 'noise.npy'}",
                  f"hydra.run.dir={tmp_path / 'noise'}"]},
    ], tmp_path)
    assert done["rc"] == 0, done["stderr"][-2000:]
    assert "as tbhw: 10 sequences of 20 frames" in done["stdout"]
    # debug=fast: windows of 3 + 3 frames; 8 training sequences of 20 frames hold 3 each.
    assert ("preview: 24 training windows of 3 context + 3 future frames (preview.windows=30, "
            "but the training split holds only 24)") in done["stdout"]
    assert str(tmp_path / "run" / "preview.png") in done["stdout"]
    drawn = grid_windows(tmp_path / "run" / "preview.png", frames=6, context=3)
    assert len(drawn) == 24
    clips = {video[start:start + 6, sequence].tobytes()
             for sequence in range(10) for start in range(15)}
    assert all(window.tobytes() in clips for window in drawn)
    with Image.open(tmp_path / "run" / "preview.gif") as animation:
        assert animation.size[0] == 24 * 64 + 23 * 2

    assert noise["rc"] == 2
    [line] = error_lines(noise["stderr"])
    assert line.startswith("framepred: error:") and "(20, 10, 16, 16)" in line
    assert line.endswith("set data.layout=tbhw or data.layout=bthw")
