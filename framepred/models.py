"""Causal ConvLSTM forecasters (Shi et al. 2015), Keras layers only.

Two forms, both causal in time (a prediction never sees an input frame later
than the one it follows):

- next_frame: [B, T, H, W, C] -> [B, T, H, W, C], output t predicts frame t+1 from
  frames <= t. The future is forecast by feeding predictions back (`forecast`).
- encoder_forecaster: an encoder reads the context [B, Tc, H, W, C]; its final
  states start a forecaster that emits the future [B, Tf, H, W, C] (Shi et al. 2015).

Unlike the keras-io ConvLSTM example we never end in `Conv3D(padding="same")`:
its 3-frame temporal kernel lets output t see input t+1, the frame it must predict.
Every layer here mixes time only through the recurrent state; convolutions are
per frame. Frames are folded into patches first (space-to-depth, OpenSTL's
`patch_size`), which makes the recurrent grid `patch_size**2` times cheaper.
"""

from __future__ import annotations

import keras
import numpy as np
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


def _normalization(kind: str, filters: int, name: str):
    """Per-frame statistics only; see config.Normalization on why not batch norm."""
    if kind == "layer":
        return layers.LayerNormalization(axis=-1, name=name)  # over channels, per pixel
    if kind == "group":
        # GroupNormalization on [B, T, H, W, C] would pool its statistics over T too,
        # letting later frames shift earlier outputs; TimeDistributed keeps it per frame.
        groups = 4 if filters % 4 == 0 else 1
        return layers.TimeDistributed(layers.GroupNormalization(groups=groups), name=name)
    return None


# Below this, a sigmoid's output is taken as 0 when a frame is mapped back to logits: the
# copy is exact to COPY_EPSILON, and a black pixel starts at logit -6.9, not at -inf.
COPY_EPSILON = 1e-3


@keras.saving.register_keras_serializable(package="framepred")
class InverseActivation(layers.Layer):
    """Frames -> the head input that `activation` maps back to the same frames.

    The head adds this to its own output, so a head whose weights are zero forecasts
    exactly the frame it is given (copy-last) for every output activation, and the
    ConvLSTM learns the change on top of it. A gain-scaled identity through a sigmoid
    (sigmoid(14x - 7)) only copies pixels near 0 or 1: on mid-grey footage it starts
    far below copy-last.
    """

    def __init__(self, activation: str, **kwargs):
        super().__init__(**kwargs)
        self.activation = str(activation)

    def call(self, frames):
        frames = ops.cast(frames, self.compute_dtype)
        if self.activation == "sigmoid":
            clipped = ops.clip(frames, COPY_EPSILON, 1.0 - COPY_EPSILON)
            return ops.log(clipped) - ops.log1p(-clipped)  # logit
        if self.activation == "hard_sigmoid":
            return 6.0 * frames - 3.0  # hard_sigmoid(x) = x / 6 + 1/2 on [-3, 3]
        return frames  # linear, and relu for frames >= 0

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


def _head(features, channels: int, patch_size: int, activation: str, last=None):
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


def build_next_frame(
    frame_size, channels, filters=(64, 64), kernel_size=(3, 3), patch_size=4,
    normalization="none", output_activation="sigmoid", skip=True,
) -> keras.Model:
    """Stacked ConvLSTMs; output t is the forecast of frame t+1. Any sequence length."""
    height, width = frame_size
    frames = keras.Input((None, height, width, channels), name="frames")
    x = patches = SpaceToDepth(patch_size, name="to_patches")(frames)
    for i, (width_i, kernel) in enumerate(zip(filters, kernel_size)):
        # The final states are unused here; `step_model` reads them to roll out one
        # frame per step instead of re-reading the whole buffer.
        x, _, _ = layers.ConvLSTM2D(width_i, kernel, padding="same", return_sequences=True,
                                    return_state=True, name=f"convlstm_{i}")(x)
        norm = _normalization(normalization, width_i, f"norm_{i}")
        x = norm(x) if norm is not None else x
    if skip:
        # Output t also sees frame t itself, so copying it (the copy-last baseline) is
        # one 1x1 convolution away and the ConvLSTM learns the change; still causal.
        x = layers.Concatenate(axis=-1, name="skip")([x, patches])
    forecast = _head(x, channels, patch_size, output_activation, last=patches if skip else None)
    return keras.Model(frames, forecast, name="next_frame_convlstm")


def build_encoder_forecaster(
    frame_size, channels, context_frames, future_frames, filters=(64, 64),
    kernel_size=(3, 3), patch_size=4, normalization="none", output_activation="sigmoid",
    skip=True,
) -> keras.Model:
    """Encoder ConvLSTMs read the context; their states start the forecaster's."""
    height, width = frame_size
    context = keras.Input((context_frames, height, width, channels), name="context")
    x = patches = SpaceToDepth(patch_size, name="to_patches")(context)
    queries = ForecastQueries(future_frames, name="queries")(x)
    states = []
    for i, (width_i, kernel) in enumerate(zip(filters, kernel_size)):
        x, h, c = layers.ConvLSTM2D(width_i, kernel, padding="same", return_sequences=True,
                                    return_state=True, name=f"encoder_{i}")(x)
        states.append((h, c))
        norm = _normalization(normalization, width_i, f"encoder_norm_{i}")
        x = norm(x) if norm is not None else x
    y, outputs = queries, []
    for i, (width_i, kernel) in enumerate(zip(filters, kernel_size)):
        y = layers.ConvLSTM2D(width_i, kernel, padding="same", return_sequences=True,
                              name=f"forecaster_{i}")(y, initial_state=list(states[i]))
        norm = _normalization(normalization, width_i, f"forecaster_norm_{i}")
        y = norm(y) if norm is not None else y
        outputs.append(y)
    # Shi et al. 2015 concatenate every forecaster layer's states for the prediction.
    if skip:
        # Every forecast step also sees the last context frame: copy-last is one 1x1
        # convolution away, and the forecaster learns the motion on top of it.
        last = RepeatLast(future_frames, name="skip")(patches)
        outputs.append(last)
    features = outputs[0] if len(outputs) == 1 else layers.Concatenate(axis=-1)(outputs)
    forecast = _head(features, channels, patch_size, output_activation,
                     last=last if skip else None)
    return keras.Model(context, forecast, name="encoder_forecaster_convlstm")


def build_model(model_cfg, data_cfg) -> keras.Model:
    """The model a config asks for."""
    form = getattr(model_cfg.form, "value", model_cfg.form)
    options = dict(
        frame_size=tuple(data_cfg.frame_size),
        channels=int(data_cfg.channels),
        filters=tuple(model_cfg.filters),
        kernel_size=tuple(model_cfg.kernel_size),
        patch_size=int(model_cfg.patch_size),
        normalization=getattr(model_cfg.normalization, "value", model_cfg.normalization),
        output_activation=getattr(
            model_cfg.output_activation, "value", model_cfg.output_activation),
        skip=bool(getattr(model_cfg, "skip", True)),
    )
    if form == "next_frame":
        return build_next_frame(**options)
    return build_encoder_forecaster(
        context_frames=int(data_cfg.context_frames),
        future_frames=int(data_cfg.future_frames),
        **options,
    )


def model_form(model: keras.Model) -> str:
    """"next_frame" for models that take any sequence length, else "encoder_forecaster"."""
    return "next_frame" if model.inputs[0].shape[1] is None else "encoder_forecaster"


def forecast(model: keras.Model, context, steps: int) -> np.ndarray:
    """Forecasts `steps` frames after `context` [B, Tc, H, W, C] -> [B, steps, H, W, C].

    next_frame models roll out one frame at a time: the buffer holds the context and
    the predictions so far, padded to a fixed length so the model is traced once.
    Causality makes the padding harmless: output t only reads buffer[: t + 1].
    encoder_forecaster models emit their trained horizon at once and, for longer
    horizons, continue from their own last `Tc` frames.
    """
    context = np.asarray(context, dtype=np.float32)
    batch, context_frames = context.shape[:2]
    if model_form(model) == "next_frame":
        buffer = np.concatenate(
            [context, np.zeros((batch, steps - 1, *context.shape[2:]), np.float32)], axis=1
        )
        for k in range(steps):
            predicted = _predict(model, buffer)
            frame = predicted[:, context_frames - 1 + k]
            if k + 1 < steps:
                buffer[:, context_frames + k] = frame
            else:
                last = frame
        return np.concatenate([buffer[:, context_frames:], last[:, None]], axis=1)

    trained_context = model.inputs[0].shape[1]
    history, produced = context, []
    while sum(p.shape[1] for p in produced) < steps:
        chunk = _predict(model, history[:, -trained_context:])
        produced.append(chunk)
        history = np.concatenate([history, chunk], axis=1)
    return np.concatenate(produced, axis=1)[:, :steps]


def _predict(model: keras.Model, inputs: np.ndarray) -> np.ndarray:
    # Under tf.distribute.MirroredStrategy a batch smaller than the replica count
    # comes back padded to one row per replica; keep the rows that were asked for.
    return np.asarray(model.predict_on_batch(inputs))[: len(inputs)]


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
    head = model.get_layer("head")
    activation = model.get_layer("forecast").get_config()["activation"]
    kernel, bias = head.get_weights()  # kernel [1, 1, 1, features, p*p*C]
    if _has_layer(model, "copy_last"):
        kernel[:] = 0.0
        bias[:] = 0.0
    else:
        level = float(np.clip(level, 1e-3, 1.0 - 1e-3))
        if activation == "sigmoid":
            bias[:] = np.log(level / (1.0 - level))  # logit
        elif activation == "hard_sigmoid":
            bias[:] = (level - 0.5) * 6.0
        else:
            bias[:] = level
    head.set_weights([kernel, bias])


def _has_layer(model: keras.Model, name: str) -> bool:
    return any(layer.name == name for layer in model.layers)
