"""TensorBoard dashboards, read back with TensorBoard's own event reader."""

from __future__ import annotations

import colorsys
import io
import json

import numpy as np
import pytest
from PIL import Image

from framepred import visualize
from tests.helpers.events import accumulator, plugin_name, scalars
from tests.helpers.motion import HEAD, PAN, RADIUS, panning_model

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
    grid = visualize.forecast_grid(context, truth, forecast, labels=False)
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


def _hsv(rgb):
    """uint8 RGB [..., 3] -> (hue, saturation, value) arrays, by colorsys (the oracle)."""
    values = [colorsys.rgb_to_hsv(*(c / 255.0)) for c in np.reshape(rgb, (-1, 3))]
    return tuple(np.reshape([v[i] for v in values], np.shape(rgb)[:-1]) for i in range(3))


def test_flow_colours_name_the_direction():
    """(dy, dx) with y down: right red, down yellow, left cyan-blue, up violet; the hue
    goes once round as the direction turns clockwise on screen (Middlebury's wheel)."""
    turns = np.linspace(0.0, 2 * np.pi, 16, endpoint=False)  # clockwise from right
    field = np.stack([np.sin(turns), np.cos(turns)], axis=-1)[None]  # [1, 16, 2]
    colours = visualize.flow_to_rgb(field, max_displacement=1.0)[0]  # [16, 3]
    hue, saturation, value = _hsv(colours)
    assert np.all(np.diff(hue) > 0) and np.allclose(saturation, 1) and np.allclose(value, 1)
    right, down, left, up = (tuple(int(c) for c in colours[i]) for i in (0, 4, 8, 12))
    assert right == (255, 0, 0)
    assert down[0] == 255 and down[1] > 200 and down[2] == 0  # yellow
    assert left[0] == 0 and 150 < left[1] < 255 and left[2] == 255  # cyan-blue
    assert 50 < up[0] < 150 and up[1] == 0 and up[2] == 255  # violet
    # A zero dy of either sign is still red: the wheel wraps round without a seam.
    np.testing.assert_array_equal(visualize.flow_to_rgb(np.array([[[-0.0, 1.0]]]), 1.0),
                                  [[right]])
    still = visualize.flow_to_rgb(np.zeros((2, 3, 4, 2)))  # [T, H, W, 2] -> [T, H, W, 3]
    assert still.shape == (2, 3, 4, 3) and still.dtype == np.uint8 and np.all(still == 255)
    key = visualize.flow_key(9)  # the legend: a shift from the centre to each pixel
    assert tuple(key[4, 4]) == (255, 255, 255) and tuple(key[4, 8]) == right
    assert tuple(key[8, 4]) == down and tuple(key[0, 0]) == (255, 255, 255)


def test_flow_colour_grows_with_the_shift_up_to_max_displacement():
    lengths = np.linspace(0.0, 3.0, 13)  # pixels, past max_displacement = 2
    field = (lengths[:, None] * np.array([0.6, -0.8]))[None]  # [1, 13, 2]
    hue, saturation, value = _hsv(visualize.flow_to_rgb(field, max_displacement=2.0)[0])
    inside = lengths <= 2.0
    assert saturation[0] == 0 and np.all(value == 1)  # white, and never darker
    assert np.all(np.diff(saturation[inside]) > 0)
    assert np.allclose(saturation[~inside], 1)  # full colour from max_displacement on
    assert np.allclose(hue[1:], hue[-1], atol=0.01)  # one direction, one hue
    # Without a maximum the longest shift of the whole field is full colour, so the
    # steps of one field share a scale.
    steps = np.stack([np.full((2, 2, 2), 1.0), np.full((2, 2, 2), 2.0)])  # [2, H, W, 2]
    np.testing.assert_array_equal(visualize.flow_to_rgb(steps),
                                  visualize.flow_to_rgb(steps, max_displacement=np.hypot(2, 2)))
    with pytest.raises(ValueError, match="max_displacement"):
        visualize.flow_to_rgb(steps, max_displacement=0)
    with pytest.raises(ValueError, match=r"\[\.\.\., H, W, 2\]"):
        visualize.flow_to_rgb(np.zeros((4, 4, 3)))


@pytest.mark.parametrize("form", ["encoder_forecaster", "next_frame"])
def test_forecast_images_show_a_motion_heads_motion(compose_train, form, tmp_path):
    """A motion-head model's grid gains a fifth row: its motion per forecast step in flow
    colours, here a known pan of half the radius to the right (red at half strength)."""
    from framepred.callbacks import dashboards

    cfg = compose_train(["debug=fast", f"model.form={form}", *HEAD])
    windows = np.random.default_rng(0).random((1, 6, 16, 16, 1), dtype=np.float32)
    callback = dashboards.ForecastImages(tmp_path, windows, context_frames=3,
                                         motion_radius=RADIUS)
    callback.set_model(panning_model(cfg))
    callback.on_epoch_end(0)
    callback.on_train_end()

    images = accumulator(tmp_path / "images")
    assert "motion" in images.SummaryMetadata("forecast/sequence_0").summary_description
    (event,) = images.Tensors("forecast/sequence_0")
    picture = np.asarray(Image.open(io.BytesIO(event.tensor_proto.string_val[2])))
    scale, pad = visualize.display_scale((16, 16)), 2
    size = 16 * scale
    names = picture.shape[1] - (pad + 3 * (size + pad))  # the rows' names, on the left
    assert picture.shape == (pad + 5 * (size + pad), names + pad + 3 * (size + pad), 3)
    assert names > 0
    top = pad + 4 * (size + pad)
    half_red = visualize.flow_to_rgb(np.array([[PAN]]), RADIUS)[0, 0]
    assert tuple(half_red) == (255, 128, 128)
    # grey lines: white cells stay visible
    assert tuple(picture[0, names]) == (128, 128, 128)
    for step in range(3):
        left = names + pad + step * (size + pad)
        assert np.all(picture[top : top + size, left : left + size] == half_red), step


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
    # The default model (the flow head) adds a motion row.
    motion = (np.zeros((len(window) - 3, *window.shape[1:3], 2), np.float32)
              if str(cfg.model.head) != "residual" else None)
    expected = visualize.forecast_grid(context, window[3:], window[3:], scale=scale,
                                       motion=motion)
    assert picture.shape[:2] == expected.shape[:2] == (int(height), int(width))
    # The first cell is the first context frame of the first validation window (gray,
    # repeated in each channel where the motion row makes the grid RGB).
    size = 16 * scale
    names = expected.shape[1] - visualize.forecast_grid(  # the row names' column, on the left
        context, window[3:], window[3:], scale=scale, motion=motion, labels=False).shape[1]
    cell = picture[2 : 2 + size, names + 2 : names + 2 + size].reshape(size, size, -1)
    first = visualize.to_uint8(visualize.upscale(context[:1], scale))[0].reshape(size, size, -1)
    np.testing.assert_array_equal(cell, np.broadcast_to(first, (size, size, cell.shape[-1])))


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


# --- the event writer, without TensorFlow ------------------------------------------------


def test_summary_writer_matches_tf_summary_as_tensorboard_reads_them(tmp_path):
    """The same summaries through tf.summary and SummaryWriter: TensorBoard's reader
    sees the same tags, steps, plugin metadata and values."""
    tf = pytest.importorskip("tensorflow")
    from tensorboard.plugins.hparams import api as hp
    from tensorboard.plugins.hparams import metadata
    from tensorboard.util.tensor_util import make_ndarray

    from framepred.callbacks.summaries import SummaryWriter

    rng = np.random.default_rng(0)
    rgb, gray = (rng.integers(0, 256, (5, 7, c), dtype=np.uint8) for c in (3, 1))
    metrics = [("epoch_loss", "validation", "val loss")]
    with tf.summary.create_file_writer(str(tmp_path / "tf")).as_default():
        tf.summary.scalar("loss", 0.25, step=3, description="a scalar")
        tf.summary.image("rgb", rgb[None], step=2, description="a picture")
        tf.summary.image("gray", gray[None], step=2)
        tf.summary.text("note", "device: CPU", step=1)
        hp.hparams_config(hparams=[hp.HParam("lr")], metrics=[
            hp.Metric(tag, group=group, display_name=name) for tag, group, name in metrics])
        hp.hparams({"lr": 1e-3, "loss": "ssim"}, trial_id="run")
    with SummaryWriter(tmp_path / "ours") as writer:
        writer.scalar("loss", np.float32(0.25), 3, description="a scalar")
        writer.image("rgb", rgb, 2, description="a picture")
        writer.image("gray", gray, 2)
        writer.text("note", "device: CPU", 1)
        writer.hparams_config(["lr"], metrics)
        writer.hparams({"lr": 1e-3, "loss": "ssim"}, trial_id="run")

    theirs, ours = accumulator(tmp_path / "tf"), accumulator(tmp_path / "ours")
    tags = ["loss", "rgb", "gray", "note", metadata.EXPERIMENT_TAG,
            metadata.SESSION_START_INFO_TAG]
    assert ours.Tags()["tensors"] == theirs.Tags()["tensors"] == tags
    assert [plugin_name(ours, tag) for tag in tags] == [
        "scalars", "images", "images", "text", "hparams", "hparams"]
    for tag in tags:
        mine, reference = ours.SummaryMetadata(tag), theirs.SummaryMetadata(tag)
        if tag == metadata.SESSION_START_INFO_TAG:  # it records when it was written
            mine, reference = (metadata.parse_session_start_info_plugin_data(
                m.plugin_data.content) for m in (mine, reference))
            assert mine.start_time_secs > 0
            mine.start_time_secs = reference.start_time_secs = 0
        assert mine == reference, tag
        (mine,), (reference,) = ours.Tensors(tag), theirs.Tensors(tag)
        assert mine.step == reference.step, tag
        mine, reference = make_ndarray(mine.tensor_proto), make_ndarray(reference.tensor_proto)
        if plugin_name(ours, tag) == "images":  # [width, height, png]: PNG bytes may differ
            assert list(mine[:2]) == list(reference[:2]) == [b"7", b"5"]
            mine, reference = (np.asarray(Image.open(io.BytesIO(t[2]))) for t in (mine,
                                                                                 reference))
        np.testing.assert_array_equal(mine, reference, err_msg=tag)
    assert scalars(ours, "loss") == {3: 0.25}
    content = ours.PluginTagToContent("hparams")
    session = metadata.parse_session_start_info_plugin_data(
        content[metadata.SESSION_START_INFO_TAG])
    assert session.group_name == "run"
    assert session.hparams["lr"].number_value == pytest.approx(1e-3)
    assert session.hparams["loss"].string_value == "ssim"
    experiment = metadata.parse_experiment_plugin_data(content[metadata.EXPERIMENT_TAG])
    assert [(m.name.group, m.name.tag, m.display_name) for m in experiment.metric_infos] == [
        ("validation", "epoch_loss", "val loss")]


def test_training_under_jax_without_tensorflow_writes_the_dashboards(tmp_path):
    """Keras' TensorBoard callback needs TensorFlow; under JAX without it, EpochScalars
    and the dashboards still write what TensorBoard shows (read back here, with TF)."""
    pytest.importorskip("jax")
    from tests.test_jax_backend import run_jax

    code = """
import keras, numpy as np
from framepred.callbacks import dashboards
from framepred.callbacks.throughput import Throughput
assert keras.backend.backend() == "jax"
log_dir = sys.argv[1]
windows = np.random.default_rng(0).uniform(size=(8, 4, 8, 8, 1)).astype("float32")
model = keras.Sequential([keras.Input((2, 8, 8, 1)), keras.layers.Conv3D(1, 1)])
model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
callbacks = [dashboards.EpochScalars(log_dir, profile_batch=(1, 2)),
             dashboards.HParams(log_dir, {"loss": "mse", "lr": 0.01}, trial_id="jax"),
             dashboards.ForecastImages(log_dir, windows[:1], context_frames=2),
             Throughput(4, 2, log_dir=f"{log_dir}/train")]
model.fit(windows[:, :2], windows[:, 2:], batch_size=4, epochs=2, verbose=0,
          validation_data=(windows[:4, :2], windows[:4, 2:]), callbacks=callbacks)
assert sys.modules["tensorflow"] is None
print("ok")
"""
    result = run_jax(code, str(tmp_path))
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.strip().endswith("ok")

    from framepred.callbacks.throughput import TAG

    train, validation = accumulator(tmp_path / "train"), accumulator(tmp_path / "validation")
    for name in ("loss", "mae"):
        assert plugin_name(train, f"epoch_{name}") == "scalars"
        assert set(scalars(train, f"epoch_{name}")) == set(scalars(validation,
                                                                   f"epoch_{name}")) == {0, 1}
    assert scalars(train, "epoch_learning_rate") == {0: pytest.approx(0.01),
                                                     1: pytest.approx(0.01)}
    assert set(scalars(validation, "evaluation_loss_vs_iterations")) == {2, 4}  # 2 steps/epoch
    assert set(scalars(train, TAG)) == {0, 1}
    assert list((tmp_path / "train" / "plugins" / "profile").glob("*/*.xplane.pb"))
    images = accumulator(tmp_path / "images")
    assert plugin_name(images, "forecast/sequence_0") == "images"
    assert [e.step for e in images.Tensors("forecast/sequence_0")] == [0, 1]
    hparams = accumulator(tmp_path).PluginTagToContent("hparams")
    assert set(hparams) == {"_hparams_/experiment", "_hparams_/session_start_info"}
