"""Heads: forecaster features -> frames."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from framepred.models.layers import (
    COPY_EPSILON,
    DepthToSpace,
    InverseActivation,
    has_layer,
    inverse_activation,
)


def residual_head(features, channels: int, patch_size: int, activation: str, last=None):
    """Per-frame 1x1 projection back to patches, then to frames. Float32, as the loss.

    `last` [B, T, h, w, p*p*C]: the latest observed frame's patches for each output.
    When given, the projection is a residual on top of it, in the activation's input
    space, and `init_head` zeroes the projection: the model starts as copy-last.
    """
    patches = layers.Conv3D(
        channels * patch_size * patch_size, kernel_size=1, name="head", dtype="float32"
    )(features)  # kernel 1 in time: no frame sees another
    if last is not None:
        copied = InverseActivation(activation, name="copy_last", dtype="float32")(last)
        patches = layers.Add(name="residual", dtype="float32")([patches, copied])
    frames = DepthToSpace(patch_size, name="to_frames", dtype="float32")(patches)
    return layers.Activation(activation, name="forecast", dtype="float32")(frames)


def init_head(model: keras.Model, level: float) -> None:
    """Starts the model at a sensible forecast instead of a grey 0.5.

    With the skip input the head is a residual on the latest frame (`InverseActivation`),
    and zeroing its projection makes the model start exactly as the copy-last-frame
    baseline, for every output activation: identity initialization, as Le et al. 2015
    use it for recurrent nets, and zero-initialized residual branches (Goyal et al.
    2017). The ConvLSTM then learns the motion on top; its gradient flows from the
    first step on, since the projection's own gradient is not zero.

    Without the skip the head's bias is set to the data's mean intensity `level`
    (Karpathy 2019, "init well"): a sigmoid head that begins at 0.5 on a dark
    background makes every loss push the whole frame down until the sigmoid
    saturates at 0 and the gradient vanishes.
    """
    head = model.get_layer("head")  # the motion head's correction too
    activation = model.get_layer("forecast").get_config()["activation"]
    kernel, bias = head.get_weights()  # kernel [1, 1, 1, features, p*p*C]
    if has_layer(model, "copy_last") or has_layer(model, "copy_moved"):
        kernel[:] = 0.0
        bias[:] = 0.0
    else:
        level = float(np.clip(level, COPY_EPSILON, 1.0 - COPY_EPSILON))
        bias[:] = float(inverse_activation(np.float32(level), activation))
    head.set_weights([kernel, bias])


# --- the motion head: move the previous frame, then correct it ----------------------

# How a motion head describes where each pixel comes from (model.head=motion -> kernel,
# model.head=flow -> flow):
#   kernel: a per-pixel distribution over the shifts -R..R of each axis (a separable
#           DNA kernel, Finn et al. 2016; Dynamic Filter Networks, De Brabandere et al.
#           2016): softmax logits, started sharp on "no shift";
#   flow:   a per-pixel displacement (dy, dx) with bilinear weights (the warp of
#           TrajGRU, Shi et al. 2017, and of spatial transformers), started at zero flow.
# The kernel's start: logit CENTER_LOGIT on "no shift", 0 elsewhere. Sharp enough that
# the untrained model is within a few thousandths of copy-last, soft enough that every
# shift still has a gradient (a one-hot start would have none): with radius 5 each axis
# keeps e^8 / (e^8 + 10) = 0.9967 of its mass at the centre (docs/recipes.md measures
# the distance of the start from copy-last).
CENTER_LOGIT = 8.0
# The kernel's logits are the motion layer's outputs times KERNEL_GAIN. Adam moves a
# weight by about the learning rate a step, whatever its gradient; moving a pixel means
# lifting another shift's logit by about CENTER_LOGIT, which at gain 1 took thousands
# of steps (measured: a known pan still unfound after 50 steps, docs/recipes.md).
KERNEL_GAIN = 8.0


def motion_logit_count(motion: str, radius: int) -> int:
    """Channels of the motion logits: two distributions over 2R+1 shifts, or (dy, dx)."""
    return 2 * (2 * radius + 1) if motion == "kernel" else 2


def motion_start(motion: str, radius: int) -> np.ndarray:
    """The motion layer's starting bias: every pixel stays where it is."""
    bias = np.zeros(motion_logit_count(motion, radius), np.float32)
    if motion == "kernel":
        bias[[radius, 3 * radius + 1]] = CENTER_LOGIT / KERNEL_GAIN  # each axis' centre
    return bias


def shift_weights(logits, motion: str, radius: int):
    """Motion logits [..., K] -> (rows, columns), each [..., 2R+1]: the weight of the
    pixel k rows (columns) away, k = -R..R, in the value a pixel takes next.

    Formula:

    ```python
    # kernel: a distribution per axis, g = KERNEL_GAIN
    rows, columns = softmax(g * logits[..., :2R+1]), softmax(g * logits[..., 2R+1:])
    # flow: bilinear weights around a displacement of at most R pixels
    dy, dx = R * tanh(logits)
    rows[floor(dy)] = 1 - (dy - floor(dy)),  rows[floor(dy) + 1] = dy - floor(dy)
    ```

    At zero flow the weights are exactly "no shift" and their slope (a difference of
    neighbouring pixels) is not zero, so the flow has a gradient from the start.
    """
    taps = 2 * radius + 1
    logits = ops.cast(logits, "float32")
    if motion == "kernel":
        logits = KERNEL_GAIN * logits
        return ops.softmax(logits[..., :taps], axis=-1), ops.softmax(logits[..., taps:], axis=-1)
    shifts = ops.arange(-radius, radius + 1, dtype="float32")
    displacement = radius * ops.tanh(logits)  # [..., 2]: (dy, dx) in pixels
    below = ops.floor(displacement)[..., None]
    fraction = displacement[..., None] - below  # [..., 2, 1]
    # Written with the floor, not as relu(1 - |k - d|): that tent has no slope at
    # whole shifts, where zero flow starts.
    weights = (ops.cast(ops.equal(shifts, below), "float32") * (1.0 - fraction)
               + ops.cast(ops.equal(shifts, below + 1.0), "float32") * fraction)
    return weights[..., 0, :], weights[..., 1, :]


def mean_displacement(logits, motion: str, radius: int):
    """Motion logits [..., K] -> [..., 2]: the expected (dy, dx) in pixels."""
    shifts = ops.arange(-radius, radius + 1, dtype="float32")
    rows, columns = shift_weights(logits, motion, radius)
    return ops.stack([ops.sum(rows * shifts, axis=-1), ops.sum(columns * shifts, axis=-1)],
                     axis=-1)


def _edge_pad(frames, radius: int, axis: int):
    """Repeats the first and last row (axis 1) or column (axis 2) `radius` times.

    What enters through a border is the border itself: zero padding would darken the
    edges of natural footage and fields as they pan (tests/test_motion_head.py).

    One concatenation of the edge slices, listed `radius` times: TF's pad has no edge
    mode, and `ops.repeat` traced into about twice the graph; tracing, not arithmetic,
    is most of a small run's time (docs/performance.md, "Tracing the motion head")."""
    first = frames[:, :1] if axis == 1 else frames[:, :, :1]
    last = frames[:, -1:] if axis == 1 else frames[:, :, -1:]
    return ops.concatenate([first] * radius + [frames] + [last] * radius, axis=axis)


def _tap_positions(radius: int, axis: int) -> np.ndarray:
    """[kh, kw, 2R+1] one-hot: tap t reads kernel position 2R - t along `axis` (rows 1,
    columns 2), so that a "valid" convolution of an edge-padded input gives, at tap
    k + R, the pixel k places before."""
    taps = 2 * radius + 1
    one_hot = np.eye(taps, dtype="float32")[::-1]  # [position, tap]
    return one_hot.reshape((1, taps, taps) if axis == 2 else (taps, 1, taps))


def _shifted(padded, radius: int, axis: int):
    """padded [N, H', W', C] -> [N, H, W, C, 2R+1]: at tap k + R, the pixel k rows
    (axis 1) or columns (axis 2) before, k = -R..R.

    One depthwise convolution with one-hot kernels makes all 2R+1 copies: on the
    2-core CPU it ran the two passes 4x faster, gradient included, than 2R+1 slices
    (docs/recipes.md)."""
    taps, channels = 2 * radius + 1, padded.shape[-1]
    kernel = np.tile(_tap_positions(radius, axis)[:, :, None, :], (1, 1, channels, 1))
    copies = ops.depthwise_conv(padded, ops.cast(kernel, padded.dtype), padding="valid")
    return ops.reshape(copies, (-1, *copies.shape[1:3], channels, taps))


def move_frames(frames, rows, columns, radius: int, block_size: int = 1,
                warp: str = "backward"):
    """frames [N, H, W, C] moved by per-pixel shift weights rows, columns
    [N, H/b, W/b, 2R+1], one per block of b x b pixels (b = `block_size`).

    backward: each pixel gathers from where its content comes from (semi-Lagrangian):

        moved(y, x) = sum_k rows_k(y, x) * across(y - k, x)
        across(y, x) = sum_j columns_j(y, x) * frames(y, x - j)

    forward: each pixel sends its content where it goes (splatting, Niklaus & Liu
    2020), with its own weights:

        moved(y, x) = sum_k rows_k(y - k, x) * across(y - k, x)
        across(y, x) = sum_j columns_j(y, x - j) * frames(y, x - j)

    A forward move keeps the frame's sum (the continuity equation's mass), so it
    cannot make an object vanish by shrinking it, which backward flows learnt to do
    on Moving Digits as a way to fade (docs/recipes.md).

    Two passes of 2R+1 taps instead of one of (2R+1)^2: dimensional splitting, as
    semi-Lagrangian advection schemes split the axes. It is exact wherever the motion
    is the same over the 2R+1 rows a pixel reads (a translation, a pan), and one motion
    moves every channel."""
    if warp == "forward":
        across = _splat(_spread(frames, columns, block_size), radius, axis=2)
        return _splat(_spread(across, rows, block_size), radius, axis=1)
    across = _weigh(_shifted(_edge_pad(frames, radius, axis=2), radius, axis=2), columns,
                    block_size)  # [N, H, W, C]
    return _weigh(_shifted(_edge_pad(across, radius, axis=1), radius, axis=1), rows,
                  block_size)


def _blocks(values, block_size: int):
    """[N, H, W, ...] -> [N, H/b, b, W/b, b, ...]."""
    _, height, width, *rest = values.shape
    b = block_size
    return ops.reshape(values, (-1, height // b, b, width // b, b, *rest))


def _weigh(copies, weights, block_size: int):
    """copies [N, H, W, C, T] summed over T with weights [N, H/b, W/b, T], each block's
    weights broadcast over its b x b pixels (never copied out to every pixel)."""
    _, height, width, channels, _ = copies.shape
    weights = weights[:, :, None, :, None, None, :]  # [N, h, 1, w, 1, 1, T]
    summed = ops.sum(_blocks(copies, block_size) * weights, axis=-1)
    return ops.reshape(summed, (-1, height, width, channels))


def _spread(frames, weights, block_size: int):
    """frames [N, H, W, C] times each tap's weight [N, H/b, W/b, T] -> [N, H, W, C*T]."""
    _, height, width, channels = frames.shape
    weights = weights[:, :, None, :, None, None, :]  # [N, h, 1, w, 1, 1, T]
    spread = _blocks(frames, block_size)[..., None] * weights
    return ops.reshape(spread, (-1, height, width, channels * weights.shape[-1]))


def _splat(spread, radius: int, axis: int):
    """spread [N, H, W, C*T] -> [N, H, W, C]: tap t of each pixel sent t - R pixels on
    along `axis` (rows 1, columns 2), and what lands on a pixel summed."""
    taps = 2 * radius + 1
    channels = spread.shape[-1] // taps
    padded = _edge_pad(spread, radius, axis)
    # Channel (c, t) reads its own tap's position: [kh, kw, C*T, 1].
    kernel = np.tile(_tap_positions(radius, axis), (1, 1, channels))[..., None]
    landed = ops.depthwise_conv(padded, ops.cast(kernel, padded.dtype), padding="valid")
    return ops.sum(ops.reshape(landed, (-1, *landed.shape[1:3], channels, taps)), axis=-1)


@keras.saving.register_keras_serializable(package="framepred")
class Move(layers.Layer):
    """[frames [B, T, H, W, C], logits [B, T, h, w, K]] -> frames moved [B, T, H, W, C].

    The logits are per patch (h = H / block_size); every pixel of a patch moves alike,
    which keeps the motion smooth and the head as cheap as the residual one."""

    def __init__(self, radius: int, motion: str, block_size: int, warp: str = "backward",
                 **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.radius, self.motion, self.block_size = int(radius), str(motion), int(block_size)
        self.warp = str(warp)

    def call(self, inputs):
        frames, logits = inputs
        shape = ops.shape(frames)
        p = self.block_size
        rows, columns = shift_weights(  # [B*T, h, w, 2R+1] each
            ops.reshape(logits, (-1, *logits.shape[2:])), self.motion, self.radius)
        folded = ops.reshape(ops.cast(frames, "float32"), (-1, *frames.shape[2:]))
        moved = move_frames(folded, rows, columns, self.radius, p, self.warp)
        return ops.reshape(moved, shape)

    def compute_output_shape(self, input_shapes):
        return tuple(input_shapes[0])

    def get_config(self):
        return {**super().get_config(), "radius": self.radius, "motion": self.motion,
                "block_size": self.block_size, "warp": self.warp}


class MotionHead:
    """The motion head's layers, shared by every forecast step that calls it:

        moved_t    = Move(frame_{t-1}; motion logits of features_t)
        forecast_t = activation(inverse_activation(moved_t) + correction(features_t))

    The correction (zero at the start) adds what moving cannot explain: appearance,
    growth and decay, uncovered background. Moving never invents values: the weights
    are convex, so a moved frame stays within the range of the frame it moves.
    There is no gate between moved and unmoved frames (y + g * (moved - y)): "no shift"
    is one of the kernel's own choices, and a gate started at zero leaves the motion
    without a gradient (measured, docs/recipes.md).
    """

    def __init__(self, channels: int, patch_size: int, activation: str, motion: str,
                 radius: int, warp: str = "backward"):
        self.patch_size, self.motion, self.radius, self.warp = patch_size, motion, radius, warp
        self.logits = layers.Conv3D(
            motion_logit_count(motion, radius), kernel_size=1, name="motion", dtype="float32",
            kernel_initializer="zeros",
            bias_initializer=keras.initializers.Constant(motion_start(motion, radius)))
        self.correction = layers.Conv3D(channels * patch_size * patch_size, kernel_size=1,
                                        name="head", dtype="float32",
                                        kernel_initializer="zeros", bias_initializer="zeros")
        self.to_frames = DepthToSpace(patch_size, name="to_frames", dtype="float32")
        # A straight-through clip: a moved pixel of exactly 0 or 1 still passes its
        # gradient back to the motion (a plain clip would stop it on every black pixel).
        self.inverse = InverseActivation(activation, straight_through=True,
                                         name="copy_moved", dtype="float32")
        self.add = layers.Add(name="corrected", dtype="float32")
        self.activation = layers.Activation(activation, name="forecast", dtype="float32")

    def __call__(self, features, frames, name: str = "move"):
        """features [B, t, h, w, F], frames [B, t, H, W, C] -> forecasts [B, t, H, W, C]."""
        logits = self.logits(features)
        moved = Move(self.radius, self.motion, self.patch_size, self.warp, name=name)(
            [frames, logits])
        correction = self.to_frames(self.correction(features))
        return self.activation(self.add([self.inverse(moved), correction]))


def move_layers(model: keras.Model) -> list:
    """The motion head's `Move` layers in forecast order (one per step for the
    encoder-forecaster, one for next_frame); [] for a model without a motion head."""
    def step(layer):  # move_<t>, or "move" alone for next_frame
        suffix = layer.name.rpartition("_")[2]
        return int(suffix) if suffix.isdigit() else 0

    return sorted((layer for layer in model.layers if isinstance(layer, Move)), key=step)
