"""data.normalize: round trips, statistics of the training split in bounded memory,
and a training run on a field in physical units that evaluates and predicts in them."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest

from framepred.data.normalize import DataStatistics, fit
from tests.helpers.run_if import run_if

KINDS = ["minmax", "zscore", "log1p"]


def rain_like(shape, seed=0) -> np.ndarray:
    """Non-negative, heavy-tailed values with many zeros, in mm/h."""
    rng = np.random.default_rng(seed)
    values = rng.gamma(0.6, 4.0, size=shape).astype(np.float32)
    values[rng.random(shape) < 0.6] = 0.0
    return values


class ArraySource:
    """The SequenceSource interface over an in-memory or memory-mapped array
    [N, T, H, W, C]; counts the frames it hands out at once."""

    parallel_reads = None

    def __init__(self, array):
        self.array = array
        self.largest_read = 0

    def __len__(self):
        return len(self.array)

    def num_frames(self, index):
        return self.array.shape[1]

    def read(self, index, start=0, stop=None):
        frames = np.asarray(self.array[index, start:stop], dtype=np.float32)
        self.largest_read = max(self.largest_read, len(frames))
        return frames


def _data(kind, channels=2, clip=None):
    from types import SimpleNamespace

    return SimpleNamespace(normalize=kind, clip=clip, channels=channels)


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_within_1e6_relative(kind):
    values = rain_like((3, 5, 8, 8, 2))
    fitted = fit(_data(kind), ArraySource(values))
    back = fitted.inverse(fitted.forward(values))
    np.testing.assert_allclose(back, values, rtol=1e-6, atol=1e-6 * float(values.max()))
    restored = DataStatistics.from_json(fitted.to_json())
    np.testing.assert_array_equal(restored.forward(values), fitted.forward(values))


@pytest.mark.parametrize("kind", KINDS)
def test_statistics_per_channel_match_numpy(kind):
    values = rain_like((4, 6, 8, 8, 2), seed=1)
    values[..., 1] *= 10  # a second variable in other units
    fitted = fit(_data(kind), ArraySource(values))
    flat = values.reshape(-1, 2).astype(np.float64)
    np.testing.assert_allclose(fitted.minimum, flat.min(0))
    np.testing.assert_allclose(fitted.maximum, flat.max(0))
    np.testing.assert_allclose(fitted.mean, flat.mean(0), rtol=1e-9)
    np.testing.assert_allclose(fitted.std, flat.std(0), rtol=1e-6)
    scaled = fitted.forward(values)
    if kind in ("minmax", "log1p"):
        assert scaled.min() >= 0 and scaled.max() == pytest.approx(1.0, abs=1e-6)
    else:
        np.testing.assert_allclose(scaled.reshape(-1, 2).mean(0), 0, atol=1e-5)


def test_clip_applies_before_the_statistics():
    values = rain_like((2, 4, 8, 8, 1))
    values[0, 0, 0, 0, 0] = 500.0  # one outlier
    fitted = fit(_data("minmax", channels=1, clip=[0.0, 50.0]), ArraySource(values))
    assert fitted.maximum == [50.0]
    assert fitted.forward(values).max() == pytest.approx(1.0)


def test_statistics_stream_in_bounded_memory(tmp_path):
    """A 64 MiB memory-mapped file: the pass holds one slab, never the file."""
    path = tmp_path / "big.npy"
    big = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32,
                                    shape=(16, 256, 64, 64, 1))  # 64 MiB
    for index in range(16):
        big[index] = rain_like((256, 64, 64, 1), seed=index)
    big.flush()
    del big
    source = ArraySource(np.load(path, mmap_mode="r"))
    tracemalloc.start()
    fitted = fit(_data("log1p", channels=1), source)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert source.largest_read <= 32  # frames per read: one slab
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB for a 64 MiB file"
    assert fitted.maximum[0] > 1.0


def test_log1p_refuses_negative_values():
    from framepred.errors import FramepredError

    values = rain_like((1, 2, 4, 4, 1)) - 1.0
    with pytest.raises(FramepredError, match="data.normalize=log1p needs values >= 0"):
        fit(_data("log1p", channels=1), ArraySource(values))


@pytest.mark.slow
@run_if(extra="weather")  # the extrapolation baseline and the HDF5 clip
def test_a_field_in_mm_per_hour_trains_evaluates_and_predicts_in_data_units(compose_train,
                                                                            tmp_path):
    """npy of rain rates (mm/h, outside [0, 1]) with data.normalize=log1p: the run stores
    its statistics, evaluate reports MSE in mm/h, predict writes mm/h."""
    from framepred.evaluate import evaluate
    from framepred.predict import predict
    from framepred.train import train

    rates = rain_like((12, 6, 16, 16))  # [N, T, H, W], bthw
    np.save(tmp_path / "rain.npy", rates)
    data = ["data=npy", f"data.path={tmp_path / 'rain.npy'}", "data.layout=bthw",
            "data.normalize=log1p", "data.val_fraction=0.25", "data.test_fraction=0.25"]
    run = tmp_path / "run"
    train(compose_train(["debug=fast", *data, "trainer.forecast_images=1"]), run_dir=run)
    saved = json.loads((run / "normalization.json").read_text())
    assert saved["kind"] == "log1p" and saved["maximum"][0] > 1.0

    checkpoint = run / "checkpoints" / "best.keras"
    payload = evaluate(compose_train([f"checkpoint={checkpoint}", "evaluate.thresholds=[0.5,2]",
                                      "evaluate.fss_scales=[1,3]",
                                      "evaluate.baselines=[copy_last,extrapolation]"],
                                     config_name="evaluate"), out_dir=tmp_path / "eval")
    model = payload["model"]
    assert model["mse_units"]["mean"] > model["mse"]["mean"]  # mm/h, not [0, 1]
    assert "csi@0.5" in model and "fss@2/3" in model
    assert set(payload) == {"model", "copy_last", "extrapolation", "beats_best_baseline",
                            "split", "checkpoint", "data"}
    verdict = payload["beats_best_baseline"]
    assert "csi@2" in verdict and "far@2" in verdict and "bias@2" not in verdict  # bias: best at 1
    assert set(verdict["csi@0.5"]["best_baseline"]) <= {"copy_last", "extrapolation", None}

    np.save(tmp_path / "clip.npy", rates[0])  # [T, H, W] in mm/h
    predict(compose_train([f"checkpoint={checkpoint}", f"input={tmp_path / 'clip.npy'}",
                           f"output={tmp_path / 'out'}"], config_name="predict"))
    forecast = np.load(tmp_path / "out" / "forecast.npy")
    assert forecast.shape == (3, 16, 16, 1) and forecast.max() > 1.0  # data units

    # The same clip as an HDF5 field: predict reads it as data=hdf5 would.
    import h5py

    with h5py.File(tmp_path / "clip.h5", "w") as file:
        file.create_dataset("rain", data=rates[0])
    predict(compose_train([f"checkpoint={checkpoint}", f"input={tmp_path / 'clip.h5'}",
                           "data.dataset=rain", f"output={tmp_path / 'out_h5'}"],
                          config_name="predict"))
    np.testing.assert_allclose(np.load(tmp_path / "out_h5" / "forecast.npy"), forecast,
                               rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_two_variables_train_evaluate_and_predict(compose_train, tmp_path):
    """data.channels=2 (rain rate and a temperature-like field, zscore, linear head):
    the whole path keeps both channels; pictures show the chosen one in a colormap."""
    from PIL import Image

    from framepred.evaluate import evaluate
    from framepred.predict import predict
    from framepred.train import train

    rng = np.random.default_rng(3)
    fields = np.concatenate([rain_like((12, 6, 16, 16, 1)),
                             rng.normal(280.0, 5.0, (12, 6, 16, 16, 1)).astype(np.float32)],
                            axis=-1)  # [N, T, H, W, 2]
    np.save(tmp_path / "fields.npy", fields)
    data = ["data=npy", f"data.path={tmp_path / 'fields.npy'}", "data.layout=bthwc",
            "data.channels=2", "data.normalize=zscore", "data.val_fraction=0.25",
            "data.test_fraction=0.25"]
    run = tmp_path / "run"
    train(compose_train(["debug=fast", *data, "model.output_activation=linear",
                         "visualize.channel=1", "visualize.colormap=viridis"]), run_dir=run)
    checkpoint = run / "checkpoints" / "best.keras"
    payload = evaluate(compose_train([f"checkpoint={checkpoint}"], config_name="evaluate"),
                       out_dir=tmp_path / "eval")
    assert payload["model"]["mse_units"]["mean"] > 1.0  # kelvin and mm/h, not z-scores
    np.save(tmp_path / "clip.npy", fields[0])  # [T, H, W, 2]
    predict(compose_train([f"checkpoint={checkpoint}", f"input={tmp_path / 'clip.npy'}",
                           f"output={tmp_path / 'out'}", "visualize.channel=1",
                           "visualize.colormap=viridis"], config_name="predict"))
    forecast = np.load(tmp_path / "out" / "forecast.npy")
    assert forecast.shape == (3, 16, 16, 2)
    assert 250 < forecast[..., 1].mean() < 310  # the second variable, back in kelvin
    with Image.open(tmp_path / "out" / "grid.png") as grid:
        assert grid.mode == "RGB"  # one channel through the colormap


def test_a_clip_alone_applies_where_the_model_reads():
    """data.clip with data.normalize=none still clips, in training as in predict."""
    values = rain_like((2, 4, 8, 8, 1))
    fitted = fit(_data("none", channels=1, clip=[0.0, 1.0]), ArraySource(values))
    assert fitted.active
    wrapped = fitted.wrap(ArraySource(values))
    assert wrapped.read(0).max() <= 1.0 and values.max() > 1.0
    plain = fit(_data("none", channels=1), ArraySource(values))
    assert not plain.active and isinstance(plain.wrap(ArraySource(values)), ArraySource)
