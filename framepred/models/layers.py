"""The per-frame layers every framepred model is built from: patches and back, the
forecaster's queries, per-frame normalization, and the copy-last residual."""

from __future__ import annotations

import inspect

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="framepred")
class SpaceToDepth(layers.Layer):
    """Per frame: [B, T, H, W, C] -> [B, T, H/p, W/p, p*p*C]."""

    def __init__(self, block_size: int, **kwargs):
        super().__init__(**kwargs)
        self.block_size = int(block_size)

    def call(self, frames):
        p = self.block_size
        if p == 1:
            return frames
        shape = ops.shape(frames)
        _, _, height, width, channels = frames.shape
        grid = ops.reshape(frames, (shape[0], shape[1], height // p, p, width // p, p, channels))
        grid = ops.transpose(grid, (0, 1, 2, 4, 3, 5, 6))  # [B, T, H/p, W/p, p, p, C]
        return ops.reshape(grid, (shape[0], shape[1], height // p, width // p, p * p * channels))

    def compute_output_shape(self, input_shape):
        b, t, h, w, c = input_shape
        p = self.block_size
        return (b, t, h // p, w // p, c * p * p)

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}


@keras.saving.register_keras_serializable(package="framepred")
class DepthToSpace(layers.Layer):
    """Per frame: [B, T, h, w, p*p*C] -> [B, T, h*p, w*p, C]; inverse of SpaceToDepth."""

    def __init__(self, block_size: int, **kwargs):
        super().__init__(**kwargs)
        self.block_size = int(block_size)

    def call(self, patches):
        p = self.block_size
        if p == 1:
            return patches
        shape = ops.shape(patches)
        _, _, height, width, depth = patches.shape
        channels = depth // (p * p)
        grid = ops.reshape(patches, (shape[0], shape[1], height, width, p, p, channels))
        grid = ops.transpose(grid, (0, 1, 2, 4, 3, 5, 6))  # [B, T, h, p, w, p, C]
        return ops.reshape(grid, (shape[0], shape[1], height * p, width * p, channels))

    def compute_output_shape(self, input_shape):
        b, t, h, w, c = input_shape
        p = self.block_size
        return (b, t, h * p, w * p, c // (p * p))

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}


@keras.saving.register_keras_serializable(package="framepred")
class ForecastQueries(layers.Layer):
    """Zeros [B, future_frames, h, w, 1] for the forecaster to read.

    Shi et al.'s forecaster has no input of its own; it unrolls from the encoder's
    states. Keras' ConvLSTM2D needs an input sequence to set the number of steps,
    so it gets an all-zero one, which carries no information.
    """

    def __init__(self, future_frames: int, **kwargs):
        super().__init__(**kwargs)
        self.future_frames = int(future_frames)

    def call(self, context_features):
        shape = ops.shape(context_features)
        _, _, height, width, _ = context_features.shape
        return ops.zeros((shape[0], self.future_frames, height, width, 1), dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.future_frames, input_shape[2], input_shape[3], 1)

    def get_config(self):
        return {**super().get_config(), "future_frames": self.future_frames}


@keras.saving.register_keras_serializable(package="framepred")
class RepeatLast(layers.Layer):
    """[B, T, h, w, c] -> [B, steps, h, w, c]: the last frame, repeated."""

    def __init__(self, steps: int, **kwargs):
        super().__init__(**kwargs)
        self.steps = int(steps)

    def call(self, frames):
        return ops.repeat(frames[:, -1:], self.steps, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.steps, *input_shape[2:])

    def get_config(self):
        return {**super().get_config(), "steps": self.steps}


@keras.saving.register_keras_serializable(package="framepred")
class FrameAt(layers.Layer):
    """[B, T, ...] -> [B, 1, ...]: frame `index` (negative counts from the end)."""

    def __init__(self, index: int, **kwargs):
        super().__init__(**kwargs)
        self.index = int(index)

    def call(self, frames):
        stop = self.index + 1 if self.index != -1 else None
        return frames[:, self.index : stop]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1, *input_shape[2:])

    def get_config(self):
        return {**super().get_config(), "index": self.index}


@keras.saving.register_keras_serializable(package="framepred")
class PerFrame(layers.TimeDistributed):
    """TimeDistributed that folds time into the batch: [B, T, ...] -> [B*T, ...] -> back.

    Keras' TimeDistributed loops over a static T and `vectorized_map`s over an unknown
    one. Under TensorFlow the latter breaks once a traced predict function is reused
    for another T (Keras 3.15: 3 frames in, 2 out, or a slice error), and the rollout
    calls the same step model with T = context and then T = 1. One call over B*T
    frames is correct for every T, and the same per-frame statistics.
    """

    def call(self, inputs, training=None, mask=None):
        shape = ops.shape(inputs)
        folded = ops.reshape(inputs, (-1, *inputs.shape[2:]))  # [B, T, h, w, c] -> [B*T, ...]
        takes_training = "training" in inspect.signature(self.layer.call).parameters
        options = {"training": training} if takes_training else {}
        outputs = self.layer.call(folded, **options)
        return ops.reshape(outputs, (shape[0], shape[1], *outputs.shape[1:]))


def norm_layer(kind: str, filters: int, name: str):
    """Per-frame statistics only; see config.NormLayer on why not batch norm."""
    if kind == "layer":
        return layers.LayerNormalization(axis=-1, name=name)  # over channels, per pixel
    if kind == "group":
        # GroupNormalization on [B, T, H, W, C] would pool its statistics over T too,
        # letting later frames shift earlier outputs; PerFrame keeps it per frame.
        groups = 4 if filters % 4 == 0 else 1
        return PerFrame(layers.GroupNormalization(groups=groups), name=name)
    return None


# Below this, a sigmoid's output is taken as 0 when a frame is mapped back to logits: the
# copy is exact to COPY_EPSILON, and a black pixel starts at logit -6.9, not at -inf.
COPY_EPSILON = 1e-3


def inverse_activation(values, activation: str, straight_through: bool = False):
    """The head input that `activation` maps to `values` (in [0, 1]; a sigmoid's
    values are clipped to [COPY_EPSILON, 1 - COPY_EPSILON] first).

    `straight_through`: the clip passes the gradient on unchanged, so a value of
    exactly 0 or 1 still tells what made it (Bengio et al. 2013's estimator); the
    sigmoid of the result, under a zero correction, then has a gradient of exactly 1
    in `values` everywhere."""
    if activation == "sigmoid":
        clipped = ops.clip(values, COPY_EPSILON, 1.0 - COPY_EPSILON)
        if straight_through:
            clipped = values + ops.stop_gradient(clipped - values)
        return ops.log(clipped) - ops.log1p(-clipped)  # logit
    if activation == "hard_sigmoid":
        return 6.0 * values - 3.0  # hard_sigmoid(x) = x / 6 + 1/2 on [-3, 3]
    return values  # linear, and relu for values >= 0


@keras.saving.register_keras_serializable(package="framepred")
class InverseActivation(layers.Layer):
    """Frames -> the head input that `activation` maps back to the same frames.

    The head adds this to its own output, so a head whose weights are zero forecasts
    exactly the frame it is given (copy-last) for every output activation, and the
    ConvLSTM learns the change on top of it. A gain-scaled identity through a sigmoid
    (sigmoid(14x - 7)) only copies pixels near 0 or 1: on mid-grey footage it starts
    far below copy-last.
    """

    def __init__(self, activation: str, straight_through: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.activation = str(activation)
        self.straight_through = bool(straight_through)

    def call(self, frames):
        return inverse_activation(ops.cast(frames, self.compute_dtype), self.activation,
                                  self.straight_through)

    def get_config(self):
        return {**super().get_config(), "activation": self.activation,
                "straight_through": self.straight_through}


def has_layer(model: keras.Model, name: str) -> bool:
    return any(layer.name == name for layer in model.layers)

