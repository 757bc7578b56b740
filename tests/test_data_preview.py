"""python -m framepred.preview: a PNG grid and a GIF of training windows."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from framepred.preview import preview, sample_windows
from tests.helpers.cli import run_cli
from tests.helpers.files import write_clips


def test_preview_writes_grid_and_animation(tmp_path, compose_train):
    clips = write_clips(tmp_path / "clips")
    cfg = compose_train(["data=frames", f"data.path={clips}", "data.frame_size=[16,16]",
                         "data.context_frames=3", "data.future_frames=2", "data.val_fraction=0",
                         "data.test_fraction=0", "preview.windows=3"], config_name="preview")
    png, gif = preview(cfg, tmp_path / "out")
    windows = sample_windows(cfg.data, 3)
    assert windows.shape == (3, 5, 16, 16, 1)
    with Image.open(png) as grid:
        # 3 rows of 64-px tiles (16 px drawn 4x) with 2-px gaps; 5 columns, a 2-px bar.
        assert grid.size == (5 * 66 + 2 + 2, 3 * 66 + 2)
        tile = np.asarray(grid.convert("L"))[2:66:4, 2:66:4]
        np.testing.assert_allclose(tile / 255, windows[0, 0, :, :, 0], atol=1 / 255)
    with Image.open(gif) as animation:
        # The 3 windows side by side with 2-px gaps, over a 2-px progress bar.
        assert animation.n_frames == 5 and animation.size == (3 * 64 + 2 * 2, 64 + 2)


@pytest.mark.slow
def test_preview_cli_prints_where(tmp_path):
    clips = write_clips(tmp_path / "clips")
    done = run_cli("framepred.preview", "data=frames", f"data.path={clips}",
                   "data.frame_size=[16,16]", "data.context_frames=2", "data.future_frames=2",
                   f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert str(tmp_path / "run" / "preview.png") in done.stdout
    assert (tmp_path / "run" / "preview.gif").is_file()
