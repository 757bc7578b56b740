"""Per-frame losses for video prediction: SSIM, MS-SSIM, MSE, MAE and their blend.

Laid out as `keras/src/losses/losses.py`: every loss is first a plain function
`(y_true, y_pred, **options) -> per-frame values` (`ssim_loss`, `ms_ssim_loss`,
`mse`, `mae`, `blend`), and a thin `keras.losses.Loss` class wraps it for
reduction, sample weights and serialization; the classes share one base,
`FrameLoss`, which keeps the function and its keyword options as Keras'
`LossFunctionWrapper` keeps `fn` and `fn_kwargs`. Frames are the last three axes `[H, W, C]`; any
leading axes are kept, so a video batch `[B, T, H, W, C]` gives `[B, T]` and an
image batch `[B, H, W, C]` gives `[B]`.

The SSIM and MS-SSIM kernels are in `framepred.ssim`. Only `keras.ops` is used,
never TensorFlow, so the module runs under any Keras 3 backend. Statistics are
computed in float32 whatever the input dtype, so mixed-precision models still
get a float32 loss.
"""

import keras
from keras import ops

from framepred.ssim import (
    DEFAULT_FILTER_SIGMA,
    DEFAULT_FILTER_SIZE,
    DEFAULT_K1,
    DEFAULT_K2,
    DEFAULT_MAX_VAL,
    DEFAULT_POWER_FACTORS,
    check_frames,
    ms_ssim,
    ssim,
)

# The blend of Zhao et al. 2017: 0.84 of the structural term. Declared here only; the
# config's `loss.alpha`, `loss.structural` and `loss.pixel` take them from here.
DEFAULT_ALPHA = 0.84
DEFAULT_STRUCTURAL = "ssim"
DEFAULT_PIXEL = "mae"
# The terms a blend is made of (`loss.structural`, `loss.pixel`).
STRUCTURAL = ("ssim", "ms_ssim")
PIXEL = ("mae", "mse")


# ---------------------------------------------------------------------------
# Per-frame loss functions
# ---------------------------------------------------------------------------


def ssim_loss(y_true, y_pred, max_val=DEFAULT_MAX_VAL, filter_size=DEFAULT_FILTER_SIZE,
              filter_sigma=DEFAULT_FILTER_SIGMA, k1=DEFAULT_K1, k2=DEFAULT_K2):
    """`1 - ssim` of each frame; the options are `framepred.ssim.ssim`'s.

    Returns float32 `[...]` for frames `[..., H, W, C]`.

    >>> import numpy as np
    >>> frames = np.random.default_rng(0).uniform(size=(2, 3, 16, 16, 1)).astype("float32")
    >>> values = np.asarray(ssim_loss(frames, frames))
    >>> values.shape, bool(np.allclose(values, 0.0, atol=1e-6))
    ((2, 3), True)
    """
    return 1.0 - ssim(y_true, y_pred, max_val, filter_size, filter_sigma, k1, k2)


def ms_ssim_loss(y_true, y_pred, max_val=DEFAULT_MAX_VAL, power_factors=DEFAULT_POWER_FACTORS,
                 filter_size=DEFAULT_FILTER_SIZE, filter_sigma=DEFAULT_FILTER_SIGMA,
                 k1=DEFAULT_K1, k2=DEFAULT_K2):
    """`1 - ms_ssim` of each frame; the options are `framepred.ssim.ms_ssim`'s.

    Returns float32 `[...]` for frames `[..., H, W, C]`.
    """
    return 1.0 - ms_ssim(y_true, y_pred, max_val, power_factors, filter_size, filter_sigma, k1, k2)


def mse(y_true, y_pred):
    """Mean squared error of each frame: `mean((y_true - y_pred)**2)` over H, W, C.

    Returns float32 `[...]` for frames `[..., H, W, C]`.
    """
    check_frames(y_true, y_pred, 1, "mse")
    error = ops.cast(y_true, "float32") - ops.cast(y_pred, "float32")
    return ops.mean(ops.square(error), axis=(-3, -2, -1))


def mae(y_true, y_pred):
    """Mean absolute error of each frame: `mean(|y_true - y_pred|)` over H, W, C.

    Returns float32 `[...]` for frames `[..., H, W, C]`.
    """
    check_frames(y_true, y_pred, 1, "mae")
    error = ops.cast(y_true, "float32") - ops.cast(y_pred, "float32")
    return ops.mean(ops.abs(error), axis=(-3, -2, -1))


def _check_choice(key, value, allowed):
    if value not in allowed:
        raise ValueError(f"{key}={value!r} is not supported; expected one of {allowed}.")


def _check_blend(alpha, structural, pixel):
    try:
        alpha_ok = 0.0 <= float(alpha) <= 1.0
    except (TypeError, ValueError):
        alpha_ok = False
    if not alpha_ok:
        raise ValueError(f"alpha={alpha!r} is not supported; expected a number in [0, 1].")
    _check_choice("structural", structural, STRUCTURAL)
    _check_choice("pixel", pixel, PIXEL)


def blend(y_true, y_pred, alpha=DEFAULT_ALPHA, structural=DEFAULT_STRUCTURAL,
          pixel=DEFAULT_PIXEL, max_val=DEFAULT_MAX_VAL, filter_size=DEFAULT_FILTER_SIZE,
          filter_sigma=DEFAULT_FILTER_SIGMA, power_factors=DEFAULT_POWER_FACTORS, k1=DEFAULT_K1,
          k2=DEFAULT_K2):
    """Structural + pixel loss of each frame (Zhao et al. 2017), see `BlendLoss`.

    Formula:

    ```python
    loss = alpha * (1 - structural(y_true, y_pred)) + (1 - alpha) * pixel(y_true, y_pred)
    ```

    Returns float32 `[...]` for frames `[..., H, W, C]`.

    Raises:
        ValueError: for `alpha` outside `[0, 1]` or an unknown `structural` or
            `pixel` name.
    """
    _check_blend(alpha, structural, pixel)
    if structural == "ssim":
        structural_loss = ssim_loss(y_true, y_pred, max_val, filter_size, filter_sigma, k1, k2)
    else:
        structural_loss = ms_ssim_loss(
            y_true, y_pred, max_val, power_factors, filter_size, filter_sigma, k1, k2
        )
    pixel_loss = mae(y_true, y_pred) if pixel == "mae" else mse(y_true, y_pred)
    return alpha * structural_loss + (1.0 - alpha) * pixel_loss


# ---------------------------------------------------------------------------
# Loss classes
# ---------------------------------------------------------------------------


def _expand_sample_weight(sample_weight, values_shape):
    """[B] -> [B, 1] -> [B, T]: a lower-rank weight applies to whole sequences.

    Keras 3's `squeeze_or_expand_to_same_rank` only fixes a rank difference of
    one when the last axis is 1; a [B] weight against [B, T] values is rejected,
    and when B == T it broadcasts [B] along the time axis, weighting frames
    instead of sequences. Appending trailing axes and broadcasting first makes
    the leading axes line up.
    """
    sample_weight = ops.convert_to_tensor(sample_weight)
    weight_rank, values_rank = len(sample_weight.shape), len(values_shape)
    if weight_rank == 0 or weight_rank >= values_rank:
        return sample_weight
    # [B] -> [B, 1]
    sample_weight = ops.reshape(
        sample_weight,
        tuple(ops.shape(sample_weight)) + (1,) * (values_rank - weight_rank),
    )
    # [B, 1] -> [B, T]
    return ops.broadcast_to(sample_weight, values_shape)


class FrameLoss(keras.losses.Loss):
    """Wraps a per-frame loss function `fn(y_true, y_pred, **fn_kwargs)` as a Keras loss.

    The base of every loss class here, as Keras' `LossFunctionWrapper`: `call`
    passes the keyword options kept in `fn_kwargs` on to `fn`, and `get_config`
    returns them beside the reduction, name and dtype. `call` returns one value
    per frame (`[B, T]` or `[B]`). A `sample_weight` of shape `[B]` weights
    whole sequences, `[B, T]` single frames.

    Args:
        fn: The per-frame loss function.
        reduction: How Keras reduces the per-frame values. `"sum_over_batch_size"`
            (default) and `"mean"`: sum of the weighted values divided by their
            number (frames, B*T); `"sum"`: their sum;
            `"mean_with_sample_weight"`: their sum divided by the sum of the
            (broadcast) weights; `"none"` or `None`: no reduction, `[B, T]`.
        name: Name of the loss instance.
        dtype: Dtype (or `keras.DTypePolicy`) Keras casts the inputs to and
            returns the loss in; `None` means `keras.backend.floatx()`. The
            statistics themselves are always float32.
        **fn_kwargs: Keyword options of `fn`, plain Python values (they go into
            the config as they are).
    """

    def __init__(self, fn, reduction="sum_over_batch_size", name=None, dtype=None, **fn_kwargs):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._dtype_arg = dtype
        self.fn = fn
        self.fn_kwargs = fn_kwargs

    def __call__(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            # Per-frame values have the shape of the frames' leading axes.
            frame_axes = tuple(y_pred.shape[:-3])
            if any(d is None for d in frame_axes):
                frame_axes = tuple(ops.shape(y_pred)[:-3])
            sample_weight = _expand_sample_weight(sample_weight, frame_axes)
        return super().__call__(y_true, y_pred, sample_weight=sample_weight)

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred, **self.fn_kwargs)

    def get_config(self):
        config = super().get_config()
        if self._dtype_arg is not None:
            # From the argument, with Keras' public policy functions: Keras' own
            # `Loss.get_config` leaves the dtype out.
            policy = keras.dtype_policies.get(self._dtype_arg)
            config["dtype"] = keras.dtype_policies.serialize(policy)
        return {**config, **self.fn_kwargs}


def _window(max_val, filter_size, filter_sigma, k1, k2):
    """The SSIM window's options as plain numbers, for `fn_kwargs` (a config or NumPy
    may hand over other number types, which a saved config could not hold)."""
    return dict(max_val=float(max_val), filter_size=int(filter_size),
                filter_sigma=float(filter_sigma), k1=float(k1), k2=float(k2))


def _exponents(power_factors):
    return [float(p) for p in power_factors]


@keras.saving.register_keras_serializable(package="framepred")
class SSIMLoss(FrameLoss):
    """`1 - ssim` per frame.

    Formula:

    ```python
    loss = 1 - ssim(y_true, y_pred)  # per frame, see `framepred.ssim.ssim`
    ```

    Args:
        max_val: Dynamic range of the pixel values.
        filter_size, filter_sigma, k1, k2: The Gaussian window and the stabilizer
            constants of `framepred.ssim.ssim`.
        reduction, name, dtype: As for `FrameLoss`.
    """

    def __init__(self, max_val=DEFAULT_MAX_VAL, filter_size=DEFAULT_FILTER_SIZE,
                 filter_sigma=DEFAULT_FILTER_SIGMA, k1=DEFAULT_K1, k2=DEFAULT_K2,
                 reduction="sum_over_batch_size", name="ssim_loss", dtype=None):
        super().__init__(ssim_loss, reduction, name, dtype,
                         **_window(max_val, filter_size, filter_sigma, k1, k2))


@keras.saving.register_keras_serializable(package="framepred")
class MSSSIMLoss(FrameLoss):
    """`1 - ms_ssim` per frame.

    Formula:

    ```python
    loss = 1 - ms_ssim(y_true, y_pred)  # per frame, see `framepred.ssim.ms_ssim`
    ```

    Args:
        max_val: Dynamic range of the pixel values.
        power_factors: One exponent per scale, finest first; frames must be at
            least `ms_ssim_min_size(len(power_factors), filter_size)` pixels.
        filter_size, filter_sigma, k1, k2: The Gaussian window and the stabilizer
            constants of `framepred.ssim.ssim`.
        reduction, name, dtype: As for `FrameLoss`.
    """

    def __init__(self, max_val=DEFAULT_MAX_VAL, power_factors=DEFAULT_POWER_FACTORS,
                 filter_size=DEFAULT_FILTER_SIZE, filter_sigma=DEFAULT_FILTER_SIGMA,
                 k1=DEFAULT_K1, k2=DEFAULT_K2, reduction="sum_over_batch_size",
                 name="ms_ssim_loss", dtype=None):
        super().__init__(ms_ssim_loss, reduction, name, dtype,
                         power_factors=_exponents(power_factors),
                         **_window(max_val, filter_size, filter_sigma, k1, k2))


@keras.saving.register_keras_serializable(package="framepred")
class MSELoss(FrameLoss):
    """Mean squared error per frame.

    Formula:

    ```python
    loss = mean((y_true - y_pred)**2)  # over H, W, C of each frame
    ```

    Args:
        reduction, name, dtype: As for `FrameLoss`.
    """

    def __init__(self, reduction="sum_over_batch_size", name="mse_loss", dtype=None):
        super().__init__(mse, reduction, name, dtype)


@keras.saving.register_keras_serializable(package="framepred")
class MAELoss(FrameLoss):
    """Mean absolute error per frame.

    Formula:

    ```python
    loss = mean(|y_true - y_pred|)  # over H, W, C of each frame
    ```

    Args:
        reduction, name, dtype: As for `FrameLoss`.
    """

    def __init__(self, reduction="sum_over_batch_size", name="mae_loss", dtype=None):
        super().__init__(mae, reduction, name, dtype)


@keras.saving.register_keras_serializable(package="framepred")
class BlendLoss(FrameLoss):
    """Structural + pixel loss per frame (Zhao et al. 2017).

    Zhao, Gallo, Frosio & Kautz, "Loss Functions for Image Restoration with
    Neural Networks", IEEE TCI 2017, found `0.84 * (1 - MS-SSIM) + 0.16 * L1`
    better than either term alone: the structural term keeps edges and
    contrast, the pixel term keeps colours and brightness.

    Formula:

    ```python
    loss = alpha * (1 - structural(y_true, y_pred)) + (1 - alpha) * pixel(y_true, y_pred)
    ```

    Args:
        alpha: Weight of the structural term, in `[0, 1]`.
        structural: `"ssim"` or `"ms_ssim"`.
        pixel: `"mae"` or `"mse"`.
        max_val: Dynamic range of the pixel values.
        power_factors: MS-SSIM exponents per scale (used when
            `structural="ms_ssim"`).
        filter_size, filter_sigma, k1, k2: The Gaussian window and the stabilizer
            constants of `framepred.ssim.ssim`.
        reduction, name, dtype: As for `FrameLoss`.

    Raises:
        ValueError: for `alpha` outside `[0, 1]` or an unknown `structural` or
            `pixel` name.
    """

    def __init__(self, alpha=DEFAULT_ALPHA, structural=DEFAULT_STRUCTURAL, pixel=DEFAULT_PIXEL,
                 max_val=DEFAULT_MAX_VAL, filter_size=DEFAULT_FILTER_SIZE,
                 filter_sigma=DEFAULT_FILTER_SIGMA, power_factors=DEFAULT_POWER_FACTORS,
                 k1=DEFAULT_K1, k2=DEFAULT_K2, reduction="sum_over_batch_size",
                 name="blend_loss", dtype=None):
        _check_blend(alpha, structural, pixel)
        super().__init__(blend, reduction, name, dtype, alpha=float(alpha),
                         structural=str(structural), pixel=str(pixel),
                         power_factors=_exponents(power_factors),
                         **_window(max_val, filter_size, filter_sigma, k1, k2))


# The loss class of each `loss.name` (framepred.config.LossName is made of these
# names), and the `build_loss` options it takes.
LOSSES = {
    "ssim": (SSIMLoss, ("max_val", "filter_size", "filter_sigma")),
    "ms_ssim": (MSSSIMLoss, ("max_val", "power_factors", "filter_size", "filter_sigma")),
    "mse": (MSELoss, ()),
    "mae": (MAELoss, ()),
    "blend": (BlendLoss, ("alpha", "structural", "pixel", "max_val", "filter_size",
                          "filter_sigma", "power_factors")),
}
# Every option of `build_loss`: the keys of `framepred.config.LossConfig` but `name`.
_BUILD_OPTIONS = frozenset(key for _, keys in LOSSES.values() for key in keys)


def build_loss(name, **options):
    """The loss instance for a loss config: `build_loss(**loss_config)`.

    `name` is one of `LOSSES` (`framepred.config.LossName`), and the options
    are the other keys of `framepred.config.LossConfig`. Options a loss does not
    use are ignored (`alpha` only matters for "blend"); options not given take
    the loss class's defaults.

    >>> type(build_loss("blend", alpha=0.5, structural="ms_ssim")).__name__
    'BlendLoss'

    Raises:
        ValueError: for a name outside `LOSSES`, or bad blend options.
        TypeError: for an option that no loss takes.
    """
    _check_choice("loss name", name, tuple(LOSSES))
    unknown = sorted(set(options) - _BUILD_OPTIONS)
    if unknown:
        raise TypeError(f"build_loss got options no loss takes: {unknown}; the options are "
                        f"{sorted(_BUILD_OPTIONS)}")
    # A config's `name` is a `LossName` member, whose hash and equality are its
    # value's (a str Enum whose names are its values), so it looks the class up too.
    loss_class, keys = LOSSES[name]
    return loss_class(**{key: options[key] for key in keys if key in options})


__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_PIXEL",
    "DEFAULT_STRUCTURAL",
    "LOSSES",
    "PIXEL",
    "STRUCTURAL",
    "BlendLoss",
    "FrameLoss",
    "MAELoss",
    "MSELoss",
    "MSSSIMLoss",
    "SSIMLoss",
    "blend",
    "build_loss",
    "mae",
    "ms_ssim_loss",
    "mse",
    "ssim_loss",
]
