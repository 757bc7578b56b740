"""Fields in physical units (data=hdf5, netcdf, rain_cells): values, laziness, layouts,
missing values, and each bad input's one-line error.

Every test writes its own tiny files (16x16 frames) with h5py or xarray; the oracle is
the array the file was written from, in its own units (no [0, 1] scaling).
"""

from __future__ import annotations

import numpy as np
import pytest

from framepred.data import build_source, window_batches
from framepred.errors import FramepredError
from tests.helpers.fields import write_h5, write_nc
from tests.helpers.run_if import skip_module_unless

skip_module_unless(extra="weather")
import h5py  # noqa: E402
import xarray  # noqa: E402

# debug=fast: 16x16 frames, 3 context + 3 future = windows of 6 frames.
WINDOW = 6
ONE_SPLIT = ("data.val_fraction=0", "data.test_fraction=0")


def rain(frames: int, seed: int = 0, shape=(16, 16)) -> np.ndarray:
    """float32 [T, H, W] rain rates in mm/h, mostly far above 1."""
    return np.random.default_rng(seed).gamma(0.8, 8.0, (frames, *shape)).astype(np.float32)


def starts(source, stride: int = WINDOW) -> list[tuple[int, int]]:
    """(sequence of the file, first frame in it) of every window of a split."""
    return [(source.spans[i].sequence, source.spans[i].start + s)
            for i, s in source.window_starts(WINDOW, stride)]


class RecordedReads:
    """Every key h5py datasets are indexed with while in use; `np.asarray(dataset)`,
    which reads a dataset whole, fails."""

    def __init__(self, monkeypatch):
        self.keys = []
        original = h5py.Dataset.__getitem__

        def getitem(dataset, key, *args, **kwargs):
            self.keys.append((dataset.name, key))
            return original(dataset, key, *args, **kwargs)

        def whole(*args, **kwargs):
            raise AssertionError("a dataset was read whole")

        monkeypatch.setattr(h5py.Dataset, "__getitem__", getitem)
        monkeypatch.setattr(h5py.Dataset, "__array__", whole)
        monkeypatch.setattr(h5py.Dataset, "read_direct", whole)

    def longest(self, name: str) -> int:
        """The most time steps one read of dataset `name` selected."""
        lengths = []
        for dataset, key in self.keys:
            if dataset == name:
                assert key != () and key is not Ellipsis, "read with [()] or [...]"
                first = key[0] if isinstance(key, tuple) else key
                lengths.append(len(first) if isinstance(first, (list, np.ndarray))
                               else len(range(*first.indices(10 ** 9))))
        return max(lengths)


# --- data=hdf5 ---------------------------------------------------------------------------


def test_hdf5_windows_are_the_file_in_data_units_read_lazily(tmp_path, data_cfg, monkeypatch):
    field = rain(20)
    write_h5(tmp_path / "radar.h5", "precip/rate", field, units="mm/h")
    data = data_cfg("data=hdf5", f"data.path={tmp_path / 'radar.h5'}",
                    "data.dataset=/precip/rate", "data.normalize=none", *ONE_SPLIT)
    reads = RecordedReads(monkeypatch)
    source = build_source(data, "train")
    assert starts(source) == [(0, 0), (0, 6), (0, 12)] and field.max() > 20  # mm/h, kept
    for sequence, start in starts(source):
        np.testing.assert_array_equal(source.source.read(sequence, start, start + WINDOW),
                                      field[start:start + WINDOW, :, :, None])
    batch = next(iter(window_batches(data, "train", batch_size=3)))  # through tf.data
    np.testing.assert_array_equal(batch.numpy()[1], field[6:12, :, :, None])
    assert reads.longest("/precip/rate") == WINDOW  # window by window, never the whole file


def test_hdf5_layouts_integers_and_resizing(tmp_path, data_cfg):
    tbhw = np.random.default_rng(1).integers(0, 1000, (8, 5, 16, 16)).astype(np.uint16)
    write_h5(tmp_path / "tbhw.h5", "counts", tbhw)
    source = build_source(data_cfg("data=hdf5", f"data.path={tmp_path / 'tbhw.h5'}",
                                   "data.dataset=counts", "data.layout=tbhw"), "train")
    assert (len(source.source), source.source.num_frames(0)) == (5, 8)
    sequence = source.spans[0].sequence
    np.testing.assert_array_equal(source.read(0, 1, 7)[..., 0], tbhw[1:7, sequence])  # not /65535
    two = rain(2 * 7 * 2, seed=2).reshape(2, 7, 16, 16, 2)  # (sequences, time, H, W, C)
    write_h5(tmp_path / "bthwc.h5", "wind", two)
    source = build_source(data_cfg("data=hdf5", f"data.path={tmp_path / 'bthwc.h5'}",
                                   "data.dataset=wind", "data.channels=2", *ONE_SPLIT), "train")
    np.testing.assert_array_equal(source.read(1, 0, 6), two[1, :6])
    write_h5(tmp_path / "thwc.h5", "wind", two[0])  # auto: one sequence of 2-channel frames
    source = build_source(data_cfg("data=hdf5", f"data.path={tmp_path / 'thwc.h5'}",
                                   "data.dataset=wind", "data.channels=2", *ONE_SPLIT), "train")
    np.testing.assert_array_equal(source.read(0), two[0])
    big = np.kron(rain(6, seed=3), np.ones((2, 2), np.float32))  # 32x32 of 2x2 blocks
    write_h5(tmp_path / "big.h5", "rate", big)
    source = build_source(data_cfg("data=hdf5", f"data.path={tmp_path / 'big.h5'}",
                                   "data.dataset=rate", "data.interpolation=area",
                                   *ONE_SPLIT), "train")
    np.testing.assert_allclose(source.read(0)[..., 0], big[:, ::2, ::2], rtol=1e-5)


def test_hdf5_cf_packing_decoded_as_xarray_decodes_it(tmp_path, data_cfg):
    """int16 packed with scale_factor, add_offset and _FillValue (CF 1.11, 8.1): the
    values equal xarray's CF decoding of the same file, NaN where it gives NaN."""
    codes = np.random.default_rng(7).integers(-3000, 3000, (12, 16, 16)).astype(np.int16)
    codes[2, 3:5, 4:9] = -32767
    path = write_h5(tmp_path / "packed.h5", "rate", codes, scale_factor=np.float32(0.01),
                    add_offset=np.float32(30.0), _FillValue=np.int16(-32767))
    source = build_source(data_cfg("data=hdf5", f"data.path={path}", "data.dataset=rate",
                                   *ONE_SPLIT), "train")
    ours = source.source.raw(0, 0, 12)[..., 0]
    with xarray.open_dataset(path, engine="h5netcdf", phony_dims="sort") as opened:
        expected = opened["rate"].values
    assert np.isnan(ours).sum() == 10 and np.array_equal(np.isnan(ours), np.isnan(expected))
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-5)


# --- data=netcdf -------------------------------------------------------------------------


def test_netcdf_folder_is_one_series_in_time_order_read_lazily(tmp_path, data_cfg,
                                                               monkeypatch):
    series = rain(15, seed=4)
    folder = tmp_path / "radar"
    folder.mkdir()
    # Names in another order than time: b (hours 0-4), c (5-9), a (10-14).
    for name, first in (("a.nc", 10), ("b.nc", 0), ("c.nc", 5)):
        write_nc(folder / name, series[first:first + 5], first_hour=first)
    data = data_cfg("data=netcdf", f"data.path={folder}", "data.variable=rain", *ONE_SPLIT)
    reads = RecordedReads(monkeypatch)
    source = build_source(data, "train")
    assert source.num_frames(0) == 15 and starts(source) == [(0, 0), (0, 6)]
    for start in range(0, 10):  # windows across the files' boundaries
        np.testing.assert_array_equal(source.read(0, start, start + WINDOW),
                                      series[start:start + WINDOW, :, :, None])
    assert reads.longest("/rain") <= 5  # a file's part of one window at a time


def test_netcdf_times_out_of_order_are_sorted_and_said(tmp_path, data_cfg, caplog):
    series = rain(9, seed=8)
    order = np.array([3, 0, 8, 1, 2, 7, 4, 6, 5])  # the file's time index of each stored frame
    dataset = xarray.Dataset(
        {"rain": (("time", "y", "x"), series[order])},
        coords={"time": np.datetime64("2024-05-01T00") + order.astype("timedelta64[h]")})
    dataset.to_netcdf(tmp_path / "shuffled.nc", engine="h5netcdf")
    with caplog.at_level("WARNING", logger="framepred.data"):
        source = build_source(data_cfg("data=netcdf", f"data.path={tmp_path / 'shuffled.nc'}",
                                       "data.variable=rain", *ONE_SPLIT), "train")
    assert "shuffled.nc: its 9 times are out of order; read in time order (2024-05-01T00:00:00 "\
        "to 2024-05-01T08:00:00)" in caplog.text
    for start in range(4):
        np.testing.assert_array_equal(source.read(0, start, start + WINDOW)[..., 0],
                                      series[start:start + WINDOW])
    assert source.source.locate(0, 0).endswith("time index 1 (time=2024-05-01T00:00:00)")
    twice = dataset.assign_coords(time=dataset.time.values[[0, 1, 2, 3, 4, 5, 6, 7, 1]])
    twice.to_netcdf(tmp_path / "twice.nc", engine="h5netcdf")
    with pytest.raises(FramepredError, match=r"twice.nc holds the time 2024-05-01T00:00:00 "
                       r"twice"):
        build_source(data_cfg("data=netcdf", f"data.path={tmp_path / 'twice.nc'}",
                              "data.variable=rain", *ONE_SPLIT), "train")


def test_netcdf_dims_inferred_or_given(tmp_path, data_cfg):
    bands = rain(14, seed=5).reshape(7, 2, 16, 16)
    # time named `frame` with datetime coordinates, a level of size 1, channels 2nd.
    write_nc(tmp_path / "bands.nc", bands[:, None], dims=("frame", "level", "band", "lat", "lon"))
    source = build_source(data_cfg("data=netcdf", f"data.path={tmp_path / 'bands.nc'}",
                                   "data.variable=rain", "data.channels=2", *ONE_SPLIT), "train")
    np.testing.assert_array_equal(source.read(0), bands.transpose(0, 2, 3, 1))
    swapped = rain(7, seed=6)
    write_nc(tmp_path / "xy.nc", swapped.transpose(0, 2, 1), dims=("step", "x", "y"),
             with_time=False)
    source = build_source(data_cfg("data=netcdf", f"data.path={tmp_path / 'xy.nc'}",
                                   "data.variable=rain", "data.time_dim=step",
                                   "data.spatial_dims=[y,x]", *ONE_SPLIT), "train")
    np.testing.assert_array_equal(source.read(0)[..., 0], swapped)
    classic = tmp_path / "classic.nc"  # netCDF-3, read through scipy
    xarray.Dataset({"rain": (("time", "y", "x"), swapped)}).to_netcdf(classic, engine="scipy")
    source = build_source(data_cfg("data=netcdf", f"data.path={classic}", "data.variable=rain",
                                   *ONE_SPLIT), "train")
    np.testing.assert_array_equal(source.read(0)[..., 0], swapped)


# --- data.missing ------------------------------------------------------------------------

MISSING_AT = (2, 7)  # frames holding a missing value: NaN at 2, the fill value at 7


def holey(tmp_path, kind: str):
    """A series of 18 frames with a NaN in frame 2 and the fill value in frame 7."""
    field = rain(18, seed=7)
    written = field.copy()
    written[2, 3, 4] = np.nan
    written[7, 10, 11] = -9999.0
    if kind == "hdf5":
        write_h5(tmp_path / "holey.h5", "rate", written, _FillValue=np.float32(-9999.0))
        return field, ("data=hdf5", f"data.path={tmp_path / 'holey.h5'}", "data.dataset=rate")
    write_nc(tmp_path / "holey.nc", written, fill=-9999.0)
    return field, ("data=netcdf", f"data.path={tmp_path / 'holey.nc'}", "data.variable=rain")


@pytest.mark.parametrize("kind", ["hdf5", "netcdf"])
def test_missing_values_error_zero_and_skip_window(tmp_path, data_cfg, kind):
    field, overrides = holey(tmp_path, kind)
    stop = build_source(data_cfg(*overrides, *ONE_SPLIT), "train")  # data.missing=error
    with pytest.raises(FramepredError, match=r"holey\.(h5|nc).* time index 2 .*holds a "
                       r"missing value .*data.missing=zero.*skip_window"):
        stop.read(0, 0, WINDOW)
    np.testing.assert_array_equal(stop.read(0, 12, 18)[..., 0], field[12:18])
    zero = build_source(data_cfg(*overrides, "data.missing=zero", *ONE_SPLIT), "train")
    expected = field.copy()
    expected[2, 3, 4] = expected[7, 10, 11] = 0.0
    np.testing.assert_array_equal(zero.read(0)[..., 0], expected)
    skip = build_source(data_cfg(*overrides, "data.missing=skip_window", "data.stride=1",
                                 *ONE_SPLIT), "train")
    kept = [start for _, start in starts(skip, stride=1)]
    assert kept == [s for s in range(18 - WINDOW + 1)
                    if not any(s <= at < s + WINDOW for at in MISSING_AT)]  # 8..12
    for index, start in skip.window_starts(WINDOW, 1):
        assert np.isfinite(skip.read(index, start, start + WINDOW)).all()


def test_skip_window_leaving_no_window_says_so(tmp_path, data_cfg):
    field = rain(18, seed=8)
    field[::4, 0, 0] = np.nan  # a gap every 4 frames: no 6 frames in a row are whole
    write_h5(tmp_path / "gappy.h5", "rate", field)
    with pytest.raises(FramepredError, match=(
            r"the train split of .*gappy.h5:rate has no sequence long enough for one window: "
            r"a window needs 6 frames .*data.missing=skip_window left out its 5 frame\(s\)")):
        build_source(data_cfg("data=hdf5", f"data.path={tmp_path / 'gappy.h5'}",
                              "data.dataset=rate", "data.missing=skip_window", *ONE_SPLIT),
                     "train")


# --- bad input: one line each, naming what is wrong and what is accepted ----------------


def _missing_dataset(tmp_path):
    with h5py.File(tmp_path / "radar.h5", "w") as file:
        file["rate"] = rain(8)
        file["meta/height"] = np.zeros((4, 4))
    return ("data=hdf5", f"data.path={tmp_path / 'radar.h5'}", "data.dataset=precip")


def _missing_variable(tmp_path):
    return ("data=netcdf", f"data.path={write_nc(tmp_path / 'r.nc', rain(8))}",
            "data.variable=precip")


def _no_time_dim(tmp_path):
    xarray.Dataset({"rain": (("y", "x"), rain(1)[0])}).to_netcdf(tmp_path / "map.nc",
                                                                 engine="h5netcdf")
    return ("data=netcdf", f"data.path={tmp_path / 'map.nc'}", "data.variable=rain")


def _mismatched_shapes(tmp_path):
    write_nc(tmp_path / "day1.nc", rain(8))
    write_nc(tmp_path / "day2.nc", rain(8, shape=(16, 20)), first_hour=8)
    return ("data=netcdf", f"data.path={tmp_path}", "data.variable=rain")


def _overlapping_times(tmp_path):
    write_nc(tmp_path / "day1.nc", rain(8))
    write_nc(tmp_path / "day1_again.nc", rain(8), first_hour=4)
    return ("data=netcdf", f"data.path={tmp_path}", "data.variable=rain")


def _all_nan_window(tmp_path):
    field = rain(12)
    field[:6] = np.nan
    return ("data=hdf5", f"data.path={write_h5(tmp_path / 'nan.h5', 'rate', field)}",
            "data.dataset=rate", "data.missing=error")


def _hdf5_channels(tmp_path):
    return ("data=hdf5", f"data.path={write_h5(tmp_path / 'r.h5', 'rate', rain(8))}",
            "data.dataset=rate", "data.channels=3")


def _netcdf_channels(tmp_path):
    bands = rain(16).reshape(8, 2, 16, 16)
    path = write_nc(tmp_path / "b.nc", bands, dims=("time", "band", "y", "x"))
    return ("data=netcdf", f"data.path={path}", "data.variable=rain")


def _ambiguous_layout(tmp_path):
    path = write_h5(tmp_path / "r.h5", "rate", rain(40).reshape(8, 5, 16, 16))
    return ("data=hdf5", f"data.path={path}", "data.dataset=rate")


def _not_hdf5(tmp_path):
    (tmp_path / "notes.h5").write_text("not HDF5")
    return ("data=hdf5", f"data.path={tmp_path / 'notes.h5'}", "data.dataset=rate")


@pytest.mark.parametrize(("make", "message"), [
    pytest.param(_missing_dataset, r"radar.h5 has no dataset 'precip' \(data.dataset\); it "
                 r"holds: /meta/height, /rate$", id="missing-dataset"),
    pytest.param(_missing_variable, r"r.nc has no variable 'precip' \(data.variable\); it "
                 r"holds: rain$", id="missing-variable"),
    pytest.param(_no_time_dim, r"map.nc: variable 'rain' has no time dimension: its dims "
                 r"\(y, x\) .*set data.time_dim=NAME", id="netcdf-without-time"),
    pytest.param(_mismatched_shapes, r"day2.nc has 'rain' frames of shape \(y=16, x=20\) "
                 r"but .*day1.nc has \(y=16, x=16\); every file of data.path=.* must share "
                 r"one grid$", id="mismatched-shapes"),
    pytest.param(_overlapping_times, r"day1_again.nc starts at time 2024-05-01T04.*before "
                 r".*day1.nc ends", id="overlapping-times"),
    pytest.param(_all_nan_window, r"nan.h5:rate time index 0 holds a missing value .* "
                 r"data.missing=error", id="all-nan-window"),
    pytest.param(_hdf5_channels, r"r.h5:rate holds 1 channel\(s\) per frame .*but "
                 r"data.channels=3; set data.channels=1", id="hdf5-channels"),
    pytest.param(_netcdf_channels, r"b.nc variable 'rain' holds 2 channel\(s\) per frame "
                 r"\(dim band=2 .*data.channels=1; set data.channels=2", id="netcdf-channels"),
    pytest.param(_ambiguous_layout, r"r.h5:rate has shape \(8, 5, 16, 16\): .*Set "
                 r"data.layout=tbhw or data.layout=bthw", id="ambiguous-4-axes"),
    pytest.param(_not_hdf5, r"cannot read .*notes.h5 as an HDF5 file", id="not-hdf5"),
])
def test_bad_input_is_one_line_naming_it(tmp_path, data_cfg, make, message):
    data = data_cfg(*make(tmp_path), *ONE_SPLIT)
    with pytest.raises(FramepredError, match=message) as caught:
        source = build_source(data, "train")
        for index, start in source.window_starts(WINDOW, WINDOW):
            source.read(index, start, start + WINDOW)
    assert "\n" not in str(caught.value)


def test_missing_extra_names_it(tmp_path, data_cfg, monkeypatch):
    import sys

    data = data_cfg("data=hdf5", f"data.path={write_h5(tmp_path / 'r.h5', 'rate', rain(8))}",
                    "data.dataset=rate")
    monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py now raises ImportError
    with pytest.raises(FramepredError, match=r'data=hdf5 needs h5py.*pip install '
                       r'"framepred\[weather\]"'):
        build_source(data, "train")


# --- data=rain_cells ---------------------------------------------------------------------


def test_rain_cells_are_deterministic_mostly_dry_and_move(data_cfg):
    data = data_cfg("data=rain_cells", "data.train_sequences=60")
    source = build_source(data, "train")
    videos = np.stack([source.read(i) for i in range(len(source))])  # [N, T, H, W, 1]
    assert videos.shape == (60, WINDOW, 16, 16, 1) and videos.dtype == np.float32
    again = build_source(data, "train")
    np.testing.assert_array_equal(again.read(7), videos[7])
    other = build_source(data_cfg("data=rain_cells", "data.seed=1"), "train")
    assert not np.array_equal(other.read(7), videos[7])
    assert not np.array_equal(build_source(data, "val").read(0), videos[0])  # seed + 1
    assert (videos >= 0).all() and not ((videos > 0) & (videos < 0.1)).any()  # dry is 0
    dry = (videos == 0).mean(axis=(1, 2, 3, 4))
    assert 0.6 <= dry.mean() <= 0.9
    assert videos.max() > 10.0  # heavy rain somewhere: peaks reach tens of mm/h
    # The centre of mass of rain moves between frames.
    rows, cols = np.arange(16)[:, None], np.arange(16)[None, :]
    mass = videos[..., 0].sum(axis=(2, 3))  # [N, T]
    wet = (mass > 0).all(axis=1)
    centre = np.stack([(videos[..., 0] * rows).sum(axis=(2, 3)),
                       (videos[..., 0] * cols).sum(axis=(2, 3))], -1)[wet] / mass[wet, :, None]
    shifts = np.linalg.norm(np.diff(centre, axis=1), axis=-1)  # [wet N, T-1] px
    assert wet.sum() >= 30 and np.median(shifts) > 0.3
    batch = next(iter(window_batches(data, "train", batch_size=4)))
    np.testing.assert_array_equal(batch.numpy(), videos[:4])


def test_rain_cells_need_one_channel(data_cfg):
    with pytest.raises(FramepredError, match=r"data=rain_cells makes one channel.*"
                       r"data.channels=3; set data.channels=1"):
        build_source(data_cfg("data=rain_cells", "data.channels=3"), "train")


def test_the_unit_is_the_files_units_attribute(tmp_path, data_cfg):
    """data.units: an HDF5 dataset's or netCDF variable's `units` attribute (CF), which
    data.normalize's statistics carry into the run; None where a file names none."""
    import xarray

    from framepred.data import fit_normalization, units

    write_h5(tmp_path / "radar.h5", "rate", rain(20), units="mm/h")
    write_h5(tmp_path / "bare.h5", "rate", rain(20))
    xarray.Dataset({"t2m": (("time", "y", "x"), rain(20) + 270.0, {"units": "K"})}).to_netcdf(
        tmp_path / "t2m.nc", engine="h5netcdf")
    radar = data_cfg("data=hdf5", f"data.path={tmp_path / 'radar.h5'}", "data.dataset=rate",
                     *ONE_SPLIT)
    assert units(radar) == "mm/h" and fit_normalization(radar).units == "mm/h"
    assert units(data_cfg("data=hdf5", f"data.path={tmp_path / 'bare.h5'}",
                          "data.dataset=rate", *ONE_SPLIT)) is None
    assert units(data_cfg("data=netcdf", f"data.path={tmp_path / 't2m.nc'}",
                          "data.variable=t2m", *ONE_SPLIT)) == "K"
    assert units(data_cfg("data=rain_cells")) == "mm/h" and units(data_cfg()) is None
