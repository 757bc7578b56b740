"""data=odim: ODIM_H5 radar files read in their units, against pysteps' own importer.

The files are written here with h5py in OPERA's layout (tests/helpers/fields.py,
`write_odim`); the oracle is `pysteps.io.importers.import_odim_hdf5` on the same
files, and `pysteps.utils.conversion.to_rainrate` for Marshall-Palmer. Every bad
input stops with one line naming what is wrong.
"""

from __future__ import annotations

import types

import numpy as np
import pytest

from framepred.data import build_source
from framepred.errors import FramepredError
from tests.helpers.fields import write_odim
from tests.helpers.run_if import skip_module_unless

skip_module_unless(extra="weather")

ONE_SPLIT = ("data.val_fraction=0", "data.test_fraction=0")
# Written in a file-name order that is not their time order: the reader must sort by time.
TIMES = ["20240501120500", "20240501120000", "20240501121500", "20240501121000",
         "20240501122500", "20240501122000", "20240501123000"]
NODATA, UNDETECT = 255, 0


def packed(seed: int, shape=(16, 16)) -> np.ndarray:
    """uint8 codes: mostly echoes (10..200), some undetect and some nodata pixels."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(10, 201, shape).astype(np.uint8)
    codes[rng.random(shape) < 0.3] = UNDETECT
    codes[rng.random(shape) < 0.1] = NODATA
    return codes


@pytest.fixture
def radar(tmp_path):
    """A folder of 7 ODIM files holding RATE (0.1 mm/h steps) and DBZH (0.5 dBZ steps
    from -32 dBZ), named against their time order."""
    folder = tmp_path / "radar"
    folder.mkdir()
    for number, when in enumerate(TIMES):
        write_odim(folder / f"comp_{number:02d}.h5", when, {
            "RATE": (packed(number), 0.1, 0.0, NODATA, UNDETECT),
            "DBZH": (packed(100 + number), 0.5, -32.0, NODATA, UNDETECT),
        })
    return folder


def pysteps_fields(folder, quantity: str, monkeypatch) -> np.ndarray:
    """[T, H, W] from pysteps' importer, the files in time order."""
    from pysteps.io import importers

    # The importer projects the corners with pyproj for its metadata; the values do not
    # depend on it, and pyproj is no dependency of ours: an identity projection.
    monkeypatch.setattr(importers, "pyproj", types.SimpleNamespace(
        Proj=lambda definition: (lambda lon, lat: (lon, lat))), raising=False)
    files = [folder / f"comp_{TIMES.index(when):02d}.h5" for when in sorted(TIMES)]
    return np.stack([importers.import_odim_hdf5(str(f), qty=quantity)[0] for f in files]), [
        importers.import_odim_hdf5(str(f), qty=quantity)[2] for f in files]


@pytest.mark.parametrize("quantity", ["RATE", "DBZH"])
def test_values_equal_pysteps_importer_in_time_order(radar, data_cfg, quantity, monkeypatch):
    source = build_source(data_cfg("data=odim", f"data.path={radar}", f"data.quantity={quantity}",
                                   *ONE_SPLIT), "train")
    ours = source.source.raw(0, 0, len(TIMES))[..., 0]  # NaN where nodata, before data.missing
    expected, _ = pysteps_fields(radar, quantity, monkeypatch)
    assert np.array_equal(np.isnan(ours), np.isnan(expected))
    np.testing.assert_allclose(ours, expected.astype(np.float32), rtol=1e-6, atol=1e-6)
    assert [t.strftime("%Y%m%d%H%M%S") for t in source.source.times()] == sorted(TIMES)
    # No echo: 0 mm/h for rates, data.dbz_floor (pysteps' -30 dBZ) for reflectivity.
    no_echo = packed(TIMES.index(sorted(TIMES)[0]) + (100 if quantity == "DBZH" else 0))
    assert set(ours[0][no_echo == UNDETECT]) == {0.0 if quantity == "RATE" else -30.0}


def test_marshall_palmer_and_floor_equal_pysteps_conversion(radar, data_cfg, monkeypatch):
    from pysteps.utils.conversion import to_rainrate

    source = build_source(data_cfg("data=odim", f"data.path={radar}", "data.quantity=DBZH",
                                   "data.to_rain_rate=true", "data.zr_a=300", "data.zr_b=1.4",
                                   *ONE_SPLIT), "train")
    ours = source.source.raw(0, 0, len(TIMES))[..., 0]
    fields, metadata = pysteps_fields(radar, "DBZH", monkeypatch)
    expected = np.stack([to_rainrate(field, meta, zr_a=300, zr_b=1.4)[0]
                         for field, meta in zip(fields, metadata)])
    assert np.array_equal(np.isnan(ours), np.isnan(expected))
    np.testing.assert_allclose(ours, expected.astype(np.float32), rtol=1e-5, atol=1e-6)
    # data.missing=zero reads nodata as 0; the floor is configurable without conversion.
    zero = build_source(data_cfg("data=odim", f"data.path={radar}", "data.quantity=DBZH",
                                 "data.missing=zero", "data.dbz_floor=-10",
                                 "data.normalize=minmax", *ONE_SPLIT), "train")
    frames = zero.read(0, 0, 6)[..., 0]
    first = packed(100 + TIMES.index(sorted(TIMES)[0]))
    assert set(frames[0][first == UNDETECT]) == {-10.0}
    assert set(frames[0][first == NODATA]) == {0.0}


def _without_quantity(folder):
    write_odim(folder / "a.h5", "20240501120000",
               {"DBZH": (packed(0), 0.5, -32, NODATA, UNDETECT),
                "QIND": (packed(1), 1 / 255, 0, NODATA, UNDETECT)})
    return "RATE"


def _grids_differ(folder):
    write_odim(folder / "a.h5", "20240501120000", {"RATE": (packed(0), 0.1, 0, 255, 0)})
    write_odim(folder / "b.h5", "20240501120500",
               {"RATE": (packed(1, (16, 20)), 0.1, 0, 255, 0)})
    return "RATE"


def _same_time(folder):
    write_odim(folder / "a.h5", "20240501120000", {"RATE": (packed(0), 0.1, 0, 255, 0)})
    write_odim(folder / "b.h5", "20240501120000", {"RATE": (packed(1), 0.1, 0, 255, 0)})
    return "RATE"


def _gain_zero(folder):
    write_odim(folder / "a.h5", "20240501120000", {"RATE": (packed(0), 0.0, 0, 255, 0)})
    return "RATE"


@pytest.mark.parametrize(("make", "message"), [
    pytest.param(_without_quantity, r"a.h5 has no quantity 'RATE' \(data.quantity\); it "
                 r"holds: DBZH, QIND$", id="no-such-quantity"),
    pytest.param(_grids_differ, r"b.h5 holds RATE on a grid of \(16, 20\) but .*a.h5 on "
                 r"\(16, 16\); every file of data.path=.* must share one grid", id="grids"),
    pytest.param(_same_time, r"a.h5 and .*b.h5 both hold the time 2024-05-01 12:00:00 ",
                 id="same-time"),
    pytest.param(_gain_zero, r"a.h5: dataset1/data1/what has gain=0 for RATE", id="gain-0"),
])
def test_bad_files_stop_with_one_line(tmp_path, data_cfg, make, message):
    folder = tmp_path / "radar"
    folder.mkdir()
    quantity = make(folder)
    with pytest.raises(FramepredError, match=message) as caught:
        build_source(data_cfg("data=odim", f"data.path={folder}", f"data.quantity={quantity}",
                              *ONE_SPLIT), "train")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("overrides", "message"), [
    (("data.quantity=RATE", "data.to_rain_rate=true"),
     r"data.to_rain_rate=true converts reflectivity \(dBZ\) to mm/h, but data.quantity=RATE "
     r"is no reflectivity; it takes DBZH, DBZV, TH, TV"),
    ((), r"data.quantity is not set; data=odim reads one quantity"),
    (("data.quantity=DBZH", "data.zr_b=0"), r"data.zr_b=0.0 must be > 0"),
])
def test_config_refusals_name_the_key(data_cfg, overrides, message):
    from framepred.config import validate_data

    with pytest.raises(FramepredError, match=message):
        validate_data(data_cfg("data=odim", "data.path=radar/", *overrides))
