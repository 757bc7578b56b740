"""TensorBoard dashboards, read back with TensorBoard's own event reader."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from framepred import visualize
from tests.helpers.events import accumulator, plugin_name, scalars

# --- pictures, without TensorFlow ------------------------------------------------------


def test_frame_grid_places_each_frame_in_its_cell():
    rows = [np.full((2, 3, 4, 1), 0.25), np.full((1, 3, 4, 1), 0.75)]  # [T, H, W, C]
    grid = visualize.frame_grid(rows, pad=1, pad_value=1.0)
    assert grid.shape == (1 + 2 * 4, 1 + 2 * 5, 1)
    assert np.all(grid[1:4, 1:5] == 0.25) and np.all(grid[1:4, 6:10] == 0.25)
    assert np.all(grid[5:8, 1:5] == 0.75)
    assert np.all(grid[5:8, 6:10] == 1.0)  # the shorter row ends in a blank cell
    assert np.all(grid[0] == 1.0) and np.all(grid[4] == 1.0)  # padding lines


def test_forecast_grid_rows_are_context_truth_forecast_error():
    rng = np.random.default_rng(0)
    context, truth, forecast = (rng.random((n, 5, 5, 3), dtype=np.float32) for n in (2, 3, 3))
    grid = visualize.forecast_grid(context, truth, forecast)
    pad = 2
    def cell(row, col):
        top, left = pad + row * (5 + pad), pad + col * (5 + pad)
        return grid[top : top + 5, left : left + 5]
    np.testing.assert_array_equal(cell(0, 1), context[1])
    np.testing.assert_array_equal(cell(1, 2), truth[2])
    np.testing.assert_array_equal(cell(2, 0), forecast[0])
    np.testing.assert_allclose(cell(3, 2), np.abs(truth[2] - forecast[2]))


def test_gif_keeps_every_frame_even_when_frames_repeat(tmp_path):
    still = np.full((6, 8, 8, 1), 0.5, np.float32)  # six identical frames
    path = visualize.save_gif(tmp_path / "still.gif", visualize.progress_bar(still, 3), fps=4)
    with Image.open(path) as gif:
        assert gif.n_frames == 6
        assert gif.size == (8, 8 + 2)
        assert gif.info["duration"] == 250


# --- a finished debug=fast run ---------------------------------------------------------


def test_epoch_scalars_for_train_and_validation(fast_run):
    train = accumulator(fast_run / "tensorboard" / "train")
    validation = accumulator(fast_run / "tensorboard" / "validation")
    names = ("loss", "ssim", "psnr", "mse", "mae")
    for name in names:
        assert plugin_name(train, f"epoch_{name}") == "scalars"
        assert np.isfinite(list(scalars(train, f"epoch_{name}").values())).all()
        assert set(scalars(validation, f"epoch_{name}")) == {0}  # debug=fast: one epoch
    assert scalars(train, "epoch_learning_rate")[0] == pytest.approx(1e-3)


def test_forecast_images_every_epoch(fast_run):
    from framepred.callbacks import dashboards
    from framepred.run.folder import RunPaths

    images = accumulator(fast_run / "tensorboard" / "images")
    tags = [tag for tag in images.Tags()["tensors"] if plugin_name(images, tag) == "images"]
    assert tags == ["forecast/sequence_0"]  # debug=fast: trainer.forecast_images=1
    (event,) = images.Tensors("forecast/sequence_0")  # one epoch, step 0
    assert event.step == 0
    width, height, png = event.tensor_proto.string_val  # tf.summary.image's layout
    picture = np.asarray(Image.open(io.BytesIO(png)))

    from omegaconf import OmegaConf

    cfg = OmegaConf.load(RunPaths(fast_run).config)
    window = dashboards.first_windows(cfg.data, 1)[0]  # [T, H, W, C]
    scale = visualize.display_scale(cfg.data.frame_size)
    context = window[: cfg.data.context_frames]
    expected = visualize.forecast_grid(context, window[3:], window[3:], scale=scale)
    assert picture.shape[:2] == expected.shape[:2] == (int(height), int(width))
    # The first cell is the first context frame of the first validation window.
    size = 16 * scale
    np.testing.assert_array_equal(picture[2 : 2 + size, 2 : 2 + size],
                                  visualize.to_uint8(visualize.upscale(context[:1], scale))[0])


def test_per_step_forecast_scalars_match_metrics_json(fast_run):
    results = json.loads((fast_run / "metrics.json").read_text())
    assert sorted(p.name for p in (fast_run / "tensorboard" / "forecast").iterdir()) == [
        "background", "blank", "copy_last", "model"]  # the verdict is not a run
    for entry in ("model", "copy_last", "background", "blank"):
        events = accumulator(fast_run / "tensorboard" / "forecast" / entry)
        for metric in ("ssim", "ssim_openstl", "psnr", "mse", "mae", "mse_sum", "mae_sum"):
            per_step = scalars(events, f"forecast/{metric}")
            assert sorted(per_step) == [1, 2, 3]  # t+1 ... t+H, debug=fast H = 3
            np.testing.assert_allclose([per_step[t] for t in (1, 2, 3)],
                                       results[entry][metric]["per_step"], rtol=1e-5)
            assert scalars(events, f"forecast_mean/{metric}")[0] == pytest.approx(
                results[entry][metric]["mean"], rel=1e-5)


def test_hparams_session_and_experiment(fast_run):
    from tensorboard.plugins.hparams import metadata

    root = accumulator(fast_run / "tensorboard")
    content = root.PluginTagToContent("hparams")
    session = metadata.parse_session_start_info_plugin_data(
        content[metadata.SESSION_START_INFO_TAG])
    hparams = {key: value for key, value in session.hparams.items()}
    assert hparams["loss"].string_value == "ssim"
    assert hparams["model.form"].string_value == "encoder_forecaster"
    assert hparams["model.filters"].string_value == "4"
    assert hparams["data.frame_size"].string_value == "16x16"
    assert hparams["data.source"].string_value == "moving_digits"
    assert hparams["trainer.learning_rate"].number_value == pytest.approx(1e-3)
    assert hparams["trainer.batch_size"].number_value == 4
    assert hparams["loss.alpha"].number_value == pytest.approx(0.84)
    experiment = metadata.parse_experiment_plugin_data(content[metadata.EXPERIMENT_TAG])
    metrics = {(m.name.group, m.name.tag) for m in experiment.metric_infos}
    assert ("validation", "epoch_ssim") in metrics
    assert ("forecast/model", "forecast_mean/ssim") in metrics
    assert ("forecast/model", "forecast_mean/ssim_openstl") in metrics
    # Every metric the experiment names is written where it says.
    for group, tag in metrics:
        assert tag in accumulator(fast_run / "tensorboard" / group).Tags()["tensors"]


def test_hparams_tab_lists_the_run_with_its_metrics(fast_run):
    """Asks TensorBoard's HParams backend for session groups, as the HParams tab does."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2, backend_context, list_session_groups

    logdir = str(fast_run.parent)  # the folder a sweep's runs share
    multiplexer = plugin_event_multiplexer.EventMultiplexer(
        tensor_size_guidance={"tensors": 0})
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()
    tb_context = base_plugin.TBContext(
        logdir=logdir, multiplexer=multiplexer,
        data_provider=data_provider.MultiplexerDataProvider(multiplexer, logdir))
    request = api_pb2.ListSessionGroupsRequest(
        start_index=0, slice_size=10, allowed_statuses=[
            api_pb2.STATUS_UNKNOWN, api_pb2.STATUS_SUCCESS, api_pb2.STATUS_RUNNING])
    response = list_session_groups.Handler(
        context.RequestContext(), backend_context.Context(tb_context), "", request).run()
    (group,) = [g for g in response.session_groups if g.name == fast_run.name]
    assert group.hparams["loss"].string_value == "ssim"
    values = {(m.name.group, m.name.tag): m.value for m in group.metric_values}
    results = json.loads((fast_run / "metrics.json").read_text())
    assert values[("forecast/model", "forecast_mean/ssim")] == pytest.approx(
        results["model"]["ssim"]["mean"], rel=1e-5)
    assert np.isfinite(values[("validation", "epoch_loss")])


@pytest.mark.slow
def test_profile_batch_writes_a_trace(compose_train, tmp_path):
    from framepred.train import train

    cfg = compose_train(["debug=fast", "trainer.profile_batch=[1,2]",
                         "trainer.forecast_images=0"])
    train(cfg, run_dir=tmp_path)
    profile = tmp_path / "tensorboard" / "train" / "plugins" / "profile"
    traces = list(profile.glob("*/*.xplane.pb"))
    assert traces, "trainer.profile_batch=[1,2] wrote no profile"
    assert not (tmp_path / "tensorboard" / "images").exists()  # forecast_images=0: none
