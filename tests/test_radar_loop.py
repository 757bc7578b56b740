"""The loop a radar user runs (docs/weather.md, "Radar archives: the loop"), end to end
on a folder of synthetic ODIM_H5 files: preview, train on mm/h with log1p, evaluate
at 0.1, 1 and 5 mm/h with FSS and the four baselines, predict (forecast.npy in mm/h,
the radar-colour GIF); and each bad input as the command line gives it:
one `framepred: error:` line, exit 2, nothing written.

All commands run in one interpreter, a forked child each (tests/helpers/cli.py), at
16x16, windows of 3 + 3 frames (debug=fast).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers.cli import error_lines, run_in_one_process
from tests.helpers.fields import write_odim
from tests.helpers.run_if import skip_module_unless

skip_module_unless(extra="weather")

FILES = 40  # 5-minute composites: train 32 frames, val 8 (data.val_fraction=0.2)
NODATA, UNDETECT = 255, 0


def dbz_codes(step: int, size: int = 16) -> np.ndarray:
    """DBZH packed as OPERA packs it (0.5 dBZ from -32): a cell of up to 50 dBZ drifting
    right 1 px a frame, "no echo" (undetect) below 5 dBZ, a corner nobody covers."""
    rows, cols = np.mgrid[:size, :size]
    dbz = 50 * np.exp(-((rows - 8) ** 2 + (cols - (step % 24) + 4) ** 2) / 18.0)
    codes = np.round((dbz + 32) / 0.5).astype(np.uint8)
    codes[dbz < 5] = UNDETECT
    codes[:2, :2] = NODATA
    return codes


def odim_folder(folder, files=FILES):
    folder.mkdir()
    for step in range(files):
        minutes = 5 * step
        write_odim(folder / f"T_PAAH21_C_EUOC_{step:03d}.h5",
                   f"20240501{12 + minutes // 60:02d}{minutes % 60:02d}00",
                   {"DBZH": (dbz_codes(step), 0.5, -32.0, NODATA, UNDETECT)})
    return folder


@pytest.mark.slow
def test_radar_loop_and_its_refusals(tmp_path):
    radar = odim_folder(tmp_path / "radar")
    data = ["debug=fast", "data=odim", f"data.path={radar}", "data.quantity=DBZH",
            "data.to_rain_rate=true", "data.missing=zero", "data.val_fraction=0.2",
            "data.test_fraction=0"]
    run, best = tmp_path / "run", tmp_path / "run" / "checkpoints" / "best.keras"
    bad = {name: tmp_path / name for name in ("rate_only", "grids", "twice", "gain0")}
    for folder in bad.values():
        folder.mkdir()
    write_odim(bad["rate_only"] / "a.h5", "20240501120000",
               {"RATE": (dbz_codes(0), 0.1, 0, NODATA, UNDETECT)})
    write_odim(bad["grids"] / "a.h5", "20240501120000",
               {"DBZH": (dbz_codes(0), 0.5, -32, NODATA, UNDETECT)})
    write_odim(bad["grids"] / "b.h5", "20240501120500",
               {"DBZH": (dbz_codes(1, size=20), 0.5, -32, NODATA, UNDETECT)})
    for name in ("a", "b"):
        write_odim(bad["twice"] / f"{name}.h5", "20240501120000",
                   {"DBZH": (dbz_codes(0), 0.5, -32, NODATA, UNDETECT)})
    write_odim(bad["gain0"] / "a.h5", "20240501120000",
               {"DBZH": (dbz_codes(0), 0.0, -32, NODATA, UNDETECT)})

    def train_on(folder, *more):
        return {"module": "framepred.train",
                "args": [*data[:2], f"data.path={folder}", *data[3:], *more,
                         f"hydra.run.dir={tmp_path / ('refused_' + folder.name)}"]}

    cases = [
        {"module": "framepred.preview", "args": [*data, "visualize.colormap=radar",
                                                 f"hydra.run.dir={tmp_path / 'preview'}"]},
        {"module": "framepred.train", "args": [*data, "data.normalize=log1p",
                                               "visualize.colormap=radar",
                                               f"hydra.run.dir={run}"]},
        {"module": "framepred.evaluate", "args": [
            f"checkpoint={best}", "evaluate.thresholds=[0.1,1,5]", "evaluate.fss_scales=[1,4]",
            "evaluate.baselines=[copy_last,extrapolation,pysteps_extrapolation,sprog]",
            f"hydra.run.dir={tmp_path / 'evaluation'}"]},
        {"module": "framepred.predict", "args": [
            f"checkpoint={best}", f"input={radar}", "predict.start=10",
            "visualize.colormap=radar", f"output={tmp_path / 'forecast'}"]},
        # The refusals: each one line, exit 2, no run written.
        train_on(bad["rate_only"]), train_on(bad["grids"]), train_on(bad["twice"]),
        train_on(bad["gain0"]),
        train_on(radar, "data.quantity=RATE"),  # to_rain_rate=true on a rate
        {"module": "framepred.evaluate", "args": [
            f"checkpoint={best}", "data.frame_size=[8,8]", "evaluate.baselines=[sprog]",
            f"hydra.run.dir={tmp_path / 'refused_sprog'}"]},
    ]
    preview, train, evaluate, predict, *refused = run_in_one_process(cases, tmp_path,
                                                                    timeout=900)

    for name, done in (("preview", preview), ("train", train), ("evaluate", evaluate),
                       ("predict", predict)):
        assert done["rc"] == 0, (name, done["stderr"][-3000:])
    assert (tmp_path / "preview" / "preview.png").is_file()
    normalization = json.loads((run / "normalization.json").read_text())
    assert normalization["kind"] == "log1p"

    scores = json.loads((tmp_path / "evaluation" / "metrics.json").read_text())
    entries = ("model", "copy_last", "extrapolation", "pysteps_extrapolation", "sprog")
    assert all(name in scores for name in entries)
    for name in entries:
        for metric in ("csi@0.1", "csi@1", "csi@5", "fss@1/4", "mse_units"):
            per_step = scores[name][metric]["per_step"]
            assert len(per_step) == 3 and all(np.isfinite(per_step)), (name, metric)
    # The cell drifts steadily: pysteps' nowcasts beat persistence at 1 mm/h.
    assert scores["pysteps_extrapolation"]["csi@1"]["mean"] > scores["copy_last"]["csi@1"]["mean"]

    forecast = np.load(tmp_path / "forecast" / "forecast.npy")
    assert forecast.shape == (3, 16, 16, 1)
    # In mm/h, not the model's log1p-scaled [0, 1]: the cell at frame 10 peaks at tens
    # of mm/h (Marshall-Palmer of 50 dBZ), and no forecast passes the training maximum.
    assert 1.0 < forecast.max() <= normalization["maximum"][0] + 1e-3
    assert forecast.min() >= 0
    assert (tmp_path / "forecast" / "forecast.gif").is_file()

    expected = [
        ["rate_only", "a.h5 has no quantity 'DBZH' (data.quantity); it holds: RATE"],
        ["grids", "b.h5 holds DBZH on a grid of (20, 20) but", "must share one grid"],
        ["twice", "both hold the time 2024-05-01 12:00:00"],
        ["gain0", "has gain=0 for DBZH"],
        ["radar", "data.quantity=RATE is no reflectivity; it takes DBZH"],
        ["sprog", "sprog splits each frame into a cascade", "data.frame_size=[8, 8]"],
    ]
    for done, (name, *parts) in zip(refused, expected):
        assert done["rc"] == 2, (name, done["stderr"][-2000:])
        [line] = error_lines(done["stderr"])
        assert line.startswith("framepred: error:") and all(p in line for p in parts), line
        folder = tmp_path / f"refused_{name}"
        written = [p.name for p in folder.rglob("*") if ".hydra" not in p.parts
                   and p.is_file() and not p.name.endswith(".log")] if folder.exists() else []
        assert written == [], (name, written)
