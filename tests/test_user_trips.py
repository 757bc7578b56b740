"""What the commands write and say where a new user trips: strict JSON, preview that
checks what train reads, hints that name the other source, a warning for pictures
into a model of fields (or the reverse), weather tables in their units, and pictures
that say what they show. The commands run as a user runs them, several in one
interpreter (a forked child each)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from framepred import visualize
from framepred.run.folder import strict_json, write_json
from tests.helpers.cli import error_lines, run_in_one_process
from tests.helpers.files import write_frames
from tests.helpers.run_if import unmet


def strict_loads(text: str):
    """json.loads that refuses NaN, Infinity and -Infinity, as JavaScript's JSON.parse,
    Go's encoding/json and every RFC 8259 parser do."""
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_json_is_strict_with_null_for_a_missing_value(tmp_path):
    payload = {"csi@50": {"per_step": [float("nan"), 0.5, float("inf")],
                          "mean": np.float64("nan")}, "n": 3, "name": "model"}
    write_json(tmp_path / "metrics.json", payload)
    assert strict_loads((tmp_path / "metrics.json").read_text()) == {
        "csi@50": {"per_step": [None, 0.5, None], "mean": None}, "n": 3, "name": "model"}
    assert strict_loads(strict_json([1.0, -math.inf], indent=None)) == [1.0, None]


# --- pictures, without a command ---------------------------------------------------------


def _row_bands(labelled, plain, rows: int, cell: int, pad: int = 2):
    """The label column left of `plain` in `labelled`, cut into each row's band."""
    names = labelled.shape[1] - plain.shape[1]
    assert names > 0
    np.testing.assert_array_equal(labelled[:, names:], plain)  # the grid itself unchanged
    column = labelled[:, :names].min(axis=-1)  # [H', L]
    return [column[pad + r * (cell + pad): pad + r * (cell + pad) + cell] for r in range(rows)]


def test_forecast_grids_name_their_rows():
    rng = np.random.default_rng(0)
    context, truth, forecast = (rng.random((n, 8, 8, 1), dtype=np.float32) for n in (2, 3, 3))
    scale = 8  # 64-px cells, as TensorBoard's grids of small frames
    labelled = visualize.forecast_grid(context, truth, forecast, scale=scale)
    plain = visualize.forecast_grid(context, truth, forecast, scale=scale, labels=False)
    bands = _row_bands(labelled, plain, rows=4, cell=8 * scale)
    # Each of context, truth, forecast and abs error has dark text on white in its band,
    # and nothing is written between the bands.
    assert all(band.min() < 0.3 and np.median(band) == 1.0 for band in bands)
    assert labelled[: 2, : labelled.shape[1] - plain.shape[1]].min() == 1.0
    # A motion head's grid names its fifth row too.
    motion = np.zeros((3, 8, 8, 2), np.float32)
    with_motion = visualize.forecast_grid(context, truth, forecast, scale=scale, motion=motion)
    plain = visualize.forecast_grid(context, truth, forecast, scale=scale, motion=motion,
                                    labels=False)
    assert all(band.min() < 0.3 for band in _row_bands(with_motion, plain, 5, 8 * scale))


def test_grid_lines_stay_visible_with_the_radar_colormap():
    dry = np.zeros((3, 8, 8, 1), np.float32)  # no rain: white in the radar colormap
    grid = visualize.forecast_grid(dry[:2], dry, dry, colormap="radar", labels=False)
    cells = grid[2:10, 2:10]
    assert np.all(cells == 1.0)  # white cells ...
    lines = [grid[:2], grid[:, :2], grid[10:12, 2:10]]
    assert all(np.all(np.abs(line - visualize.GRID_PAD) < 1e-6) for line in lines)  # grey lines
    preview = visualize.window_grid(np.zeros((2, 4, 8, 8, 1), np.float32), 2, colormap="radar")
    assert np.all(preview[0, :10] == visualize.GRID_PAD)  # left of the context | future bar
    assert np.all(preview[2:10, 2:10] == 1.0)
    white = visualize.picture(dry, 0, "radar")
    panels = visualize.side_by_side(white, white)  # the GIF's truth | forecast
    assert np.all(panels[:, :, 8:10] == visualize.GRID_PAD)


# --- the commands, all in one interpreter -------------------------------------------------


def _rain_checkpoint(folder):
    """An untrained experiment=rain_cells debug=fast model saved as train saves its best
    checkpoint: its config and data.normalize statistics (with the units) carried inside."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from framepred import data, models
    from framepred.callbacks.checkpoints import embed_run_config
    from framepred.config import config_dir
    from framepred.run.folder import RunPaths

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=rain_cells", "debug=fast"])
    run = RunPaths(folder)
    run.checkpoints.mkdir(parents=True)
    OmegaConf.save(cfg, run.config)
    normalization = data.fit_normalization(cfg.data)
    assert normalization.units == "mm/h"
    run.normalization.write_text(normalization.to_json())
    models.build_model(cfg.model, cfg.data).save(run.best)
    embed_run_config(run.best, run)
    run.normalization.unlink()  # read from inside the checkpoint
    return run.best


FIELD_FILES = unmet(extra="weather") is None  # h5py writes the field file


@pytest.fixture(scope="module")
def commands(tmp_path_factory, fast_run):
    """{name: {"rc", "stdout", "stderr"}} of every command below, and their folder.

    Pictures: a clip of 30 frames with frame 13 corrupt and
    data.on_bad_file=skip, which cuts it into 13 + 16 frames: preview as given (train
    would find no validation window), with room for one (data.val_fraction=0.4), and
    with data=video on the folder of PNGs; a field file into the debug=fast model of
    pictures. Weather: a rain_cells model's evaluate at thresholds in mm/h, with an FSS
    window wider than the frame, and a folder of RGB pictures into it."""
    work = tmp_path_factory.mktemp("trips")
    rng = np.random.default_rng(0)
    clip = write_frames(work / "clips" / "clip", rng.integers(0, 256, (30, 16, 16), np.uint8),
                        name="{:03d}.png")
    (clip / "013.png").write_bytes(b"not a png")
    pictures = write_frames(work / "pictures", rng.integers(0, 256, (4, 16, 16, 3), np.uint8))
    rain = _rain_checkpoint(work / "rain")
    skip = ["debug=fast", "data=frames", f"data.path={work / 'clips'}", "data.on_bad_file=skip"]
    evaluate = [f"checkpoint={rain}", "evaluate.thresholds=[0.5,2,10,50]"]
    cases = {
        "no_val_window": ("framepred.preview", [*skip, f"preview.output={work / 'a'}"]),
        "splits": ("framepred.preview",
                   [*skip, "data.val_fraction=0.4", f"preview.output={work / 'b'}"]),
        "video_on_pngs": ("framepred.preview",
                          ["debug=fast", "data=video", f"data.path={clip}",
                           "data.on_bad_file=skip", f"preview.output={work / 'c'}"]),
        "scored": ("framepred.evaluate", [*evaluate, "evaluate.fss_scales=[1,4]",
                                          f"hydra.run.dir={work / 'scored'}"]),
        "wide_window": ("framepred.evaluate", [*evaluate, "evaluate.fss_scales=[4,17]",
                                               f"hydra.run.dir={work / 'wide'}"]),
        "pictures_into_fields": ("framepred.predict", [
            f"checkpoint={rain}", f"input={pictures}", f"output={work / 'forecast'}"]),
    }
    if FIELD_FILES:
        from tests.helpers.fields import write_h5

        write_h5(work / "rain.h5", "rain",
                 rng.gamma(0.5, 4.0, (6, 16, 16)).astype(np.float32), units="mm/h")
        cases["field_into_pictures"] = ("framepred.predict", [
            f"checkpoint={fast_run / 'checkpoints' / 'best.keras'}", f"input={work / 'rain.h5'}",
            "data.dataset=rain", f"output={work / 'forecast_h5'}"])
    results = run_in_one_process([{"module": module, "args": args}
                                  for module, args in cases.values()], work)
    return dict(zip(cases, results)), work


def _one_error(result) -> str:
    assert result["rc"] == 2, result["stderr"][-2000:]
    [line] = error_lines(result["stderr"])
    return line


def _one_warning(result) -> str:
    assert result["rc"] == 0, result["stderr"][-2000:]
    [warning] = [line for line in (result["stdout"] + result["stderr"]).splitlines()
                 if "WARNING" in line]
    return warning


def test_preview_checks_every_split_train_reads(commands):
    done, _ = commands
    line = _one_error(done["no_val_window"])
    assert line.startswith("framepred: error: the val split of ") and "no sequence long" in line
    checked = done["splits"]
    assert checked["rc"] == 0, checked["stderr"][-2000:]
    # Each piece in time: with val_fraction=0.4 and test_fraction=0.1, frames [0, 6) |
    # [6, 12) of the 13 and [0, 8) | [8, 14) of the 16 (Python rounds half to even):
    # one 6-frame window in each split of each piece.
    assert ("  splits:    train 2 sequence(s), 2 window(s); val 2 sequence(s), 2 window(s)"
            in checked["stdout"].splitlines())
    # Every split's source cuts the pieces in time; it is said once.
    assert (checked["stdout"] + checked["stderr"]).count("2 sequence(s) for 3 splits") == 1


def test_video_on_a_folder_of_pictures_suggests_frames(commands):
    done, _ = commands
    line = _one_error(done["video_on_pngs"])
    assert "has 1; these are still images" in line and line.endswith("use data=frames")


def test_pictures_into_a_model_of_fields_warn_and_the_reverse(commands, fast_run):
    done, work = commands
    assert _one_warning(done["pictures_into_fields"]).endswith(
        f"input={work / 'pictures'} holds pictures, but the checkpoint was trained on fields "
        "in physical units (data=rain_cells, data.normalize=log1p, in mm/h): colours are "
        "read as [0, 1] and forecast.npy is not in those units; give a clip of the run's "
        "kind (.npy, .h5 or .nc)")
    if FIELD_FILES:
        assert (f"input={work / 'rain.h5'} holds a field in physical units, but the checkpoint "
                "was trained on pictures (data=moving_digits") in _one_warning(
                    done["field_into_pictures"])


def test_weather_tables_name_units_order_thresholds_and_refuse_wide_windows(commands):
    done, work = commands
    scored = done["scored"]
    assert scored["rc"] == 0, scored["stderr"][-2000:]
    text = (work / "scored" / "metrics.json").read_text()
    assert "NaN" not in text
    payload = strict_loads(text)
    # No rate reaches 50 mm/h: no event forecast or seen, so no CSI, written null.
    assert payload["model"]["csi@50"]["per_step"] == [None] * 3
    assert payload["beats_best_baseline"]["csi@50"]["best_baseline"] == [None] * 3
    table = scored["stdout"]
    assert "csi@0.5: critical success index at 0.5 mm/h" in table
    assert "mse_units: MSE per pixel in mm/h squared" in table
    assert "data units" not in table
    blocks = [line.split(":")[0] for line in table.splitlines() if line.startswith("csi@")]
    assert blocks == ["csi@0.5", "csi@2", "csi@10", "csi@50"]  # as numbers, not as text
    assert "bias@0.5, bias@2, bias@10, bias@50, ets@0.5" in " ".join(table.split())
    block = table[table.index("csi@50:"):].splitlines()
    csi_50 = [row for row in block[3:8] if row.lstrip().startswith(("t+", "mean"))]
    assert len(csi_50) == 4  # t+1 ... t+3 and the mean: every entry ties, no best baseline
    assert all(row.rsplit("|", 1)[1].strip() == "- (all tie)" for row in csi_50)

    assert _one_error(done["wide_window"]) == (
        "framepred: error: evaluate.fss_scales=[4, 17] has window(s) [17] larger than the "
        "16x16 frame (data.frame_size); give scales up to 16 pixels")
