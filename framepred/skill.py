"""Nowcasting verification: categorical scores from a contingency table, and the FSS.

Each score is a plain function of forecast, observation and threshold, in the manner
of pysteps' `pysteps/verification/detcatscores.py` and `spatialscores.py` (the
oracle in `tests/test_skill.py`). Everything here is NumPy; fields are in data
units.

Conventions, stated wherever a number is shown:

- An event is `value >= threshold`, for the contingency table and the FSS alike.
  pysteps' `fss` uses `>=`, but its `det_cat_fct` uses `>`; the two agree except
  where a value equals the threshold exactly.
- Categorical scores exclude a pair (forecast, observation) when either value is
  NaN; pysteps' `det_cat_fct` says it ignores NaNs but counts them as "no event".
  The FSS needs every pixel of a neighbourhood, so there a non-finite value is
  "no event", as in pysteps' `fss_accum`.
- Scores accumulate by summing counts first (pysteps' `det_cat_fct_merge`,
  `fss_merge`): a score over many frames is the score of their pooled counts, not
  the mean of each frame's score.
- A ratio that is 0/0 is NaN, as in pysteps (CSI with no events in either field).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from framepred.errors import FramepredError

CATEGORICAL = ("csi", "pod", "far", "ets", "hss", "bias")
# Frequency bias is neither: it is best at 1.
HIGHER_IS_BETTER = frozenset({"csi", "pod", "ets", "hss", "fss"})
LOWER_IS_BETTER = frozenset({"far"})


# -- the contingency table and its scores ---------------------------------------------------


def contingency(forecast, observed, threshold) -> np.ndarray:
    """Counts of the 2x2 contingency table over all elements of two fields.

    Formula:

    ```
                        observed >= thr    observed < thr
    forecast >= thr     hits               false_alarms
    forecast < thr      misses             correct_negatives
    ```

    Args:
        forecast: array of any shape, in data units.
        observed: array of the same shape.
        threshold: the event is `value >= threshold`. A pair where either value is
            NaN is left out.

    Returns:
        float64 array `[hits, misses, false_alarms, correct_negatives]`; counts of
        several batches add up, and `categorical_scores` takes their sum.
    """
    forecast, observed = _same_shape(forecast, observed)
    valid = ~(np.isnan(forecast) | np.isnan(observed))
    return _table(forecast >= threshold, observed >= threshold, valid, axis=None)


def categorical_scores(counts) -> dict[str, float]:
    """The scores of CATEGORICAL from a contingency table (summed over any batches).

    Formula, with H hits, M misses, F false alarms, R correct negatives, N = H+M+F+R:

    ```
    csi  = H / (H + M + F)                                 critical success index
    pod  = H / (H + M)                                     probability of detection
    far  = F / (H + F)                                     false alarm ratio
    ets  = (H - Hr) / (H + M + F - Hr),  Hr = (H + M) (H + F) / N
                                                           equitable threat score
    hss  = 2 (H R - F M) / ((H + M)(M + R) + (H + F)(F + R))   Heidke skill score
    bias = (H + F) / (H + M)                               frequency bias
    ```

    pysteps computes ETS as the Gilbert skill score from POD and the false alarm
    rate, which is NaN as soon as POD is (no observed events) or when every pixel
    is an observed event; the formula above is NaN only when its own ratio is 0/0,
    and is 0 in those cases, as HSS is (ETS = HSS / (2 - HSS)).

    Args:
        counts: `[hits, misses, false_alarms, correct_negatives]`, as `contingency`
            returns them, or their sum over batches.

    Returns:
        `{score: value}` for each name in CATEGORICAL: NaN where a ratio is 0/0,
        and bias is inf when there are forecast events but no observed ones.
    """
    hits, misses, false_alarms, negatives = np.asarray(counts, dtype=np.float64)
    total = hits + misses + false_alarms + negatives
    with np.errstate(divide="ignore", invalid="ignore"):
        random_hits = (hits + misses) * (hits + false_alarms) / total
        scores = {
            "csi": hits / (hits + misses + false_alarms),
            "pod": hits / (hits + misses),
            "far": false_alarms / (hits + false_alarms),
            "ets": (hits - random_hits) / (hits + misses + false_alarms - random_hits),
            "hss": 2 * (hits * negatives - false_alarms * misses)
            / ((hits + misses) * (misses + negatives)
               + (hits + false_alarms) * (false_alarms + negatives)),
            "bias": (hits + false_alarms) / (hits + misses),
        }
    return {name: float(scores[name]) for name in CATEGORICAL}


# -- the fractions skill score --------------------------------------------------------------


def fss(forecast, observed, threshold, scale) -> float:
    """Fractions skill score (Roberts & Lean 2008) of 2-D fields.

    Formula, with If, Io the binary fields `value >= threshold` and Sf, So their
    means over a `scale` x `scale` window (zero outside the field, as pysteps'
    `uniform_filter(..., mode="constant")`), summed over pixels:

    ```
    fss = 1 - sum((Sf - So)**2) / (sum(Sf**2) + sum(So**2))
    ```

    Args:
        forecast: field `[H, W]`, or a stack of them `[..., H, W]` whose sums are
            pooled (pysteps' `fss_accum` over each field).
        observed: the same shape.
        threshold: the event is `value >= threshold`; a non-finite value is none.
        scale: window side in pixels; 1 compares the binary fields themselves.

    Returns:
        The FSS in [0, 1]; NaN when neither field has an event.
    """
    return fss_from_counts(fss_counts(forecast, observed, threshold, scale))


def fss_counts(forecast, observed, threshold, scale) -> np.ndarray:
    """The sums behind the FSS, as pysteps' `fss_accum` keeps them.

    Formula: `[sum(Sf**2), sum(Sf * So), sum(So**2)]`, with Sf, So as in `fss`.

    Args:
        forecast: field `[H, W]` or fields `[..., H, W]`, each filtered on its own.
        observed: the same shape.
        threshold: the event is `value >= threshold`; a non-finite value is none.
        scale: window side in pixels.

    Returns:
        float64 array `[sum_fct_sq, sum_fct_obs, sum_obs_sq]`; sums of several
        batches add up, and `fss_from_counts` takes their sum.
    """
    forecast, observed = _same_shape(forecast, observed)
    if forecast.ndim < 2:
        raise ValueError(f"fss needs fields [..., H, W], got shape {forecast.shape}")
    return _fss_sums(_fss_events(forecast, threshold), _fss_events(observed, threshold),
                     scale, axis=None)


def fss_from_counts(counts) -> float:
    """The FSS from `fss_counts` (summed over any batches).

    Formula: `1 - (sum_fct_sq - 2 sum_fct_obs + sum_obs_sq) / (sum_fct_sq + sum_obs_sq)`.

    Args:
        counts: `[sum_fct_sq, sum_fct_obs, sum_obs_sq]`.

    Returns:
        The FSS; NaN when both sums of squares are 0 (no event in either field).
    """
    sum_fct_sq, sum_fct_obs, sum_obs_sq = np.asarray(counts, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(1.0 - (sum_fct_sq - 2.0 * sum_fct_obs + sum_obs_sq)
                     / (sum_fct_sq + sum_obs_sq))


# -- per forecast step, over batches --------------------------------------------------------


class SkillMeans:
    """Categorical scores and FSS per forecast step, accumulated over batches.

    Keys of `result()`: `f"{score}@{threshold:g}"` for each score of CATEGORICAL and
    each threshold (`"csi@0.5"`), and `f"fss@{threshold:g}/{scale}"` for each
    threshold and scale (`"fss@0.5/4"`). Each holds:

    - `per_step`: the score of each forecast step, from that step's counts summed
      over every sample, channel and batch;
    - `mean`: the score of the counts summed over all steps as well: pooled, not
      the mean of the per-step values (the two differ when steps have different
      numbers of events).

    Channels are part of the field: a contingency table counts every pixel of every
    channel, and the FSS filters each channel's 2-D frame `[H, W]` on its own and
    pools the sums.
    """

    def __init__(self, thresholds: Sequence[float], fss_scales: Sequence[int]):
        validate_thresholds(thresholds)
        validate_fss_scales(fss_scales, thresholds)
        self.thresholds = [float(threshold) for threshold in thresholds]
        self.fss_scales = [int(scale) for scale in fss_scales]
        self._table = None  # [thresholds, T, 4]
        self._fss = None  # [thresholds, scales, T, 3]

    def update(self, truth, forecast) -> None:
        """Adds one batch, arrays `[B, T, H, W, C]` in data units."""
        truth, forecast = _same_shape(truth, forecast)
        if truth.ndim != 5:
            raise ValueError(f"SkillMeans needs [B, T, H, W, C], got shape {truth.shape}")
        steps = truth.shape[1]
        if self._table is None:
            self._table = np.zeros((len(self.thresholds), steps, 4))
            self._fss = np.zeros((len(self.thresholds), len(self.fss_scales), steps, 3))
        elif self._table.shape[1] != steps:
            raise ValueError(f"SkillMeans got {steps} forecast steps after "
                             f"{self._table.shape[1]}")
        valid = ~(np.isnan(truth) | np.isnan(forecast))
        # [B, T, H, W, C] -> [B, C, T, H, W]: fields [H, W] for the FSS, steps on axis 2.
        truth_frames = np.moveaxis(truth, -1, 1)
        forecast_frames = np.moveaxis(forecast, -1, 1)
        for i, threshold in enumerate(self.thresholds):
            self._table[i] += _table(forecast >= threshold, truth >= threshold, valid,
                                     axis=(0, 2, 3, 4))
            events_f = _fss_events(forecast_frames, threshold)
            events_o = _fss_events(truth_frames, threshold)
            for j, scale in enumerate(self.fss_scales):
                self._fss[i, j] += _fss_sums(events_f, events_o, scale, axis=(0, 1, 3, 4))

    def result(self) -> dict[str, dict]:
        """`{key: {"per_step": [float] * T, "mean": float}}`, keys as in the class doc."""
        if self._table is None:
            raise ValueError("SkillMeans.result() before any update()")
        results = {}
        for i, threshold in enumerate(self.thresholds):
            per_step = [categorical_scores(counts) for counts in self._table[i]]
            pooled = categorical_scores(self._table[i].sum(axis=0))
            for name in CATEGORICAL:
                results[f"{name}@{threshold:g}"] = {
                    "per_step": [scores[name] for scores in per_step], "mean": pooled[name]}
            for j, scale in enumerate(self.fss_scales):
                sums = self._fss[i, j]
                results[f"fss@{threshold:g}/{scale}"] = {
                    "per_step": [fss_from_counts(step) for step in sums],
                    "mean": fss_from_counts(sums.sum(axis=0))}
        return results


def score_name(key: str) -> str:
    """The score of a `SkillMeans` key: "csi@0.5" -> "csi", "fss@2/4" -> "fss"."""
    return key.partition("@")[0]


# -- the config's lists, checked --------------------------------------------------------------


def validate_thresholds(thresholds, key: str = "evaluate.thresholds") -> None:
    """FramepredError unless `thresholds` are finite numbers in increasing order, each
    once and each with its own key (`f"{t:g}"`). An empty list asks for no scores."""
    values = _listed(thresholds)
    accepted = "finite numbers in increasing order, each once, e.g. [0.5, 1, 5], or []"
    if values is None or not all(_is_number(value) and np.isfinite(value) for value in values):
        raise FramepredError(f"{key}={_shown(thresholds)} must be a list of {accepted}")
    if any(later <= earlier for earlier, later in zip(values, values[1:])):
        raise FramepredError(f"{key}={values} must be {accepted}")
    labels = [f"{value:g}" for value in values]
    if len(set(labels)) != len(labels):
        raise FramepredError(f"{key}={values} has thresholds that print the same "
                             f"({', '.join(labels)}) and would share a score's key; "
                             f"give {accepted}")


def validate_fss_scales(scales, thresholds, key: str = "evaluate.fss_scales",
                        thresholds_key: str = "evaluate.thresholds") -> None:
    """FramepredError unless `scales` are positive integers (pixels) in increasing
    order, and there are thresholds for them when there are any."""
    values = _listed(scales)
    accepted = "positive integers (pixels) in increasing order, e.g. [1, 4, 16], or []"
    if values is None or not all(_is_integer(value) and value > 0 for value in values):
        raise FramepredError(f"{key}={_shown(scales)} must be a list of {accepted}")
    if any(later <= earlier for earlier, later in zip(values, values[1:])):
        raise FramepredError(f"{key}={values} must be {accepted}")
    if values and not _listed(thresholds):
        raise FramepredError(f"{key}={values} needs {thresholds_key}: the FSS is scored at "
                             f"each threshold and scale; set {thresholds_key}=[...] or "
                             f"{key}=[]")


def check_fss_scales_fit(scales, frame_size, key: str = "evaluate.fss_scales") -> None:
    """FramepredError where an FSS window is larger than the frame: its fractions would
    be the whole frame's, the same for every larger window (Roberts and Lean 2008 use
    windows up to the domain's size)."""
    height, width = (int(size) for size in frame_size)
    larger = [int(scale) for scale in scales if int(scale) > max(height, width)]
    if larger:
        raise FramepredError(
            f"{key}={[int(scale) for scale in scales]} has window(s) {larger} larger than "
            f"the {height}x{width} frame (data.frame_size); give scales up to "
            f"{max(height, width)} pixels")


# -- helpers ----------------------------------------------------------------------------------


def _same_shape(forecast, observed) -> tuple[np.ndarray, np.ndarray]:
    forecast, observed = np.asarray(forecast), np.asarray(observed)
    if forecast.shape != observed.shape:
        raise ValueError(f"forecast {forecast.shape} and observed {observed.shape} differ")
    return forecast, observed


def _table(forecast_event, observed_event, valid, axis) -> np.ndarray:
    """[hits, misses, false_alarms, correct_negatives] of valid elements, summed on axis."""
    cells = (forecast_event & observed_event, ~forecast_event & observed_event,
             forecast_event & ~observed_event, ~forecast_event & ~observed_event)
    counts = [np.sum(cell & valid, axis=axis, dtype=np.float64) for cell in cells]
    return np.stack(counts, axis=-1)


def _fss_events(field: np.ndarray, threshold) -> np.ndarray:
    # pysteps' fss_accum sets non-finite values to thr - 1: no event.
    return np.isfinite(field) & (field >= threshold)


def _box_counts(events: np.ndarray, scale: int) -> np.ndarray:
    """The number of events in each scale x scale window of `events [..., H, W]`, with
    zeros outside the field.

    Divided by scale**2, the windows of scipy.ndimage.uniform_filter(size=scale,
    mode="constant"): for an even scale the window reaches one pixel further back
    than forward.
    """
    sums = events.astype(np.float64)
    before = scale // 2
    for axis in (-2, -1):
        pad = [(0, 0)] * sums.ndim
        pad[axis] = (before + 1, scale - 1 - before)  # the extra leading 0 starts the cumsum
        running = np.cumsum(np.pad(sums, pad), axis=axis)
        size = running.shape[axis] - scale
        sums = (np.take(running, np.arange(scale, scale + size), axis=axis)
                - np.take(running, np.arange(size), axis=axis))
    return sums


def _fss_sums(events_f, events_o, scale, axis) -> np.ndarray:
    """[sum(Sf**2), sum(Sf * So), sum(So**2)] over `axis` of fields [..., H, W].

    Sums of products of integer counts are exact in float64 (below 2**53), so a
    call's sums do not depend on the order of its frames; the fractions' scale**2
    comes out once, at the end.
    """
    counts_f, counts_o = _box_counts(events_f, scale), _box_counts(events_o, scale)
    sums = [np.sum(counts_f * counts_f, axis=axis), np.sum(counts_f * counts_o, axis=axis),
            np.sum(counts_o * counts_o, axis=axis)]
    return np.stack(sums, axis=-1) / float(scale) ** 4


def _listed(values) -> list | None:
    """A plain list of a sequence (list, tuple, OmegaConf's ListConfig); else None."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        return None
    return list(values)


def _is_number(value) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _is_integer(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _shown(values) -> str:
    listed = _listed(values)
    return str(listed if listed is not None else values)
