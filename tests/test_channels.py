"""Channels: gray, RGB and RGBA convert only in pictures (image files, video,
arrays read with data.normalize=none); variables, and every 2-channel array, must
match data.channels one to one, or the source stops when built, naming the file.

Oracles: the arrays the files were written from, and Pillow's own "L" and "RGB"
conversions for pictures.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from framepred.data import build_source, fit_normalization
from framepred.errors import FramepredError
from tests.helpers.cli import error_lines, run_in_one_process
from tests.helpers.fields import write_h5, write_nc
from tests.helpers.files import write_frames
from tests.helpers.run_if import run_if

# debug=fast: 16x16 frames, 3 context + 3 future = windows of 6 frames.
WINDOW = 6
ONE_SPLIT = ("data.val_fraction=0", "data.test_fraction=0")


def variables(channels: int, sequences: int = 4, frames: int = 8) -> np.ndarray:
    """float32 [N, T, 16, 16, C] in data units, each channel its own variable: rain
    rates in mm/h, then temperatures around 280 K, 300 K, ..."""
    rng = np.random.default_rng(channels)
    shape = (sequences, frames, 16, 16)
    planes = [rng.gamma(0.8, 8.0, shape)] + [
        rng.normal(280.0 + 20.0 * c, 5.0, shape) for c in range(1, channels)]
    return np.stack(planes, axis=-1).astype(np.float32)


def npy_source(tmp_path, fields: np.ndarray) -> tuple[str, ...]:
    np.save(tmp_path / "fields.npy", fields)
    return ("data=npy", f"data.path={tmp_path / 'fields.npy'}", "data.layout=bthwc")


def hdf5_source(tmp_path, fields: np.ndarray) -> tuple[str, ...]:
    path = write_h5(tmp_path / "fields.h5", "fields", fields)  # 5 axes: bthwc
    return ("data=hdf5", f"data.path={path}", "data.dataset=fields")


def netcdf_source(tmp_path, fields: np.ndarray) -> tuple[str, ...]:
    series = fields.reshape(-1, *fields.shape[2:])  # [N, T, H, W, C] -> [N*T, H, W, C]
    path = write_nc(tmp_path / "fields.nc", series.transpose(0, 3, 1, 2),
                    dims=("time", "variable", "y", "x"), variable="fields")
    return ("data=netcdf", f"data.path={path}", "data.variable=fields")


SOURCES = [pytest.param(npy_source, id="npy"),
           pytest.param(hdf5_source, id="hdf5", marks=run_if(extra="weather")),
           pytest.param(netcdf_source, id="netcdf", marks=run_if(extra="weather"))]


# --- variables: one to one --------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("found, asked", [(2, 3), (3, 1), (4, 3)])
def test_variables_in_units_of_another_count_are_refused(tmp_path, data_cfg, source,
                                                         found, asked):
    data = data_cfg(*source(tmp_path, variables(found)), f"data.channels={asked}",
                    "data.normalize=zscore", *ONE_SPLIT)
    with pytest.raises(FramepredError) as caught:
        build_source(data, "train")
    message = str(caught.value)
    assert "\n" not in message and "fields." in message  # names the file
    assert f"holds {found} channel(s) per frame" in message
    assert f"but data.channels={asked}; set data.channels={found}" in message
    assert "variables must match data.channels one to one" in message
    assert ("gray, RGB and RGBA convert to data.channels=1 or 3 only in pictures: image "
            "files, video, and arrays read with data.normalize=none") in message


@pytest.mark.parametrize("source", SOURCES)
def test_two_variables_with_two_channels_stay_two_distinct_variables(tmp_path, data_cfg,
                                                                     source):
    fields = variables(2)
    data = data_cfg(*source(tmp_path, fields), "data.channels=2", "data.normalize=zscore",
                    *ONE_SPLIT)
    built = build_source(data, "train")
    window = built.read(0, 0, WINDOW)
    assert window.shape == (WINDOW, 16, 16, 2)
    # Each channel is its own variable, read as written (netcdf: one series of N*T frames).
    first = fields.reshape(-1, 16, 16, 2)[:WINDOW] if "netcdf" in data.source else \
        fields[built.spans[0].sequence, :WINDOW]
    np.testing.assert_allclose(window, first, rtol=1e-6)
    statistics = fit_normalization(data)
    np.testing.assert_allclose(statistics.mean, fields.reshape(-1, 2).mean(axis=0), rtol=1e-4)
    np.testing.assert_allclose(statistics.std, fields.reshape(-1, 2).std(axis=0), rtol=1e-3)
    assert abs(statistics.mean[1] - statistics.mean[0]) > 200  # ~8 mm/h against ~300 K


def test_a_two_channel_array_is_never_gray_plus_alpha(tmp_path, data_cfg):
    pairs = np.random.default_rng(0).integers(0, 256, (4, 8, 16, 16, 2), dtype=np.uint8)
    for asked in (1, 3):
        data = data_cfg(*npy_source(tmp_path, pairs), f"data.channels={asked}", *ONE_SPLIT)
        with pytest.raises(FramepredError, match=(
                rf"fields.npy holds 2 channel\(s\) per frame \(shape \(4, 8, 16, 16, 2\)\), "
                rf"but data.channels={asked}; set data.channels=2: a 2-channel array holds "
                r"two variables, never gray plus alpha")):
            build_source(data, "train")
    data = data_cfg(*npy_source(tmp_path, pairs), "data.channels=2", *ONE_SPLIT)
    built = build_source(data, "train")
    np.testing.assert_allclose(built.read(0, 0, WINDOW) * 255,
                               pairs[built.spans[0].sequence, :WINDOW], atol=1e-3)


# --- pictures: gray, RGB and RGBA convert -----------------------------------------------


def pictures(channels: int) -> np.ndarray:
    """uint8 [N, T, 16, 16, C]: random gray (C=1), RGB (3) or RGBA (4) frames."""
    shape = (3, 8, 16, 16, channels)
    return np.random.default_rng(channels).integers(0, 256, shape, dtype=np.uint8)


def pillow(frames: np.ndarray, mode: str) -> np.ndarray:
    """Frames [T, H, W, C] uint8 through Pillow's conversion to `mode`, as [T, H, W, C]."""
    source_mode = {1: "L", 3: "RGB", 4: "RGBA"}[frames.shape[-1]]
    converted = np.stack([np.asarray(Image.fromarray(f.squeeze(-1) if source_mode == "L"
                                                     else f, source_mode).convert(mode))
                          for f in frames])
    return converted[..., None] if converted.ndim == 3 else converted


CONVERSIONS = [pytest.param(1, 3, "RGB", id="gray-to-rgb"),
               pytest.param(3, 1, "L", id="rgb-to-gray"),
               pytest.param(4, 3, "RGB", id="rgba-to-rgb")]


@pytest.mark.parametrize("found, asked, mode", CONVERSIONS)
def test_npy_pictures_convert_with_normalize_none(tmp_path, data_cfg, found, asked, mode):
    frames = pictures(found)
    data = data_cfg(*npy_source(tmp_path, frames), f"data.channels={asked}", *ONE_SPLIT)
    built = build_source(data, "train")
    read = built.read(0, 0, WINDOW)
    expected = pillow(frames[built.spans[0].sequence, :WINDOW], mode)
    assert read.shape == (WINDOW, 16, 16, asked)
    np.testing.assert_allclose(read * 255, expected, atol=1.0)  # Pillow rounds luma


@pytest.mark.parametrize("normalize", ["none", "minmax"])
@pytest.mark.parametrize("found, asked, mode", CONVERSIONS)
def test_image_files_are_pictures_whatever_normalize(tmp_path, data_cfg, found, asked,
                                                     mode, normalize):
    frames = pictures(found)
    for index, sequence in enumerate(frames):
        write_frames(tmp_path / "clips" / f"s{index}",
                     sequence[..., 0] if found == 1 else sequence)
    data = data_cfg("data=frames", f"data.path={tmp_path / 'clips'}", f"data.channels={asked}",
                    f"data.normalize={normalize}", *ONE_SPLIT)
    built = build_source(data, "train")
    read = built.read(0, 0, WINDOW)
    expected = pillow(frames[built.spans[0].sequence, :WINDOW], mode)
    assert read.shape == (WINDOW, 16, 16, asked)
    np.testing.assert_allclose(read * 255, expected, atol=1e-3)  # Pillow converted them


# --- predict's clips: the run's rule ----------------------------------------------------


def test_predict_clips_follow_the_runs_channel_rule(tmp_path, data_cfg):
    from framepred.data.clips import read_clips

    fields = variables(2)[0]  # [T, H, W, 2] in data units
    np.save(tmp_path / "fields.npy", fields)
    refused = data_cfg("data=npy", "data.channels=3", "data.normalize=zscore")
    with pytest.raises(FramepredError, match=(
            r"fields.npy holds 2 channel\(s\) per frame \(shape \(8, 16, 16, 2\)\), but "
            r"data.channels=3; set data.channels=2: with data.normalize=zscore its channels "
            r"are variables, not colours")):
        read_clips(tmp_path / "fields.npy", refused)
    (clip,) = read_clips(tmp_path / "fields.npy",
                         data_cfg("data=npy", "data.channels=2", "data.normalize=zscore"))
    np.testing.assert_allclose(clip.frames, fields, rtol=1e-6)

    rgba = pictures(4)[0]  # [T, H, W, 4] uint8
    np.save(tmp_path / "rgba.npy", rgba)
    (clip,) = read_clips(tmp_path / "rgba.npy", data_cfg("data=npy", "data.channels=3"))
    np.testing.assert_allclose(clip.frames * 255, rgba[..., :3], atol=1e-3)
    np.save(tmp_path / "pairs.npy", rgba[..., :2])
    with pytest.raises(FramepredError, match=r"pairs.npy holds 2 channel\(s\).*never gray plus"):
        read_clips(tmp_path / "pairs.npy", data_cfg("data=npy", "data.channels=1"))


# --- the command line -------------------------------------------------------------------


@pytest.mark.slow
def test_cli_stops_on_variables_of_another_count_and_trains_on_the_same(tmp_path):
    """Issue 22 as reported: 2 variables with data.channels=3 exited 0, training on the
    first repeated three times. Now: one error line, exit 2; with data.channels=2 it
    trains and logs two different statistics."""
    np.save(tmp_path / "fields.npy", variables(2, sequences=8))
    data = ["debug=fast", "data=npy", f"data.path={tmp_path / 'fields.npy'}",
            "data.layout=bthwc", "data.normalize=zscore", "model.output_activation=linear"]
    refused, trained = run_in_one_process([
        {"module": "framepred.train",
         "args": [*data, "data.channels=3", f"hydra.run.dir={tmp_path / 'refused'}"]},
        {"module": "framepred.train",
         "args": [*data, "data.channels=2", f"hydra.run.dir={tmp_path / 'trained'}"]},
    ], tmp_path)
    lines = error_lines(refused["stderr"])
    assert refused["rc"] == 2 and len(lines) == 1, refused["stderr"][-2000:]
    assert lines[0].startswith("framepred: error:") and "fields.npy holds 2 channel(s)" in \
        lines[0] and "data.channels=3; set data.channels=2" in lines[0]
    assert trained["rc"] == 0, trained["stderr"][-2000:]
    saved = (tmp_path / "trained" / "normalization.json").read_text()
    from framepred.data.normalize import DataStatistics

    statistics = DataStatistics.from_json(saved)
    assert len(statistics.mean) == 2 and abs(statistics.mean[1] - statistics.mean[0]) > 200
