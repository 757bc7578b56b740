"""Scheduled and reverse scheduled sampling for next_frame training (trainer.sampling)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from framepred import models
from framepred.config import ModelConfig
from framepred.errors import FramepredError
from framepred.run.folder import RunPaths
from tests.helpers.cli import run_jax_script
from tests.helpers.run_if import run_if

DATA = SimpleNamespace(frame_size=[16, 16], channels=1, context_frames=3, future_frames=3)
STEPS = 5  # context + future - 1: the next_frame training pairs
SCHEDULE = dict(start_value=1.0, changing_rate=2e-5, stop_step=50000,
                reverse_steps=(25000, 50000), reverse_alpha=5000.0)  # OpenSTL's mmnist config
SAMPLING_RUN = ["debug=fast", "model.form=next_frame", "trainer.verbose=0",
                "trainer.forecast_images=0"]  # debug=fast: 8 sequences / batch 4 = 2 steps


# --- the schedules, against OpenSTL's code (openstl/utils/predrnn_utils.py) -----------


def _openstl_scheduled(iterations, start_value, changing_rate, stop_step, **_):
    """`schedule_sampling`'s eta, as PredRNN.training_step carries it from step to step."""
    eta, values = start_value, []
    for itr in range(iterations):
        eta = eta - changing_rate if itr < stop_step else 0.0
        values.append(eta)
    return values


def _openstl_reverse(itr, reverse_steps, reverse_alpha, **_):
    """`reserve_schedule_sampling_exp`'s (r_eta, eta), transcribed."""
    first, second = reverse_steps
    if itr < first:
        r_eta = 0.5
    elif itr < second:
        r_eta = 1.0 - 0.5 * math.exp(-float(itr - first) / reverse_alpha)
    else:
        r_eta = 1.0
    if itr < first:
        eta = 0.5
    elif itr < second:
        eta = 0.5 - (0.5 / (second - first)) * (itr - first)
    else:
        eta = 0.0
    return r_eta, eta


def _probabilities(kind, itr):
    return np.asarray(models.true_frame_probabilities(kind, itr, STEPS, 3, **SCHEDULE))


def test_scheduled_sampling_matches_openstl():
    openstl = _openstl_scheduled(60001, **SCHEDULE)
    for itr in (0, 1, 24999, 49998, 49999, 50000, 60000):
        # Context steps always read the truth; the future ones with OpenSTL's eta.
        expected = [1.0, 1.0, 1.0, openstl[itr], openstl[itr]]
        np.testing.assert_allclose(_probabilities("scheduled", itr), expected, atol=1e-6)
    # By hand: linear from 1 to 0 over sampling_stop_step = 50000 steps.
    assert _probabilities("scheduled", 0)[-1] == pytest.approx(0.99998)
    assert _probabilities("scheduled", 24999)[-1] == pytest.approx(0.5, abs=1e-6)
    assert _probabilities("scheduled", 49999)[-1] == pytest.approx(0.0, abs=1e-6)


def test_reverse_scheduled_sampling_matches_openstl():
    for itr in (0, 24999, 25000, 30000, 37500, 49999, 50000, 70000):
        r_eta, eta = _openstl_reverse(itr, **SCHEDULE)
        # Step 0 reads frame 0; steps 1, 2 are context (r_eta), 3, 4 forecast (eta).
        np.testing.assert_allclose(_probabilities("reverse_scheduled", itr),
                                   [1.0, r_eta, r_eta, eta, eta], atol=1e-6)
    # By hand, one alpha into the change: 1 - 0.5 / e and 0.5 - 0.5 * 5000 / 25000.
    np.testing.assert_allclose(_probabilities("reverse_scheduled", 30000)[2:4],
                               [1 - 0.5 / math.e, 0.4], atol=1e-6)


# --- the sampling model ------------------------------------------------------------


def _network(normalization="layer"):
    cfg = ModelConfig(form="next_frame", filters=[4, 4], kernel_size=[3, 3], patch_size=2,
                      normalization=normalization)
    keras.utils.set_random_seed(0)
    return models.build_model(cfg, DATA)


def _windows(seed=0, batch=2):
    """next_frame inputs: frames 0 ... 4 of 6-frame windows."""
    return np.random.default_rng(seed).random((batch, STEPS, 16, 16, 1), dtype=np.float32)


def _sampled(network, kind, iteration=0, **schedule):
    model = models.build_sampled_next_frame(network, kind, 3, 3, seed=1,
                                            **{**SCHEDULE, **schedule})
    model.get_layer("sampling").iteration.assign(iteration)
    return model


@pytest.mark.parametrize("normalization", ["none", "group"])
@pytest.mark.parametrize("kind", ["scheduled", "reverse_scheduled"])
def test_outside_training_the_sampled_model_is_teacher_forced(kind, normalization):
    network = _network(normalization)
    model = _sampled(network, kind, iteration=60000)  # past every schedule: eta = 0
    frames = _windows()
    np.testing.assert_allclose(np.asarray(model(frames, training=False)),
                               np.asarray(network(frames)), atol=1e-5)
    assert int(model.get_layer("sampling").iteration) == 60000  # inference does not count


def test_scheduled_training_reads_the_truth_at_eta_one_and_forecasts_at_eta_zero():
    network = _network()
    frames = _windows()
    teacher = np.asarray(network(frames))
    at_one = _sampled(network, "scheduled", changing_rate=0.0)  # eta stays 1
    np.testing.assert_allclose(np.asarray(at_one(frames, training=True)), teacher, atol=1e-5)

    at_zero = _sampled(network, "scheduled", iteration=50000)
    trained = np.asarray(at_zero(frames, training=True))
    assert int(at_zero.get_layer("sampling").iteration) == 50001
    # Outputs 0 ... 2 read context frames only; 3 and 4 read the model's own forecasts.
    np.testing.assert_allclose(trained[:, :3], teacher[:, :3], atol=1e-5)
    assert np.abs(trained[:, 3:] - teacher[:, 3:]).max() > 1e-3
    # The oracle for eta = 0: frame 3 is the forecast from frames 0 ... 2, and so on.
    fed = frames.copy()
    for t in (3, 4):
        fed[:, t] = np.asarray(network(fed[:, :t]))[:, -1]
    np.testing.assert_allclose(trained, np.asarray(network(fed)), atol=1e-5)


def test_reverse_training_samples_context_steps_too():
    network = _network()
    model = _sampled(network, "reverse_scheduled")  # before reverse_steps[0]: 0.5 everywhere
    frames = _windows(batch=64)
    trained = np.asarray(model(frames, training=True))
    changed = np.abs(trained - np.asarray(network(frames))).max(axis=(2, 3, 4)) > 1e-5  # [B, T]
    assert not changed[:, 0].any()  # step 0 always reads frame 0
    # Step 1, in the context, reads the forecast of frame 1 half of the time.
    assert 0.3 < changed[:, 1].mean() < 0.7


def test_mask_draws_follow_the_probabilities_and_count_training_calls():
    layer = models.SampleTrueFrames("reverse_scheduled", 3, seed=3, **SCHEDULE)
    frames = np.zeros((4000, STEPS, 1, 1, 1), np.float32)
    mask = np.asarray(layer(frames, training=True))  # iteration 0: 1, then 0.5 everywhere
    assert mask.shape == (4000, STEPS) and set(np.unique(mask)) <= {0.0, 1.0}
    assert mask[:, 0].all()
    np.testing.assert_allclose(mask[:, 1:].mean(axis=0), 0.5, atol=0.04)
    assert not np.array_equal(mask, np.asarray(layer(frames, training=True)))  # fresh draws
    np.testing.assert_array_equal(np.asarray(layer(frames)), 1.0)  # inference: truth
    assert int(layer.iteration) == 2


def test_sampled_checkpoint_reloads_and_forecasts(tmp_path):
    from framepred.run import trained

    network = _network("group")
    model = _sampled(network, "scheduled", iteration=123)
    model.save(tmp_path / "sampled.keras")
    reloaded = trained.load_checkpoint(tmp_path / "sampled.keras")
    assert int(reloaded.get_layer("sampling").iteration) == 123
    assert models.model_form(reloaded) == "next_frame"
    assert trained.expected_frames(reloaded)["context_frames"] is None
    context = _windows(4)[:, :3]
    np.testing.assert_allclose(models.forecast(reloaded, context, 4),
                               models.forecast(network, context, 4, carry_states=False),
                               atol=1e-5)


# --- config and training runs ------------------------------------------------------


@pytest.mark.parametrize(("overrides", "key"), [
    (["trainer.sampling=scheduled"], "trainer.sampling=scheduled"),  # encoder_forecaster
    (["model.form=next_frame", "trainer.reverse_sampling_steps=[5,5]"],
     "trainer.reverse_sampling_steps"),
    (["model.form=next_frame", "trainer.sampling_start_value=1.5"],
     "trainer.sampling_start_value"),
    (["model.form=next_frame", "trainer.reverse_sampling_alpha=0"],
     "trainer.reverse_sampling_alpha"),
])
def test_config_errors_name_the_key(compose_train, overrides, key):
    from framepred import config

    with pytest.raises(FramepredError, match=key.replace("[", r"\[")):
        config.validate(compose_train(["debug=fast", *overrides]))


def _iteration(checkpoint) -> int:
    return int(keras.models.load_model(checkpoint).get_layer("sampling").iteration)


def test_scheduled_run_forecasts_evaluates_predicts_and_resumes(compose_train, tmp_path):
    from framepred.evaluate import evaluate
    from framepred.predict import predict
    from framepred.train import train

    overrides = [*SAMPLING_RUN, "trainer.sampling=scheduled",
                 "trainer.sampling_changing_rate=0.25", "trainer.sampling_stop_step=4"]
    run = RunPaths(tmp_path / "run")
    payload = train(compose_train(overrides), run_dir=run.root)
    assert payload["checkpoint"] == "checkpoints/best.keras"
    assert all(math.isfinite(v["mean"]) for v in payload["model"].values())
    assert _iteration(run.last) == 2  # one count per optimizer step

    # Resuming to more epochs continues the schedule from the backup.
    train(compose_train([*overrides, "trainer.epochs=2"]), run_dir=run.root)
    assert _iteration(run.last) == 4

    evaluated = evaluate(compose_train([f"checkpoint={run.best}"], config_name="evaluate"),
                         out_dir=tmp_path / "evaluated")
    assert math.isfinite(evaluated["model"]["mse"]["mean"])
    clip = np.random.default_rng(0).random((5, 16, 16, 1), dtype=np.float32)
    np.save(tmp_path / "clip.npy", clip)
    result = predict(compose_train([f"checkpoint={run.best}", f"input={tmp_path / 'clip.npy'}",
                                    f"output={tmp_path / 'out'}"], config_name="predict"))
    assert np.load(tmp_path / "out" / "forecast.npy").shape == (result["steps"], 16, 16, 1)


def test_reverse_scheduled_run_trains(compose_train, tmp_path):
    from framepred.train import train

    run = RunPaths(tmp_path)
    payload = train(compose_train([*SAMPLING_RUN, "trainer.sampling=reverse_scheduled",
                                   "trainer.reverse_sampling_steps=[1,3]",
                                   "trainer.reverse_sampling_alpha=1"]), run_dir=run.root)
    assert all(math.isfinite(v["mean"]) for v in payload["model"].values())
    assert _iteration(run.last) == 2


@run_if(extra="jax")
def test_scheduled_run_under_jax(tmp_path):
    """The train command under KERAS_BACKEND=jax, without TensorFlow: the JAX trainer
    carries the count and the seed; then, in the same interpreter, the checkpoint and
    the schedules under JAX."""
    run_dir = tmp_path / "jax_run"
    args = [*SAMPLING_RUN, "trainer.sampling=scheduled", "trainer.sampling_changing_rate=0.25",
            "trainer.sampling_stop_step=4", "trainer.schedule=onecycle",
            f"hydra.run.dir={run_dir}"]
    code = (
        "import sys\n"
        "from framepred import train\n"
        "sys.argv = ['framepred.train', *sys.argv[1:]]\n"
        "try:\n"
        "    train.main()\n"
        "except SystemExit as stop:\n"
        "    assert not stop.code, stop.code\n"
        "import keras\n"
        "assert keras.backend.backend() == 'jax'\n"
        f"model = keras.models.load_model({str(RunPaths(run_dir).last)!r})\n"
        "print('iteration', int(model.get_layer('sampling').iteration))\n"
        "from framepred import models, optimizers\n"
        "p = models.true_frame_probabilities('reverse_scheduled', 30000, 4, 2)\n"
        "print('reverse', [round(float(v), 4) for v in p])\n"
        "print('onecycle', round(float(optimizers.OneCycle(1.0, 10)(2)), 4))\n"
    )
    result = run_jax_script(code, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "iteration 2" in result.stdout
    # The same schedules under JAX: PredRNN-V2's at step 30000 (context 1 - 0.5/e,
    # forecast 0.4), and the one-cycle peak (warm-up ends at 0.3 * 10 - 1 = step 2).
    assert "reverse [1.0, 0.8161, 0.4, 0.4]" in result.stdout
    assert "onecycle 1.0" in result.stdout
