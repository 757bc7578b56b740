"""SSIM and MS-SSIM of each frame, equal to `tf.image.ssim` and `tf.image.ssim_multiscale`.

Frames are the last three axes `[H, W, C]`; any leading axes are kept, so a
video batch `[B, T, H, W, C]` gives `[B, T]` and an image batch `[B, H, W, C]`
gives `[B]`. The losses (`framepred.losses`) and the metrics
(`framepred.metrics`) are built on these functions.

Only `keras.ops` and NumPy are used, never TensorFlow, so the module runs under
any Keras 3 backend. Statistics are computed in float32 whatever the input
dtype, so mixed-precision models still get float32 values.

`ssim` reproduces `tf.image.ssim` (Wang et al. 2004; VALID Gaussian filtering,
biased covariance, mean over channels) but filters with the separable 1D
Gaussian and has a hand-written gradient; docs/performance.md, "SSIM and
MS-SSIM speed", measures the speed-up and says where it comes from. The
filtering is laid out per backend:

- TensorFlow (and any backend but JAX): depthwise convolutions with the frames
  side by side on the channel axis (`_frames_to_channels`, `_gaussian_filter`),
  tuned for TF's CPU depthwise kernel.
- JAX: frames folded into the batch axis and the Gaussian applied as k shifted
  slices per axis (`_frames_to_batch`, `_shifted_filter`), which XLA fuses into
  a few memory-bound loops; on a CPU, large batches run in chunks
  (`_chunk_bounds`). XLA's CPU depthwise convolution, which TF's layout would
  use, is many times slower than TF's (docs/performance.md, "The JAX layout").
"""

from typing import NamedTuple

import numpy as np
from keras import ops

from framepred import xla

# The defaults of `tf.image.ssim` and `tf.image.ssim_multiscale`, which follow Wang et
# al. 2004 (an 11-pixel Gaussian window of sigma 1.5, k1 = 0.01, k2 = 0.03) and, for
# the exponents per scale, Table 1 of Wang, Simoncelli & Bovik 2003. Declared here
# only: the losses, the metrics and the config's `loss.*` keys take them from here.
DEFAULT_MAX_VAL = 1.0
DEFAULT_FILTER_SIZE = 11
DEFAULT_FILTER_SIGMA = 1.5
DEFAULT_K1 = 0.01
DEFAULT_K2 = 0.03
DEFAULT_POWER_FACTORS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)

# Below this value a scale's MS-SSIM factor x**p is continued linearly to 0.
# x**p with 0 < p < 1 has an infinite slope at 0, which is why
# `tf.image.ssim_multiscale` (relu, then pow) returns NaN/inf gradients once a
# contrast-structure term is <= 0. The linear piece keeps the value continuous,
# equal to TF's for x >= eps and for x <= 0, with a finite slope eps**(p - 1).
_MS_SSIM_EPS = 1e-6


# ---------------------------------------------------------------------------
# Shape checks (static, at trace time)
# ---------------------------------------------------------------------------


def check_frames(y_true, y_pred, min_size, what, static_frame=False):
    """Raises ValueError unless both are [..., H, W, C] of one shape, H, W >= min_size.

    The check reads static shapes only, so it runs once, while tracing.

    Args:
        y_true, y_pred: The frames a per-frame function was given.
        min_size: Smallest H and W accepted.
        what: The function's name, for the error message (which also names both
            shapes).
        static_frame: Also require H, W and C to be known while tracing (a
            filter's shape depends on them); otherwise only C.

    Returns:
        C, the number of channels.
    """
    shape_true, shape_pred = tuple(y_true.shape), tuple(y_pred.shape)
    if len(shape_true) < 3 or len(shape_pred) < 3:
        raise ValueError(
            f"{what} needs frames with at least 3 axes [..., H, W, C]; got "
            f"y_true.shape={shape_true}, y_pred.shape={shape_pred}."
        )
    compatible = len(shape_true) == len(shape_pred) and all(
        a is None or b is None or a == b for a, b in zip(shape_true, shape_pred)
    )
    if not compatible:
        raise ValueError(
            f"{what} needs y_true and y_pred of the same shape; got "
            f"y_true.shape={shape_true}, y_pred.shape={shape_pred}."
        )
    for shape in (shape_true, shape_pred):
        height, width = shape[-3], shape[-2]
        if (height is not None and height < min_size) or (width is not None and width < min_size):
            raise ValueError(
                f"{what} needs frames of at least {min_size}x{min_size} (H x W); got "
                f"y_true.shape={shape_true}, y_pred.shape={shape_pred}."
            )
    frame = tuple(a if a is not None else b for a, b in zip(shape_pred[-3:], shape_true[-3:]))
    if None in (frame if static_frame else frame[-1:]):
        raise ValueError(
            f"{what} needs a known {'frame size (H, W, C)' if static_frame else 'channel count'}; "
            f"got y_true.shape={shape_true}, y_pred.shape={shape_pred}."
        )
    return frame[-1]


def _frames_to_channels(x):
    """[B, T, H, W, C] -> [B, H, W, T*C]: each sequence's frames side by side on channels.

    TF's CPU depthwise convolution vectorizes over channels; a gray frame batch
    in plain NHWC gives it a single channel and runs slower per pixel than with
    tens of channels (docs/performance.md, "Where the speed comes from", item 3).
    The first axis stays the batch axis because it is the one Keras leaves
    unknown while tracing, and a depthwise kernel needs a static channel count.
    If other leading axes are unknown too, all leading axes are flattened into
    the batch instead.
    """
    rank = len(x.shape)
    height, width, channels = x.shape[-3:]
    if rank == 3:
        # [H, W, C] -> [1, H, W, C]
        return ops.expand_dims(x, 0)
    rest = tuple(x.shape[1:-3])
    if any(d is None for d in rest):
        # [B, T, H, W, C] -> [B*T, H, W, C]
        return ops.reshape(x, (-1, height, width, channels))
    # [B, T, H, W, C] -> [B, H, W, T, C] -> [B, H, W, T*C]
    perm = (0, rank - 3, rank - 2, *range(1, rank - 3), rank - 1)
    return ops.reshape(
        ops.transpose(x, perm), (-1, height, width, int(np.prod(rest, dtype=np.int64)) * channels)
    )


def _xla_layout():
    """True where the filtering runs as shifted slices (`_shifted_filter`): under JAX.

    TensorFlow keeps its depthwise layout (`_gaussian_filter`), whose speed is
    tuned to TF's CPU kernels; other backends keep it too, as before.
    """
    return xla.on_jax()


def _frames_to_batch(x):
    """[B, T, H, W, C] -> [B*T, H, W, C], or [B*T, H, W] for C = 1: the JAX layout.

    Frames folded into the batch axis: a free reshape, where
    `_frames_to_channels` transposes. The filters view each frame as [H, W*C]
    (`_shifted_filter`), so W*C is the contiguous minor axis that XLA's fused
    loops vectorize over; with the frames on the channel axis instead, JAX's
    SSIM fwd+bwd was slower. Gray frames drop the channel axis: XLA's CPU
    backend runs the fused loops of maps shaped [N, H, W, 1] far slower than of
    [N, H, W] (docs/performance.md, "The JAX layout").
    """
    height, width, channels = x.shape[-3:]
    if channels == 1:
        return ops.reshape(x, (-1, height, width))
    return ops.reshape(x, (-1, height, width, channels))


def unflatten_frames(values, like):
    """[B*T] -> [B, T]: one value per frame back in the leading axes of frames `like`.

    The shape is static where `like`'s leading axes are known while tracing.
    """
    leading = tuple(like.shape[:-3])
    if all(d is not None for d in leading):
        return ops.reshape(values, leading)
    return ops.reshape(values, ops.shape(like)[:-3])


# ---------------------------------------------------------------------------
# SSIM
# ---------------------------------------------------------------------------


def _gaussian_1d(filter_size, filter_sigma):
    """The 1D factor of TF's `_fspecial_gauss`: softmax(-c**2 / (2 sigma**2)).

    TF's 2D kernel is softmax over i, j of (g_i + g_j), which factorizes exactly
    into outer(softmax(g), softmax(g)); filtering with the 1D factor along H
    and then W therefore gives the same result with 2k instead of k**2 taps.
    """
    coords = np.arange(filter_size, dtype=np.float64) - (filter_size - 1) / 2.0
    logits = -0.5 * coords**2 / float(filter_sigma) ** 2
    weights = np.exp(logits - logits.max())
    return weights / weights.sum()


def _gaussian_filter(maps, filter_size, filter_sigma, scale=1.0, transposed=False, offset=0.0):
    """`scale` times the VALID separable Gaussian filter of [N, H, W, M] maps, plus `offset`.

    `scale` (a number or a scalar tensor) goes into the kernel and `offset` into
    a per-channel bias that TF's CPU remapper fuses into the depthwise kernel
    (`_MklNativeFusedDepthwiseConv2dNative`); both are free, where a
    multiplication or addition on the map would be a full pass over it.
    `transposed=True` gives the adjoint (the gradient of the VALID filter):
    VALID filtering of the map zero-padded by k-1 on every side; the Gaussian
    is symmetric, so no flip is needed.
    """
    if transposed:
        # [N, H', W', M] -> [N, H'+2(k-1), W'+2(k-1), M]
        pad = filter_size - 1
        maps = ops.pad(maps, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    height, width, channels = maps.shape[1:]
    out_height, out_width = height - filter_size + 1, width - filter_size + 1
    weights = _gaussian_1d(filter_size, filter_sigma)
    # Depthwise kernels are [kh, kw, in_channels, multiplier].
    kernel_w = np.tile(weights.reshape(1, filter_size, 1, 1), (1, 1, channels, 1))
    # The H pass runs as a [1, k] pass over [N, 1, H, W'*M], each column of each
    # map a channel of its own (a free reshape): TF's CPU [k, 1] depthwise pass
    # costs about twice its [1, k] pass (docs/performance.md, "Where the speed
    # comes from", item 4).
    kernel_h = np.tile(weights.reshape(1, filter_size, 1, 1), (1, 1, out_width * channels, 1))
    if isinstance(scale, (int, float)):
        kernel_h = (kernel_h * scale).astype(np.float32)
    else:
        # A scale known only at run time (a tensor): a multiply of the small kernel.
        kernel_h = kernel_h.astype(np.float32) * scale
    # [N, H, W, M] -> [N, H, W', M]
    maps = ops.depthwise_conv(maps, kernel_w.astype(np.float32), padding="valid")
    # [N, H, W', M] -> [N, 1, H, W'*M] -> [N, 1, H', W'*M] -> [N, H', W', M]. The W
    # pass comes first because TF's CPU depthwise kernel returns an empty batch (a
    # replica's share of a short last batch under a distribution strategy) in its
    # input's shape; these reshapes then restore the right one.
    maps = ops.reshape(maps, (-1, 1, height, out_width * channels))
    maps = ops.depthwise_conv(maps, kernel_h, padding="valid")
    if offset:
        # A vector, not a scalar: only a per-channel bias right after the
        # convolution is fused.
        maps = maps + np.full((out_width * channels,), offset, np.float32)
    return ops.reshape(maps, (-1, out_height, out_width, channels))


def _shifted_filter(maps, filter_size, filter_sigma, scale=1.0, transposed=False, offset=0.0):
    """`_gaussian_filter` for XLA (the JAX backend): the same values, from shifted slices.

    Takes [N, H, W, C] or [N, H, W] (`_frames_to_batch`). Each 1D pass is the
    sum of k shifted slices times the Gaussian weights. On [N, H, W*C] (a free
    reshape) the W pass slices the minor axis at steps of C and the H pass
    slices rows; XLA fuses each pass into one loop that streams the map.
    XLA's CPU depthwise convolution (feature-grouped lax.conv, what
    `ops.depthwise_conv` lowers to) and a 1-channel lax.conv were both many
    times slower, and a product with a banded [W, W'] Gaussian matrix per axis
    does W' multiply-adds per output where slices do k (docs/performance.md,
    "The JAX layout").

    `scale`, `transposed` and `offset` are `_gaussian_filter`'s.
    """
    height, width, channels = (*maps.shape[1:], 1)[:3]
    # [N, H, W, C] -> [N, H, W*C]
    flat = ops.reshape(maps, (-1, height, width * channels))
    if transposed:
        # The adjoint: VALID filtering of the map zero-padded by k-1 on every side.
        pad = filter_size - 1
        flat = ops.pad(flat, ((0, 0), (pad, pad), (pad * channels, pad * channels)))
        height, width = height + 2 * pad, width + 2 * pad
    out_height, out_width = height - filter_size + 1, width - filter_size + 1
    weights = [float(w) for w in _gaussian_1d(filter_size, filter_sigma)]
    # `scale` goes into the H pass's weights: free, a multiply of the map is not.
    weights_h = [w * scale for w in weights]

    # W pass: [N, H, W*C] -> [N, H, W'*C].
    rows = None
    for i, w in enumerate(weights):
        term = flat[:, :, i * channels : (i + out_width) * channels] * w
        rows = term if rows is None else rows + term

    # H pass: [N, H, W'*C] -> [N, H', W'*C], in blocks of rows. XLA fuses an
    # elementwise producer into a consumer that reads it up to 15 ways
    # (kAllowedCodeDuplication) and then recomputes it on every read: with k = 11
    # row slices the W pass would run 11 times per output (121 taps instead of
    # 22). Row blocks make k * blocks > 15 reads, so the W pass is computed once,
    # into a buffer.
    blocks = max(1, min(out_height, 16 // filter_size + 1))
    bounds = [out_height * b // blocks for b in range(blocks + 1)]
    parts = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        part = None
        for i, w in enumerate(weights_h):
            term = rows[:, start + i : stop + i, :] * w
            part = term if part is None else part + term
        parts.append(part)
    out = parts[0] if blocks == 1 else ops.concatenate(parts, axis=1)
    if offset:
        out = out + offset
    if len(maps.shape) == 3:
        return out
    # [N, H', W'*C] -> [N, H', W', C]
    return ops.reshape(out, (-1, out_height, out_width, channels))


# Under JAX on a CPU, SSIM works in chunks of about _CHUNK_ELEMENTS per map once
# a map holds more than _CHUNK_ABOVE elements, in at most _MAX_CHUNKS chunks
# (`_chunk_bounds`).
_CHUNK_ABOVE = 2**20
_CHUNK_ELEMENTS = 2**18
_MAX_CHUNKS = 16


def _chunk_bounds(maps):
    """[(start, stop), ...]: the frames of each chunk of the [N, ...] `maps` (JAX on CPU).

    XLA's CPU runtime allocates a program's temporary buffers afresh on every
    call, and malloc hands out blocks above 32 MB as fresh pages. SSIM's
    fwd+bwd keeps about seven maps alive, so from ~1M elements per map each call
    page-faults through all of them. Chunks of ~256K elements, run one after the
    other (`_after`), reuse one small set of buffers that stays in cache. Below
    1M elements chunks only add work, as the backward pass recomputes each
    chunk's statistics. On a GPU (no such allocation cost, and parallelism to
    lose) and with an unknown batch size there is one chunk. The measurements
    are in docs/performance.md, "The JAX layout".
    """
    frames = maps.shape[0]
    frame_size = int(np.prod(maps.shape[1:]))
    if frames is None or frames * frame_size <= _CHUNK_ABOVE or not xla.jax_on_cpu():
        return [(0, frames)]
    # More chunks make a longer program, which takes longer to trace and compile.
    per_chunk = max(1, _CHUNK_ELEMENTS // frame_size, -(-frames // _MAX_CHUNKS))
    return [(start, min(start + per_chunk, frames)) for start in range(0, frames, per_chunk)]


def _after(tensors, previous):
    """`tensors`, unchanged, but computed only once `previous` is (under XLA).

    Adds an exact zero made from `previous` (a NaN or infinity there becomes 0
    first). The data dependence makes XLA run the chunks one after the other,
    where it would otherwise interleave them and keep all their buffers alive;
    and as it also makes the backward pass's statistics differ from the forward
    pass's as far as XLA can tell, XLA recomputes them instead of keeping them.
    """
    if previous is None:
        return tensors
    total = ops.sum(previous)
    zero = ops.where(ops.isfinite(total), total, 0.0) * 0.0
    return tuple(t + zero for t in tensors)


class _Window(NamedTuple):
    """What every step of one SSIM (or contrast-structure) evaluation shares."""

    filter: object  # `_shifted_filter` under JAX (`_xla_layout`), else `_gaussian_filter`
    size: int  # filter_size
    sigma: float  # filter_sigma
    c1: float  # (k1 * max_val)**2
    c2: float  # (k2 * max_val)**2
    cs_only: bool  # the mean of cs alone (MS-SSIM's finer scales), no luminance


class _Statistics(NamedTuple):
    """The local statistics `_statistics` makes and `_gradients` reads, each
    [N, H', W', K]. `luminance` and `lum_den` are None for `cs_only`."""

    mean_x: object
    mean_y: object
    luminance: object
    lum_den: object
    cs: object
    cs_den: object


def _filter_each(window, maps, scales=None, transposed=False, offsets=None):
    """m x [N, H, W, K] -> m x [N, H', W', K]: `window.filter` of each map, with its
    kernel `scale` and `offset` (or the transposed filter, [N, H', W', K] -> [N, H, W, K]).

    One filter call per map: stacking the maps for a single call costs a full copy in
    and a slice copy per map out, which made fwd+bwd slower (docs/performance.md,
    "Where the speed comes from", item 2).
    """
    scales = scales or [1.0] * len(maps)
    offsets = offsets or [0.0] * len(maps)
    return tuple(
        window.filter(m, window.size, window.sigma, s, transposed, o)
        for m, s, o in zip(maps, scales, offsets)
    )


def _statistics(window, x, y):
    """x, y [N, H, W, K] -> `_Statistics` [N, H', W', K]: TF's `_ssim_helper`.

    TF filters x**2 + y**2; E[(x - y)**2] carries the same information given E[xy]
    (their difference is 2 E[xy]) and costs one full-size pass less to build. xy is
    filtered with a doubled kernel and offset by c2: 2 E[xy] + c2.
    """
    diff_xy = x - y
    mean_x, mean_y, mean_sq_diff, mean_xy2_c2 = _filter_each(
        window, [x, y, diff_xy * diff_xy, x * y], scales=[1.0, 1.0, 1.0, 2.0],
        offsets=[0, 0, 0, window.c2],
    )
    # 2 mu_x mu_y, and mu_x**2 + mu_y**2 = (mu_x - mu_y)**2 + 2 mu_x mu_y.
    prod = mean_x * mean_y
    two_prod = prod + prod
    diff = mean_x - mean_y
    sq_diff = diff * diff
    # cov_xy = E[xy] - mu_x mu_y: the biased estimate (compensation 1.0) that
    # TF uses to match the MATLAB reference implementation of MS-SSIM.
    # cs_num = 2 cov_xy + c2; cs_den = var_x + var_y + c2 = cs_num + var(x - y).
    cs_num = mean_xy2_c2 - two_prod
    cs_den = cs_num + mean_sq_diff - sq_diff
    if window.cs_only:
        luminance = lum_den = None
    else:
        lum_num = two_prod + window.c1
        lum_den = lum_num + sq_diff
        luminance = lum_num / lum_den
    cs = cs_num / cs_den
    return _Statistics(mean_x, mean_y, luminance, lum_den, cs, cs_den)


def _mean_value(stats):
    """[N, H', W', K] -> [N, K]: the mean of luminance * cs (or of cs) over the VALID
    region."""
    value_map = stats.cs if stats.luminance is None else stats.luminance * stats.cs
    return ops.mean(value_map, axis=(1, 2))


def _mean_gradients(stats):
    """The derivatives of the SSIM map by the local statistics, [N, H', W', K] each:
    (d/dmu_x, d/dmu_y, b, b CS), up to the factor 2 that `_gradients` puts into the
    transposed filters' kernels.

    Derivatives of L = lum_num / lum_den and CS = cs_num / cs_den:
      dL/dmu_y = 2 (mu_x - mu_y L) / lum_den,
      dCS/dmu_y = 2 (mu_y CS - mu_x) / cs_den,
      dCS/dE[xy] = 2 / cs_den, dCS/dE[x^2 + y^2] = -CS / cs_den,
    and d(L CS) = CS dL + L dCS. With a = CS / lum_den and b = L / cs_den
    (b = 1 / cs_den for CS alone, a = 0), d/dmu_y = 2 (mu_x (a - b) +
    mu_y (b CS - a L)), and the same with x and y swapped.
    """
    mean_x, mean_y, luminance, lum_den, cs, cs_den = stats
    if luminance is None:
        b = 1.0 / cs_den
        b_cs = b * cs
        grad_mean_y = mean_y * b_cs - mean_x * b
        grad_mean_x = mean_x * b_cs - mean_y * b
    else:
        a = cs / lum_den
        b = luminance / cs_den
        b_cs = b * cs
        cross = a - b
        same = b_cs - a * luminance
        grad_mean_y = mean_x * cross + mean_y * same
        grad_mean_x = mean_y * cross + mean_x * same
    return grad_mean_x, grad_mean_y, b, b_cs


def _transposed_gradients(window, x, y, mean_grads, kernel_scale):
    """(d/dx, d/dy) [N, H, W, K] of the mean SSIM, times `kernel_scale`.

    The gradient with respect to y is F'(d/dmu_y) + x F'(b) - y F'(b CS), with F'
    the transposed filter, [N, H', W', K] -> [N, H, W, K], and the statistics read
    as E[x^2 + y^2] and E[xy] (the same function as the forward's E[(x - y)^2] and
    E[xy]): d/dy of E[xy] is x, and of E[x^2 + y^2] is 2y, whose 2 cancels the 1/2
    in -CS / cs_den. F'(b) and F'(b CS) serve both gradients; in a loss, which
    needs only y_pred's, inside tf.function / jit the unused d/dx filters are
    pruned.
    """
    grad_mean_x, grad_mean_y, b, b_cs = mean_grads
    back_y, back_x, back_xy, back_sq = _filter_each(
        window, [grad_mean_y, grad_mean_x, b, b_cs],
        scales=[kernel_scale, kernel_scale, kernel_scale, -kernel_scale], transposed=True,
    )
    return back_x + y * back_xy + x * back_sq, back_y + x * back_xy + y * back_sq


def _weighted_gradients(window, x, y, mean_grads, scale, weight):
    """`_transposed_gradients` times a weight per frame and channel, [N, K] (or [N])."""
    # [N, K] -> [N, 1, 1, K] (or [N] -> [N, 1, 1])
    weight = ops.expand_dims(weight, (1, 2))
    grad_x, grad_y = _transposed_gradients(window, x, y, mean_grads, scale)
    return weight * grad_x, weight * grad_y


def _gradients(window, x, y, stats, upstream):
    """(d/dx, d/dy) [N, H, W, K] of the mean SSIM [N, K], weighted by `upstream` [N, K].

    d(mean)/d(pixel) = 1 / pixels, and the factor 2 common to every derivative of
    `_mean_gradients`, go into the transposed filters' kernels. Where the upstream
    weight is one number, as for a loss without sample weights, TensorFlow's layout
    puts it into the kernels too, which saves a full-size multiply
    (docs/performance.md, "Where the speed comes from", item 6).
    """
    mean_grads = _mean_gradients(stats)
    scale = 2.0 / float(stats.cs.shape[1] * stats.cs.shape[2])
    if window.filter is _shifted_filter:
        # XLA fuses the weight's multiply into the loop that adds the transposed
        # filters up, where it costs next to nothing, so there is no cond. But it
        # also fuses the cheap [N, K] ops that made the weight (MS-SSIM's chain rule
        # through its product of powers) and redoes them for every pixel. XLA never
        # fuses a sort, so sorting two copies of the weight computes it once; exact,
        # as the copies are equal (docs/performance.md, "The JAX layout").
        pair = ops.stack([upstream, upstream], axis=-1)
        return _weighted_gradients(window, x, y, mean_grads, scale,
                                   ops.sort(pair, axis=-1)[..., 0])
    # max == min rather than upstream[0, 0], with initial values so that JAX
    # accepts it too: a replica's batch can be empty (max -inf, min inf: not
    # uniform).
    first = ops.max(upstream, initial=-np.inf)
    uniform = ops.equal(first, ops.min(upstream, initial=np.inf))
    return ops.cond(
        uniform,
        lambda: _transposed_gradients(window, x, y, mean_grads, scale * first),
        lambda: _weighted_gradients(window, x, y, mean_grads, scale, upstream),
    )


def _upstream(args, upstream):
    """The upstream gradient of a custom-gradient function: TensorFlow passes it
    positionally, Keras' JAX backend as `upstream=`."""
    return args[0] if upstream is None else upstream


def _ssim_or_cs(window, x, y):
    """[N, H, W, K] x 2 -> [N, K]: `_mean_value` with the hand-written `_gradients`."""

    @ops.custom_gradient
    def value_and_gradient(x, y):
        stats = _statistics(window, x, y)
        return _mean_value(stats), lambda *args, upstream=None: _gradients(
            window, x, y, stats, _upstream(args, upstream))

    return value_and_gradient(x, y)


def _chunked_ssim_or_cs(window, x, y, bounds):
    """`_ssim_or_cs` in chunks of frames, `bounds` from `_chunk_bounds` (JAX on a CPU).

    Both passes run chunk after chunk (`_after`); the backward pass recomputes each
    chunk's statistics instead of keeping them all from the forward pass.
    """

    def gradients(x, y, upstream):
        grads_x, grads_y, previous = [], [], None
        for start, stop in bounds:
            x_part, y_part = _after((x[start:stop], y[start:stop]), previous)
            stats = _statistics(window, x_part, y_part)
            grad_x, grad_y = _gradients(window, x_part, y_part, stats, upstream[start:stop])
            grads_x.append(grad_x)
            grads_y.append(grad_y)
            # The next chunk waits on y's gradient only: a loss needs only y_pred's,
            # and XLA then prunes grad_x.
            previous = grad_y[:1, :1, :1]
        return ops.concatenate(grads_x, axis=0), ops.concatenate(grads_y, axis=0)

    @ops.custom_gradient
    def value_and_gradient(x, y):
        values, previous = [], None
        for start, stop in bounds:
            x_part, y_part = _after((x[start:stop], y[start:stop]), previous)
            values.append(_mean_value(_statistics(window, x_part, y_part)))
            previous = values[-1]
        return ops.concatenate(values, axis=0), lambda *args, upstream=None: gradients(
            x, y, _upstream(args, upstream))

    return value_and_gradient(x, y)


def _ssim_and_cs(x, y, max_val, filter_size, filter_sigma, k1, k2, output="ssim"):
    """Mean SSIM or mean contrast-structure per frame and channel, as TF's `_ssim_per_channel`.

    The forward pass is TF's `_ssim_helper` with a separable filter (`_statistics`).
    The backward pass is written out by hand (`_gradients`): autodiff of the ~20
    elementwise ops on full-size maps is memory-bound and costs more than the
    filtering itself on CPU, while the closed form needs one transposed filter per
    moment and a handful of products. Every full-size elementwise op costs about as
    much as a filter pass there, so both passes are arranged for the fewest of them:
    constant factors go into the filter kernels, and only the requested output is
    computed (docs/performance.md, "SSIM and MS-SSIM speed").

    The same functions serve both layouts: under JAX (`_xla_layout`) they filter
    with `_shifted_filter`, otherwise with `_gaussian_filter`. The hand-written
    gradient matters even more under JAX, where autodiff of the shifted slices
    pads once per slice (docs/performance.md, "The JAX layout").

    Args:
        x, y: float32 [N, H, W, K]: frames and channels on the last axis
            (`_frames_to_channels`), or under JAX frames on the first axis and
            K = C, without that axis for C = 1 (`_frames_to_batch`).
        output: "ssim" for the mean of luminance * cs, "cs" for the mean of cs
            (MS-SSIM's finer scales).

    Returns:
        float32 [N, K] ([N] for maps [N, H, W]): the mean over the VALID region.
    """
    xla_layout = _xla_layout()
    window = _Window(
        filter=_shifted_filter if xla_layout else _gaussian_filter, size=filter_size,
        sigma=filter_sigma, c1=(k1 * max_val) ** 2, c2=(k2 * max_val) ** 2,
        cs_only=output == "cs",
    )
    bounds = _chunk_bounds(x) if xla_layout else [(0, x.shape[0])]
    if len(bounds) == 1:
        return _ssim_or_cs(window, x, y)
    return _chunked_ssim_or_cs(window, x, y, bounds)


def ssim(y_true, y_pred, max_val=DEFAULT_MAX_VAL, filter_size=DEFAULT_FILTER_SIZE,
         filter_sigma=DEFAULT_FILTER_SIGMA, k1=DEFAULT_K1, k2=DEFAULT_K2):
    """Structural similarity of each frame, equal to `tf.image.ssim`.

    Formula:

    ```python
    luminance = (2 mu_x mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    cs = (2 sigma_xy + c2) / (sigma_x**2 + sigma_y**2 + c2)
    ssim = mean_over_channels(mean_over_valid_pixels(luminance * cs))
    ```

    with Gaussian-weighted local statistics (VALID padding),
    `c1 = (k1 * max_val)**2` and `c2 = (k2 * max_val)**2` (Wang et al. 2004).

    Args:
        y_true: Frames `[..., H, W, C]`, values in `[0, max_val]`.
        y_pred: Frames of the same shape.
        max_val: Dynamic range of the pixel values (1.0 or 255, for example).
        filter_size: Width of the Gaussian window; H and W must be at least this.
        filter_sigma: Standard deviation of the Gaussian window.
        k1: Luminance stabilizer constant.
        k2: Contrast stabilizer constant.

    Returns:
        float32 SSIM per frame, shape `[...]`: `[B, T]` for `[B, T, H, W, C]`.

    Raises:
        ValueError: if the shapes differ, have fewer than 3 axes, or H or W is
            smaller than `filter_size` (checked on static shapes at trace time).

    Example:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> frames = rng.uniform(size=(2, 3, 16, 16, 1)).astype("float32")  # [B, T, H, W, C]
    >>> same = np.asarray(ssim(frames, frames))
    >>> same.shape, bool(np.allclose(same, 1.0, atol=1e-6))
    ((2, 3), True)
    >>> noisy = np.clip(frames + rng.normal(0, 0.1, frames.shape), 0, 1).astype("float32")
    >>> bool(np.all(np.asarray(ssim(frames, noisy)) < 0.99))
    True
    """
    channels = check_frames(y_true, y_pred, filter_size, "ssim", static_frame=True)
    # [B, T, H, W, C] -> [B, H, W, T*C], or [B*T, H, W(, C)] under JAX
    to_maps = _frames_to_batch if _xla_layout() else _frames_to_channels
    x = to_maps(ops.cast(y_true, "float32"))
    y = to_maps(ops.cast(y_pred, "float32"))
    per_channel = _ssim_and_cs(x, y, max_val, filter_size, filter_sigma, k1, k2)
    # [B, T*C] (or [B*T, C], [B*T]) -> [B*T, C] -> [B*T]: mean over channels, as TF.
    values = ops.mean(ops.reshape(per_channel, (-1, channels)), axis=-1)
    # [B*T] -> [B, T]
    return unflatten_frames(values, y_pred)


# ---------------------------------------------------------------------------
# MS-SSIM
# ---------------------------------------------------------------------------


def ms_ssim_min_size(num_scales, filter_size=DEFAULT_FILTER_SIZE):
    """Smallest frame height/width that MS-SSIM with `num_scales` scales accepts.

    Each scale halves the frame, rounding up (odd sizes are padded by one row or
    column first, as in `tf.image.ssim_multiscale`), so the coarsest scale has
    `ceil(size / 2**(n-1))` pixels, which must be at least `filter_size`:
    `size >= (filter_size - 1) * 2**(n-1) + 1`.

    >>> ms_ssim_min_size(5), ms_ssim_min_size(3), ms_ssim_min_size(4, filter_size=7)
    (161, 41, 49)
    """
    if num_scales < 1:
        raise ValueError(f"ms_ssim needs at least one scale; got num_scales={num_scales}.")
    return (filter_size - 1) * 2 ** (num_scales - 1) + 1


def _downsample(x):
    """Halves H and W like `tf.image.ssim_multiscale`: [N, H, W, K] -> [N, ceil(H/2), ceil(W/2), K].

    TF pads an odd axis by one at the bottom/right with mode SYMMETRIC, which for
    a pad of one repeats the edge row/column (not zeros), then 2x2-average-pools
    with VALID padding. Gray maps of the JAX layout, [N, H, W], are pooled as
    [N, H, W, 1].
    """
    if len(x.shape) == 3:
        return ops.squeeze(_downsample(ops.expand_dims(x, -1)), -1)
    if x.shape[1] % 2:
        x = ops.concatenate([x, x[:, -1:, :, :]], axis=1)
    if x.shape[2] % 2:
        x = ops.concatenate([x, x[:, :, -1:, :]], axis=2)
    return ops.average_pool(x, pool_size=2, strides=2, padding="valid")


def _safe_power(values, power):
    """relu(values)**power with a finite gradient everywhere (see `_MS_SSIM_EPS`)."""
    if power == 0:
        return ops.ones_like(values)
    eps = _MS_SSIM_EPS
    curve = ops.power(ops.maximum(values, eps), power)
    line = ops.maximum(values, 0.0) * (eps ** (power - 1.0))
    return ops.where(values >= eps, curve, line)


def ms_ssim(
    y_true,
    y_pred,
    max_val=DEFAULT_MAX_VAL,
    power_factors=DEFAULT_POWER_FACTORS,
    filter_size=DEFAULT_FILTER_SIZE,
    filter_sigma=DEFAULT_FILTER_SIGMA,
    k1=DEFAULT_K1,
    k2=DEFAULT_K2,
):
    """Multi-scale SSIM of each frame, equal to `tf.image.ssim_multiscale`.

    Formula:

    ```python
    ms_ssim = mean_over_channels(
        prod_{j < n-1} relu(cs_j) ** p_j * relu(ssim_{n-1}) ** p_{n-1})
    ```

    where `cs_j` is the mean contrast-structure term at scale `j` (the frame
    downsampled `j` times by 2) and `n = len(power_factors)` (Wang, Simoncelli &
    Bovik 2003). Unlike TF, the gradient stays finite where a term is <= 0.

    Args:
        y_true: Frames `[..., H, W, C]`, values in `[0, max_val]`.
        y_pred: Frames of the same shape.
        max_val: Dynamic range of the pixel values.
        power_factors: One exponent per scale, finest first. The default,
            `DEFAULT_POWER_FACTORS`, is Table 1 of Wang, Simoncelli & Bovik 2003
            (the defaults of `tf.image.ssim_multiscale`).
        filter_size: Width of the Gaussian window.
        filter_sigma: Standard deviation of the Gaussian window.
        k1: Luminance stabilizer constant.
        k2: Contrast stabilizer constant.

    Returns:
        float32 MS-SSIM per frame, shape `[...]`.

    Raises:
        ValueError: if the shapes differ or H or W is below
            `ms_ssim_min_size(len(power_factors), filter_size)`.

    Example, with 3 scales (frames of at least `ms_ssim_min_size(3)` = 41 pixels):

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> frames = rng.uniform(size=(2, 3, 48, 48, 1)).astype("float32")  # [B, T, H, W, C]
    >>> same = np.asarray(ms_ssim(frames, frames, power_factors=(0.3, 0.3, 0.4)))
    >>> same.shape, bool(np.allclose(same, 1.0, atol=1e-6))
    ((2, 3), True)
    >>> noisy = np.clip(frames + rng.normal(0, 0.1, frames.shape), 0, 1).astype("float32")
    >>> bool(np.all(np.asarray(ms_ssim(frames, noisy, power_factors=(0.3, 0.3, 0.4))) < 0.99))
    True
    """
    power_factors = tuple(float(p) for p in power_factors)
    min_size = ms_ssim_min_size(len(power_factors), filter_size)
    channels = check_frames(y_true, y_pred, min_size, f"ms_ssim with {len(power_factors)} scales")
    # [B, T, H, W, C] -> [B, H, W, T*C], or [B*T, H, W(, C)] under JAX
    to_maps = _frames_to_batch if _xla_layout() else _frames_to_channels
    x = to_maps(ops.cast(y_true, "float32"))
    y = to_maps(ops.cast(y_pred, "float32"))
    product = None
    for scale, power in enumerate(power_factors):
        if scale > 0:
            x, y = _downsample(x), _downsample(y)
        # [N, H_j, W_j, K] -> [N, K]: cs at the finer scales, SSIM at the last.
        output = "cs" if scale < len(power_factors) - 1 else "ssim"
        term = _ssim_and_cs(x, y, max_val, filter_size, filter_sigma, k1, k2, output)
        factor = _safe_power(term, power)
        product = factor if product is None else product * factor
    # [B, T*C] (or [B*T, C], [B*T]) -> [B*T, C] -> [B*T] -> [B, T]
    values = ops.mean(ops.reshape(product, (-1, channels)), axis=-1)
    return unflatten_frames(values, y_pred)



__all__ = [
    "DEFAULT_FILTER_SIGMA", "DEFAULT_FILTER_SIZE", "DEFAULT_K1", "DEFAULT_K2", "DEFAULT_MAX_VAL",
    "DEFAULT_POWER_FACTORS", "check_frames", "ms_ssim", "ms_ssim_min_size", "ssim",
    "unflatten_frames",
]
