"""Config composition through Hydra's compose API, and the checks beyond types."""

from __future__ import annotations

import numpy as np
import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError

from framepred import config
from framepred.errors import FramepredError
from tests.helpers.cli import run_in_one_process

LOSSES = ["ssim", "ms_ssim", "mse", "mae", "blend"]


def test_default_config_has_the_public_keys(compose_train):
    cfg = compose_train()
    assert cfg.data.frame_size == [64, 64]
    assert (cfg.data.channels, cfg.data.context_frames, cfg.data.future_frames) == (1, 10, 10)
    assert cfg.data.source == config.Source.moving_digits
    assert cfg.data.path is None
    assert cfg.trainer.epochs >= 1 and cfg.trainer.batch_size >= 1
    assert cfg.trainer.learning_rate > 0
    assert cfg.loss.name == config.LossName.ssim
    config.validate(cfg)


def _per_frame_oracle(loss, y_true, y_pred, options) -> np.ndarray:
    """The loss option's formula per frame (docs/losses.md), `tf.image` for SSIM and
    MS-SSIM: [B, T, H, W, C] -> [B*T]."""
    import tensorflow as tf

    frames_true, frames_pred = (y.reshape(-1, *y.shape[2:]) for y in (y_true, y_pred))
    structural = {
        "ssim": lambda: 1 - tf.image.ssim(frames_true, frames_pred, options["max_val"],
                                          filter_size=options["filter_size"],
                                          filter_sigma=options["filter_sigma"]).numpy(),
        "ms_ssim": lambda: 1 - tf.image.ssim_multiscale(
            frames_true, frames_pred, options["max_val"],
            power_factors=options["power_factors"], filter_size=options["filter_size"],
            filter_sigma=options["filter_sigma"]).numpy(),
    }
    pixel = {"mse": lambda: ((frames_true - frames_pred) ** 2).mean(axis=(1, 2, 3)),
             "mae": lambda: np.abs(frames_true - frames_pred).mean(axis=(1, 2, 3))}
    if loss == "blend":
        return (options["alpha"] * structural[options["structural"]]()
                + (1 - options["alpha"]) * pixel[options["pixel"]]())
    return {**structural, **pixel}[loss]()


@pytest.mark.parametrize("loss", LOSSES)
def test_every_loss_option_builds_the_loss_it_names(compose_train, loss):
    """`loss=<option>`, composed and built as train builds it, computes that option's
    formula: the mean over frames of its per-frame value, on the default 64x64 frames."""
    from omegaconf import OmegaConf

    from framepred.losses import build_loss

    cfg = compose_train([f"loss={loss}"])
    config.validate(cfg)
    options = OmegaConf.to_container(cfg.loss, resolve=True, enum_to_str=True)
    rng = np.random.default_rng(0)
    y_true = rng.uniform(size=(2, 2, *cfg.data.frame_size, 1)).astype(np.float32)
    y_pred = np.clip(y_true + rng.normal(0, 0.2, y_true.shape), 0, 1).astype(np.float32)
    value = float(build_loss(**OmegaConf.to_container(cfg.loss, resolve=True))(y_true, y_pred))
    expected = float(_per_frame_oracle(loss, y_true, y_pred, options).mean())
    assert value == pytest.approx(expected, abs=1e-5)


def test_blend_alpha_override(compose_train):
    cfg = compose_train(["loss=blend", "loss.alpha=0.7"])
    assert cfg.loss.alpha == pytest.approx(0.7)
    assert cfg.loss.structural == config.Structural.ssim


def test_misspelled_key_fails_in_composition(compose_train):
    with pytest.raises(ConfigCompositionException, match="framesize"):
        compose_train(["data.framesize=[32,32]"])


def test_wrong_type_fails_in_composition(compose_train):
    with pytest.raises((ConfigCompositionException, ValidationError)):
        compose_train(["trainer.epochs=abc"])


def test_unknown_enum_value_names_the_allowed_ones(compose_train):
    with pytest.raises(ConfigCompositionException) as caught:
        compose_train(["model.form=transformer"])
    text = str(caught.value) + str(caught.value.__cause__)
    assert "next_frame" in text and "encoder_forecaster" in text


def test_unknown_group_option_fails(compose_train):
    with pytest.raises(Exception, match="loss"):
        compose_train(["loss=perceptual"])


def test_presets_override_only_what_they_change(compose_train):
    fast = compose_train(["debug=fast"])
    assert fast.data.frame_size == [16, 16] and fast.trainer.epochs == 1
    assert fast.loss.name == config.LossName.ssim  # untouched by the preset
    config.validate(fast)
    bench = compose_train(["experiment=moving_mnist"])
    assert bench.data.frame_size == [64, 64]
    assert list(bench.model.filters) == [128, 128, 128, 128]
    assert bench.model.form == config.Form.next_frame
    config.validate(bench)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["loss=blend", "loss.alpha=1.5"], "loss.alpha"),
        (["loss=blend", "loss.alpha=-0.1"], "loss.alpha"),
        (["data.frame_size=[8,8]", "data.digit_size=[4,6]", "model.patch_size=1"],
         "loss.filter_size"),
        (["loss=ms_ssim", "loss.power_factors=[0.0448,0.2856,0.3001,0.2363,0.1333]"],
         "161x161"),
        (["model.patch_size=3"], "model.patch_size"),
        (["trainer.epochs=0"], "trainer.epochs"),
        (["trainer.batch_size=-2"], "trainer.batch_size"),
        (["model.kernel_size=[3]"], "model.kernel_size"),
        (["data.channels=0"], "data.channels"),
    ],
)
def test_validate_names_the_key(compose_train, overrides, key):
    cfg = compose_train(overrides)
    with pytest.raises(FramepredError, match=key.replace(".", r"\.")):
        config.validate(cfg)


@pytest.fixture(scope="module")
def cli_errors(tmp_path_factory):
    """Two mistakes through the real CLI (one import, then a forked child each)."""
    tmp = tmp_path_factory.mktemp("cli_errors")
    cases = {"alpha": ["debug=fast", "loss=blend", "loss.alpha=1.5", f"hydra.run.dir={tmp / 'a'}"],
             "unknown_loss": ["loss=perceptual", f"hydra.run.dir={tmp / 'b'}"]}
    done = run_in_one_process([{"module": "framepred.train", "args": args}
                               for args in cases.values()], tmp)
    return dict(zip(cases, done))


def test_cli_user_error_is_one_line_and_exit_2(cli_errors):
    result = cli_errors["alpha"]
    assert result["rc"] == 2
    assert "Traceback" not in result["stderr"]
    errors = [line for line in result["stderr"].splitlines()
              if line.startswith("framepred: error")]
    assert errors == ["framepred: error: loss.alpha=1.5 must be in [0, 1]"]


def test_cli_unknown_loss_lists_the_options(cli_errors):
    result = cli_errors["unknown_loss"]
    assert result["rc"] != 0
    assert "Traceback" not in result["stderr"]
    for option in LOSSES:
        assert option in result["stderr"]


# --- one home for each default and each choice -------------------------------------

SCHEMAS = {"data": config.DataConfig, "model": config.ModelConfig, "loss": config.LossConfig,
           "trainer": config.TrainerConfig}
# The key that names a group's option may restate the schema's default: it says which
# option the file is (loss/ssim.yaml says name: ssim).
IDENTITY = {"data": "source", "model": "form", "loss": "name"}


def _group_files():
    from pathlib import Path

    root = Path(config.config_dir())
    return [pytest.param(group, path, id=f"{group}/{path.name}")
            for group in SCHEMAS for path in sorted((root / group).glob("*.yaml"))]


@pytest.mark.parametrize("group, path", _group_files())
def test_group_yaml_states_only_what_differs_from_the_schema(group, path):
    """The schema (framepred/config.py) holds every default once; a group's YAML sets
    only the keys whose value differs, so the two cannot drift apart."""
    from omegaconf import OmegaConf

    defaults = OmegaConf.to_container(OmegaConf.structured(SCHEMAS[group]), enum_to_str=True)
    stated = OmegaConf.to_container(OmegaConf.load(path)) or {}
    unknown = sorted(set(stated) - set(defaults))
    assert not unknown, f"{path.name} sets keys the schema lacks: {unknown}"
    restated = sorted(key for key, value in stated.items()
                      if key != IDENTITY.get(group) and value == defaults[key])
    assert not restated, f"{path.name} restates schema defaults: {restated}"


def _choices():
    return [pytest.param(choice, id=choice.__name__) for choice in config.Choice.__subclasses__()]


@pytest.mark.parametrize("choice", _choices())
def test_config_choices_are_their_plain_values(choice):
    """Below the schema a choice is its string: it compares, prints, formats and
    serializes as one, and OmegaConf's YAML (which writes names) writes the value."""
    import json

    for member in choice:
        assert member.name == member.value
        assert member == member.value and str(member) == member.value
        assert f"{member}" == member.value and json.dumps(member) == f'"{member.value}"'
        assert {member.value: 1}[member] == 1


@pytest.mark.parametrize(("key", "accepted"), [
    ("data.layout", "auto, tbhw, bthw, bthwc"),
    ("trainer.jit_compile", "auto, always, never"),
    ("trainer.verbose", "auto, 0, 1, 2"),
])
def test_layout_jit_and_verbosity_are_choices(compose_train, key, accepted):
    """Hydra refuses a value outside the choice, listing the accepted ones; Keras'
    verbosity numbers, which Hydra reads as ints, are the choice's members."""
    with pytest.raises(ConfigCompositionException) as error:
        compose_train([f"{key}=3x"])
    assert accepted in str(error.value.__cause__)
    from framepred.console import fit_verbosity

    cfg = compose_train(["trainer.verbose=0", "trainer.jit_compile=never", "data.layout=tbhw"])
    assert (cfg.trainer.verbose, cfg.trainer.jit_compile, cfg.data.layout) == (
        "0", "never", "tbhw")
    assert fit_verbosity(cfg.trainer.verbose) == 0
