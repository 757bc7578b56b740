"""framepred.skill against pysteps' verification module (detcatscores, spatialscores)."""

import itertools

import numpy as np
import pytest
from omegaconf import OmegaConf
from scipy.ndimage import gaussian_filter

from framepred.errors import FramepredError
from framepred.skill import (
    CATEGORICAL,
    HIGHER_IS_BETTER,
    LOWER_IS_BETTER,
    SkillMeans,
    categorical_scores,
    contingency,
    fss,
    fss_counts,
    fss_from_counts,
    score_name,
    validate_fss_scales,
    validate_thresholds,
)
from tests.helpers.run_if import skip_module_unless

skip_module_unless(extra="dev")  # pysteps, the oracle
from pysteps.verification import detcatscores, spatialscores  # noqa: E402

THRESHOLDS = (0.1, 0.5, 1.0, 2.0)
SCALES = (1, 2, 3, 4, 7)
# pysteps' det_cat_fct names: ETS is its GSS, BIAS the frequency bias.
PYSTEPS_NAMES = {name: name.upper() for name in CATEGORICAL}


def below(threshold):
    """pysteps' det_cat_fct counts `value > thr`; ours, `value >= thr`, is the same
    count at the next float below the threshold."""
    return np.nextafter(threshold, -np.inf)


def rain_fields(shape, seed=0, nan_fraction=0.0):
    """A smooth non-negative field and a noisy forecast of it, with NaNs sprinkled."""
    rng = np.random.default_rng(seed)
    observed = np.maximum(gaussian_filter(rng.normal(size=shape), 1.5, axes=(-2, -1)) * 4, 0)
    forecast = np.maximum(observed + rng.normal(0, 0.5, size=shape), 0)
    for field in (observed, forecast):
        field[rng.random(shape) < nan_fraction] = np.nan
    return forecast, observed


def pysteps_categorical(forecast, observed, threshold):
    """det_cat_fct on the pairs without NaN, with our `>=`; our names."""
    valid = ~(np.isnan(forecast) | np.isnan(observed))
    result = detcatscores.det_cat_fct(forecast[valid], observed[valid], below(threshold),
                                      scores=[PYSTEPS_NAMES[name] for name in CATEGORICAL])
    return {name: float(result[PYSTEPS_NAMES[name]]) for name in CATEGORICAL}


@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_categorical_scores_match_pysteps(threshold):
    forecast, observed = rain_fields((3, 24, 24), nan_fraction=0.1)
    counts = contingency(forecast, observed, threshold)
    assert counts.dtype == np.float64 and counts.sum() == np.sum(
        ~(np.isnan(forecast) | np.isnan(observed)))
    ours = categorical_scores(counts)
    assert list(ours) == list(CATEGORICAL)
    np.testing.assert_allclose(list(ours.values()),
                               list(pysteps_categorical(forecast, observed, threshold).values()),
                               rtol=1e-12)


def test_an_event_is_a_value_at_or_above_the_threshold():
    """Values on the threshold count as events (pysteps' fss; its det_cat_fct uses >)."""
    observed = np.array([0.0, 1.0, 1.0, 2.0])
    forecast = np.array([1.0, 1.0, 0.0, 0.5])
    np.testing.assert_array_equal(contingency(forecast, observed, 1.0), [1, 2, 1, 0])
    frame_f, frame_o = forecast.reshape(2, 2), observed.reshape(2, 2)
    assert fss(frame_f, frame_o, 1.0, 1) == spatialscores.fss(frame_f, frame_o, 1.0, 1)


def test_nan_pairs_are_left_out_of_the_table():
    """pysteps' det_cat_fct counts a NaN as 'no event'; here the pair is left out."""
    forecast = np.array([2.0, np.nan, 2.0, 0.0])
    observed = np.array([2.0, 2.0, np.nan, 0.0])
    np.testing.assert_array_equal(contingency(forecast, observed, 1.0), [1, 0, 0, 1])


def test_categorical_scores_accumulate_over_batches():
    forecast, observed = rain_fields((4, 16, 16), seed=1, nan_fraction=0.05)
    for threshold in THRESHOLDS:
        summed = contingency(forecast[:1], observed[:1], threshold) + contingency(
            forecast[1:], observed[1:], threshold)
        np.testing.assert_array_equal(summed, contingency(forecast, observed, threshold))
        assert categorical_scores(summed) == categorical_scores(
            contingency(forecast, observed, threshold))


def test_undefined_ratios_are_nan_and_ets_follows_hss():
    """Every small table: the same as pysteps where pysteps is defined, ETS = HSS/(2-HSS)."""
    for table in itertools.product(range(3), repeat=4):
        ours = categorical_scores(table)
        hits, misses, false_alarms, negatives = table
        with np.errstate(divide="ignore", invalid="ignore"):
            theirs = detcatscores.det_cat_fct_compute(
                {"hits": np.array(hits), "misses": np.array(misses),
                 "false_alarms": np.array(false_alarms),
                 "correct_negatives": np.array(negatives)},
                [PYSTEPS_NAMES[name] for name in CATEGORICAL])
        for name in CATEGORICAL:
            if np.isfinite(theirs[PYSTEPS_NAMES[name]]) or name != "ets":
                np.testing.assert_allclose(ours[name], theirs[PYSTEPS_NAMES[name]],
                                           err_msg=f"{name} of {table}")
        with np.errstate(invalid="ignore"):
            np.testing.assert_allclose(ours["ets"], ours["hss"] / (2 - ours["hss"]),
                                       err_msg=f"ets of {table}")
    assert np.isnan(categorical_scores([0, 0, 0, 5])["csi"])


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("threshold", THRESHOLDS[1:])
def test_fss_matches_pysteps(threshold, scale):
    forecast, observed = rain_fields((20, 24))
    forecast[3, 4] = np.nan  # pysteps and ours: no event there
    assert fss(forecast, observed, threshold, scale) == pytest.approx(
        spatialscores.fss(forecast, observed, threshold, scale), rel=1e-12)


def test_fss_accumulates_like_pysteps_over_frames():
    forecast, observed = rain_fields((3, 2, 16, 20), seed=2)
    for threshold, scale in itertools.product(THRESHOLDS[1:], SCALES):
        state = spatialscores.fss_init(threshold, scale)
        for frame_f, frame_o in zip(forecast.reshape(-1, 16, 20), observed.reshape(-1, 16, 20)):
            spatialscores.fss_accum(state, frame_f, frame_o)
        counts = fss_counts(forecast[:1], observed[:1], threshold, scale) + fss_counts(
            forecast[1:], observed[1:], threshold, scale)
        np.testing.assert_allclose(
            counts, [state["sum_fct_sq"], state["sum_fct_obs"], state["sum_obs_sq"]], rtol=1e-12)
        assert fss_from_counts(counts) == pytest.approx(spatialscores.fss_compute(state))


def test_fss_without_events_is_nan():
    assert np.isnan(fss(np.zeros((8, 8)), np.zeros((8, 8)), 1.0, 3))


def skill_batch(seed):
    forecast, observed = rain_fields((2, 3, 16, 16, 1), seed=seed, nan_fraction=0.02)
    return observed, forecast


def test_skill_means_per_step_and_pooled_match_pysteps():
    batches = [skill_batch(seed) for seed in (3, 4)]
    means = SkillMeans([0.5, 1.0], [1, 4])
    for truth, forecast in batches:
        means.update(truth, forecast)
    result = means.result()
    assert set(result) == {"csi@0.5", "pod@0.5", "far@0.5", "ets@0.5", "hss@0.5", "bias@0.5",
                           "csi@1", "pod@1", "far@1", "ets@1", "hss@1", "bias@1",
                           "fss@0.5/1", "fss@0.5/4", "fss@1/1", "fss@1/4"}
    assert all(len(entry["per_step"]) == 3 for entry in result.values())
    truth = np.concatenate([truth for truth, _ in batches])  # [B, T, H, W, C]
    forecast = np.concatenate([forecast for _, forecast in batches])
    for threshold in (0.5, 1.0):
        per_step = [pysteps_categorical(forecast[:, t], truth[:, t], threshold) for t in range(3)]
        pooled = pysteps_categorical(forecast, truth, threshold)
        for name in CATEGORICAL:
            entry = result[f"{name}@{threshold:g}"]
            np.testing.assert_allclose(entry["per_step"], [s[name] for s in per_step])
            assert entry["mean"] == pytest.approx(pooled[name])
        for scale in (1, 4):
            states = [spatialscores.fss_init(threshold, scale) for _ in range(3)]
            for b, t in itertools.product(range(4), range(3)):
                spatialscores.fss_accum(states[t], forecast[b, t, ..., 0], truth[b, t, ..., 0])
            entry = result[f"fss@{threshold:g}/{scale}"]
            np.testing.assert_allclose(entry["per_step"],
                                       [spatialscores.fss_compute(s) for s in states])
            pooled = spatialscores.fss_merge(spatialscores.fss_merge(states[0], states[1]),
                                             states[2])
            assert entry["mean"] == pytest.approx(spatialscores.fss_compute(pooled))


def test_skill_means_treats_channels_as_part_of_the_field():
    truth, forecast = skill_batch(5)
    two_channels = SkillMeans([0.5], [3])
    two_channels.update(np.concatenate([truth, truth[..., ::-1, :]], axis=-1),
                        np.concatenate([forecast, forecast[..., ::-1, :]], axis=-1))
    one_channel = SkillMeans([0.5], [3])
    one_channel.update(np.concatenate([truth, truth[:, :, :, ::-1]]),
                       np.concatenate([forecast, forecast[:, :, :, ::-1]]))
    assert two_channels.result() == one_channel.result()


def test_perfect_forecast_scores_best():
    truth, _ = skill_batch(6)
    means = SkillMeans([0.5], [1, 4])
    means.update(truth, truth.copy())
    result = means.result()
    for key, best in {"csi@0.5": 1, "pod@0.5": 1, "far@0.5": 0, "bias@0.5": 1, "hss@0.5": 1,
                      "fss@0.5/1": 1, "fss@0.5/4": 1}.items():
        assert result[key]["per_step"] == [best] * 3 and result[key]["mean"] == best, key


def test_score_names_and_directions():
    assert score_name("csi@0.5") == "csi" and score_name("fss@2/4") == "fss"
    assert HIGHER_IS_BETTER == {"csi", "pod", "ets", "hss", "fss"}
    assert LOWER_IS_BETTER == {"far"}
    assert "bias" not in HIGHER_IS_BETTER | LOWER_IS_BETTER


@pytest.mark.parametrize("thresholds", [
    pytest.param([1.0, 0.5], id="decreasing"),
    pytest.param([0.5, 0.5], id="repeated"),
    pytest.param([0.5, float("nan")], id="nan"),
    pytest.param(["0.5"], id="string-item"),
    pytest.param("0.5", id="not-a-list"),
    pytest.param([1.0, 1.0000001], id="same-key"),
])
def test_bad_thresholds_name_the_key(thresholds):
    with pytest.raises(FramepredError, match=r"^evaluate\.thresholds=.*") as error:
        validate_thresholds(thresholds)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(("scales", "thresholds"), [
    pytest.param([0], [0.5], id="zero"),
    pytest.param([2.5], [0.5], id="fraction"),
    pytest.param([True], [0.5], id="bool"),
    pytest.param([4, 2], [0.5], id="decreasing"),
    pytest.param([4], [], id="no-thresholds"),
])
def test_bad_fss_scales_name_the_key(scales, thresholds):
    with pytest.raises(FramepredError, match=r"^evaluate\.fss_scales=.*") as error:
        validate_fss_scales(scales, thresholds)
    assert "\n" not in str(error.value)


def test_good_lists_pass_including_hydras():
    config = OmegaConf.create({"thresholds": [0.5, 1, 5], "fss_scales": [1, 4]})
    validate_thresholds(config.thresholds)
    validate_fss_scales(config.fss_scales, config.thresholds)
    validate_thresholds([], key="x")
    validate_fss_scales([], [])
    with pytest.raises(FramepredError, match=r"^evaluate\.thresholds="):
        SkillMeans([2.0, 1.0], [])
