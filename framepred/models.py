"""Causal ConvLSTM forecasters (Shi et al. 2015), Keras layers only.

Two forms, both causal in time (a prediction never sees an input frame later
than the one it follows):

- next_frame: [B, T, H, W, C] -> [B, T, H, W, C], output t predicts frame t+1 from
  frames <= t. The future is forecast by feeding predictions back (`forecast`), one
  ConvLSTM step per frame (`step_model`). Trained teacher-forced, or on its own
  forecasts with (reverse) scheduled sampling (`build_sampled_next_frame`).
- encoder_forecaster: an encoder reads the context [B, Tc, H, W, C]; its final
  states start a forecaster that emits the future [B, Tf, H, W, C] (Shi et al. 2015).

Unlike the keras-io ConvLSTM example we never end in `Conv3D(padding="same")`:
its 3-frame temporal kernel lets output t see input t+1, the frame it must predict.
Every layer here mixes time only through the recurrent state; convolutions are
per frame. Frames are folded into patches first (space-to-depth, OpenSTL's
`patch_size`), which makes the recurrent grid `patch_size**2` times cheaper.
"""

from __future__ import annotations

import weakref

import keras
import numpy as np
from keras import layers, ops

from framepred import xla


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


def _patches(frames, kernel_size):
    """[B, H, W, C] -> [B, H, W, kh*kw*C]: each pixel's "same"-padded neighbourhood,
    row by row, as a stride-1 convolution with `kernel_size` reads it (im2col)."""
    kh, kw = kernel_size
    _, height, width, _ = frames.shape
    # "same" padding: XLA's and TensorFlow's split, the extra row or column after.
    padded = ops.pad(frames, ((0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0)))
    return ops.concatenate(
        [padded[:, i : i + height, j : j + width] for i in range(kh) for j in range(kw)], axis=-1)


def _unpatch(grads, kernel_size, height, width):
    """The gradient of `_patches`: [B, h, w, kh*kw*C] -> [B, h, w, C] (col2im)."""
    kh, kw = kernel_size
    parts = ops.split(grads, kh * kw, axis=-1)
    padded = sum(
        ops.pad(parts[i * kw + j], ((0, 0), (i, kh - 1 - i), (j, kw - 1 - j), (0, 0)))
        for i in range(kh) for j in range(kw))
    top, left = (kh - 1) // 2, (kw - 1) // 2
    return padded[:, top : top + height, left : left + width]


def _conv_as_matmul(frames, kernel, kernel_size):
    """A stride-1 "same" convolution of frames [B, h, w, C] with kernel
    [kh*kw*C, N], as one matrix product over their neighbourhoods.

    The gradient rebuilds the neighbourhoods from `frames` instead of keeping them:
    under a scan, autodiff would store every step's [B*h*w, kh*kw*C] block, kh*kw
    times the frames, and filling and reading those stacks took a third of a
    training step on the 2-core CPU (docs/performance.md).
    """
    _, height, width, _ = frames.shape

    @ops.custom_gradient
    def product(frames, kernel):
        def grad(*args, upstream=None):
            upstream = args[0] if upstream is None else upstream  # [B, h, w, N]
            # Contractions over the rows' axis, not transposes: no copies.
            rows = ops.reshape(_patches(frames, kernel_size), (-1, kernel.shape[0]))
            d_kernel = ops.einsum("nk,nf->kf", rows, ops.reshape(upstream, (-1, kernel.shape[1])))
            d_frames = _unpatch(ops.einsum("bhwf,kf->bhwk", upstream, kernel), kernel_size,
                                height, width)
            return d_frames, d_kernel

        return ops.matmul(_patches(frames, kernel_size), kernel), grad

    return product(frames, kernel)


@keras.saving.register_keras_serializable(package="framepred")
class ConvLSTM(layers.ConvLSTM2D):
    """Keras' ConvLSTM2D, with the same weights, values and gradients, that runs its
    recurrence as matrix products where XLA computes on a CPU.

    Keras' cell makes eight convolutions a step, and under JAX the recurrence is a
    `lax.scan`. On a CPU, XLA runs a convolution inside a loop far slower than outside
    one (jax-ml/jax#12868), its kernel gradient worst: one layer's training step took
    2.3 s where TensorFlow takes 0.1 s (scripts/bench_convlstm.py, docs/performance.md).
    Here each step reads the "same"-padded neighbourhoods of the input and the state
    (im2col) and multiplies them once by both kernels stacked: one matrix product a
    step, whose gradients are matrix products too. Unrolling the loop instead is also
    fast for one layer but grows worse than linearly with depth (2.3 s a step for
    three layers, against 0.5 s on TensorFlow). Elsewhere Keras' own loop runs: on
    TensorFlow; under JAX on GPUs and TPUs, where that CPU issue is not reported and
    this formulation is not measured; and for options framepred does not set
    (strides, dilation, dropout, masks, reverse order).
    """

    def _matmul_recurrence(self, mask, training):
        cell = self.cell
        plain = (cell.data_format == "channels_last" and cell.padding == "same"
                 and set(cell.strides) == {1} and set(cell.dilation_rate) == {1}
                 and not (training and (cell.dropout or cell.recurrent_dropout)))
        return (plain and mask is None and not self.go_backwards and cell.use_bias
                and xla.jax_on_cpu())

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if not self._matmul_recurrence(mask, training):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        cell, dtype = self.cell, self.compute_dtype
        # [kh, kw, C + F, 4F] -> [kh*kw*(C + F), 4F], rows in `_patches`' order.
        kernel = ops.concatenate([ops.cast(cell.kernel, dtype),
                                  ops.cast(cell.recurrent_kernel, dtype)], axis=2)
        kernel = ops.reshape(kernel, (-1, kernel.shape[-1]))
        bias = ops.cast(cell.bias, dtype)

        def step(states, frame):
            hidden, carry = states
            joined = ops.concatenate([ops.cast(frame, dtype), hidden], axis=-1)
            gates = _conv_as_matmul(joined, kernel, cell.kernel_size) + bias
            # Keras' gate order and arithmetic (ConvLSTMCell.call).
            z_i, z_f, z_c, z_o = ops.split(gates, 4, axis=-1)
            carry = (cell.recurrent_activation(z_f) * carry
                     + cell.recurrent_activation(z_i) * cell.activation(z_c))
            hidden = cell.recurrent_activation(z_o) * cell.activation(carry)
            return (hidden, carry), hidden

        time_major = ops.moveaxis(sequences, 1, 0)  # [T, B, h, w, C]
        start = tuple(ops.cast(state, dtype) for state in initial_state)
        (hidden, carry), outputs = ops.scan(step, start, time_major)
        return hidden, ops.moveaxis(outputs, 0, 1), [hidden, carry]


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
        options = {"training": training} if self.layer._call_has_training_arg else {}
        outputs = self.layer.call(folded, **options)
        return ops.reshape(outputs, (shape[0], shape[1], *outputs.shape[1:]))


def _normalization(kind: str, filters: int, name: str):
    """Per-frame statistics only; see config.Normalization on why not batch norm."""
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


def inverse_activation(values, activation: str):
    """The head input that `activation` maps to `values` (in [0, 1]; a sigmoid's
    values are clipped to [COPY_EPSILON, 1 - COPY_EPSILON] first)."""
    if activation == "sigmoid":
        clipped = ops.clip(values, COPY_EPSILON, 1.0 - COPY_EPSILON)
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

    def __init__(self, activation: str, **kwargs):
        super().__init__(**kwargs)
        self.activation = str(activation)

    def call(self, frames):
        return inverse_activation(ops.cast(frames, self.compute_dtype), self.activation)

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
    frame_size, channels, *, filters, kernel_size, patch_size, normalization,
    output_activation, skip,
) -> keras.Model:
    """Stacked ConvLSTMs; output t is the forecast of frame t+1. Any sequence length."""
    height, width = frame_size
    frames = keras.Input((None, height, width, channels), name="frames")
    x = patches = SpaceToDepth(patch_size, name="to_patches")(frames)
    for i, (width_i, kernel) in enumerate(zip(filters, kernel_size)):
        # The final states are unused here; `step_model` reads them to roll out one
        # frame per step instead of re-reading the whole buffer.
        x, _, _ = ConvLSTM(width_i, kernel, padding="same", return_sequences=True,
                           return_state=True, name=f"convlstm_{i}")(x)
        norm = _normalization(normalization, width_i, f"norm_{i}")
        x = norm(x) if norm is not None else x
    if skip:
        # Output t also sees frame t itself: the head adds its projection to that frame
        # (copy-last), and the projection reads the raw frame beside the ConvLSTM
        # features; still causal.
        x = layers.Concatenate(axis=-1, name="skip")([x, patches])
    forecast = _head(x, channels, patch_size, output_activation, last=patches if skip else None)
    return keras.Model(frames, forecast, name="next_frame_convlstm")


def build_encoder_forecaster(
    frame_size, channels, context_frames, future_frames, *, filters, kernel_size,
    patch_size, normalization, output_activation, skip,
) -> keras.Model:
    """Encoder ConvLSTMs read the context; their states start the forecaster's."""
    height, width = frame_size
    context = keras.Input((context_frames, height, width, channels), name="context")
    x = patches = SpaceToDepth(patch_size, name="to_patches")(context)
    queries = ForecastQueries(future_frames, name="queries")(x)
    states = []
    for i, (width_i, kernel) in enumerate(zip(filters, kernel_size)):
        x, h, c = ConvLSTM(width_i, kernel, padding="same", return_sequences=True,
                           return_state=True, name=f"encoder_{i}")(x)
        states.append((h, c))
        norm = _normalization(normalization, width_i, f"encoder_norm_{i}")
        x = norm(x) if norm is not None else x
    y, outputs = queries, []
    for i, (width_i, kernel) in enumerate(zip(filters, kernel_size)):
        y = ConvLSTM(width_i, kernel, padding="same", return_sequences=True,
                     name=f"forecaster_{i}")(y, initial_state=list(states[i]))
        norm = _normalization(normalization, width_i, f"forecaster_norm_{i}")
        y = norm(y) if norm is not None else y
        outputs.append(y)
    # Shi et al. 2015 concatenate every forecaster layer's states for the prediction.
    if skip:
        # Every forecast step also sees the last context frame: the head adds its
        # projection to it (copy-last), and the forecaster learns the motion on top.
        last = RepeatLast(future_frames, name="skip")(patches)
        outputs.append(last)
    features = outputs[0] if len(outputs) == 1 else layers.Concatenate(axis=-1)(outputs)
    forecast = _head(features, channels, patch_size, output_activation,
                     last=last if skip else None)
    return keras.Model(context, forecast, name="encoder_forecaster_convlstm")


# --- scheduled sampling: training next_frame on its own forecasts -------------------

def true_frame_probabilities(kind: str, iteration, steps: int, context_frames: int,
                             start_value=1.0, changing_rate=2e-5, stop_step=50000,
                             reverse_steps=(25000, 50000), reverse_alpha=5000.0):
    """Probability that step t (0 ... steps-1) reads the true frame t, at `iteration`.

    OpenSTL's schedules (openstl/utils/predrnn_utils.py), with `itr` its 0-based
    global step. Step 0 always reads frame 0.

    Formula:

    ```python
    # scheduled (Bengio et al. 2015; `schedule_sampling`): context steps read the
    # truth; forecast steps (t >= context_frames) read it with probability eta:
    eta = start_value - (itr + 1) * changing_rate if itr < stop_step else 0.0
    # reverse_scheduled (Wang et al. 2022, PredRNN-V2; `reserve_schedule_sampling_exp`),
    # s1, s2 = reverse_steps, alpha = reverse_alpha:
    context  (1 <= t < context_frames): 0.5 -> 1.0, exponentially
        r_eta = 0.5 if itr < s1 else 1 - 0.5 * exp(-(itr - s1) / alpha) if itr < s2 else 1.0
    forecast (t >= context_frames): 0.5 -> 0.0, linearly
        eta = 0.5 if itr < s1 else 0.5 - 0.5 / (s2 - s1) * (itr - s1) if itr < s2 else 0.0
    ```

    OpenSTL keeps scheduled sampling's eta as state and subtracts the rate once per
    step, which is the closed form above. `iteration` may be a number or a tensor.
    Returns [steps] float32.
    """
    itr = ops.cast(iteration, "float32")
    if kind == "scheduled":
        context = ops.ones((), "float32")
        forecast = ops.where(itr < stop_step, start_value - (itr + 1.0) * changing_rate, 0.0)
    elif kind == "reverse_scheduled":
        first, second = (float(step) for step in reverse_steps)
        since = itr - first
        context = ops.where(itr < first, 0.5, ops.where(
            itr < second, 1.0 - 0.5 * ops.exp(-since / reverse_alpha), 1.0))
        forecast = ops.where(itr < first, 0.5, ops.where(
            itr < second, 0.5 - 0.5 / (second - first) * since, 0.0))
    else:
        raise ValueError(f"no schedule for sampling={kind!r}")
    step = np.arange(steps)
    probability = ops.where(step < context_frames, context, forecast)
    return ops.cast(ops.where(step == 0, 1.0, probability), "float32")


@keras.saving.register_keras_serializable(package="framepred")
class SampleTrueFrames(layers.Layer):
    """frames [B, T, ...] -> [B, T]: 1 where step t reads true frame t, 0 where it reads
    the model's own forecast of it.

    In training calls each entry is drawn with `true_frame_probabilities` at the
    layer's iteration, which then advances by one: a non-trainable weight, so a
    checkpoint or backup carries it and a resumed run continues the schedule. Draws
    are per (sequence, step), as OpenSTL's masks. Outside training, all ones:
    teacher forcing, so validation losses compare with teacher-forced runs.
    """

    def __init__(self, kind, context_frames, start_value=1.0, changing_rate=2e-5,
                 stop_step=50000, reverse_steps=(25000, 50000), reverse_alpha=5000.0,
                 seed=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.schedule = dict(
            kind=str(kind), context_frames=int(context_frames),
            start_value=float(start_value), changing_rate=float(changing_rate),
            stop_step=int(stop_step), reverse_steps=[int(s) for s in reverse_steps],
            reverse_alpha=float(reverse_alpha))
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        # One count for all replicas, as the optimizer's own iteration count.
        self.iteration = self.add_weight(shape=(), dtype="int32", initializer="zeros",
                                         trainable=False, aggregation="only_first_replica",
                                         name="iteration")

    def probabilities(self, steps: int):
        """[steps] probabilities of the true frame at the current iteration."""
        return true_frame_probabilities(iteration=self.iteration, steps=steps, **self.schedule)

    def call(self, frames, training=None):
        batch, steps = ops.shape(frames)[0], frames.shape[1]
        if not training:
            return ops.ones((batch, steps), self.compute_dtype)
        probability = self.probabilities(steps)  # [T]
        draw = keras.random.uniform((batch, steps), seed=self.seed_generator)
        self.iteration.assign_add(1)
        return ops.cast(draw < probability[None], self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:2])

    def get_config(self):
        return {**super().get_config(), **self.schedule, "seed": self.seed}


@keras.saving.register_keras_serializable(package="framepred")
class FeedBack(layers.Layer):
    """Step t's input [B, 1, H, W, C]: true frame t where the mask says so, else the
    forecast of frame t made at step t - 1. [frames, mask] alone: true frame t."""

    def __init__(self, step: int, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.step = int(step)

    def call(self, inputs):
        frames, mask = inputs[0], inputs[1]  # [B, T, H, W, C], [B, T]
        true = frames[:, self.step : self.step + 1]
        if len(inputs) == 2:
            return true
        use_true = ops.reshape(mask[:, self.step], (-1, 1, 1, 1, 1))
        # where, not a blend: a mask of ones gives the true frame bit for bit.
        return ops.where(use_true > 0.5, true, ops.cast(inputs[2], true.dtype))

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], 1, *input_shape[0][2:])

    def get_config(self):
        return {**super().get_config(), "step": self.step}


@keras.saving.register_keras_serializable(package="framepred")
class ZeroStates(layers.Layer):
    """frames [B, ...] -> one zero state [B, *shape] per shape: ConvLSTM2D's own start."""

    def __init__(self, shapes, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.shapes = [[int(d) for d in shape] for shape in shapes]

    def call(self, frames):
        batch = ops.shape(frames)[0]
        return [ops.zeros((batch, *shape), self.compute_dtype) for shape in self.shapes]

    def compute_output_shape(self, input_shape):
        return [(input_shape[0], *shape) for shape in self.shapes]

    def get_config(self):
        return {**super().get_config(), "shapes": self.shapes}


def build_sampled_next_frame(model: keras.Model, sampling: str, context_frames: int,
                             future_frames: int, seed=None, **schedule) -> keras.Model:
    """`model` (next_frame) unrolled over a training window, fed its own forecasts.

    frames 0 ... T-1 -> forecasts of 1 ... T, T = context + future - 1 (the pairs of
    `data.split_window`). Step t reads true frame t or, drawn by `SampleTrueFrames`,
    the forecast of it from step t - 1, which the loss then trains through (OpenSTL's
    ConvLSTM unrolls the same way, openstl/models/convlstm_model.py). Each step is
    `step_model(model)`, nested under the name `STEP_MODEL`, so the weights are the
    model's, and `forecast` rolls a saved checkpoint out with it. `schedule` holds
    the keyword options of `true_frame_probabilities`.
    """
    step = step_model(model)
    steps = context_frames + future_frames - 1
    frames = keras.Input((steps, *model.inputs[0].shape[2:]), name="frames")
    use_true = SampleTrueFrames(sampling, context_frames, seed=seed, name="sampling",
                                **schedule)(frames)  # [B, T]
    states = ZeroStates([state.shape[1:] for state in step.inputs[1:]], name="zero_states")(
        frames)
    forecasts = []
    for t in range(steps):
        fed = [frames, use_true] + forecasts[-1:]
        step_input = FeedBack(t, name=f"feed_{t}")(fed)  # [B, 1, H, W, C]
        forecast, *states = step([step_input, *states])
        forecasts.append(forecast)
    joined = layers.Concatenate(axis=1, name="forecasts", dtype="float32")(forecasts)
    return keras.Model(frames, joined, name="next_frame_sampled")


def build_model(model_cfg, data_cfg) -> keras.Model:
    """The model a config asks for. Every option comes from the config, whose schema
    (`framepred.config.ModelConfig`) holds the defaults."""
    form = model_cfg.form
    options = dict(
        frame_size=tuple(data_cfg.frame_size),
        channels=int(data_cfg.channels),
        filters=tuple(model_cfg.filters),
        kernel_size=tuple(model_cfg.kernel_size),
        patch_size=int(model_cfg.patch_size),
        normalization=str(model_cfg.normalization),
        output_activation=str(model_cfg.output_activation),
        skip=bool(model_cfg.skip),
    )
    if form == "next_frame":
        return build_next_frame(**options)
    return build_encoder_forecaster(
        context_frames=int(data_cfg.context_frames),
        future_frames=int(data_cfg.future_frames),
        **options,
    )


def model_form(model: keras.Model) -> str:
    """"next_frame" for models that take any sequence length or hold a next_frame step
    (trained with scheduled sampling), else "encoder_forecaster"."""
    if model.inputs[0].shape[1] is None or _has_layer(model, STEP_MODEL):
        return "next_frame"
    return "encoder_forecaster"


# The name of the step model nested in a model trained with scheduled sampling.
STEP_MODEL = "next_frame_step"
_STEP_MODELS = weakref.WeakKeyDictionary()  # model -> its step model, built once


def step_model(model: keras.Model) -> keras.Model | None:
    """A next_frame model as a recurrent step that hands its ConvLSTM states on.

    (frames [B, t, H, W, C], h_0, c_0, h_1, c_1, ...) -> (forecasts [B, t, H, W, C],
    h_0, c_0, ...), one state [B, h, w, filters] per ConvLSTM layer. From zero states
    the forecasts are the model's own outputs; from the states a call ended with, the
    next call continues the same sequence. The step reuses the model's layer objects,
    so it shares the weights as they train. Built once per model and cached; None for
    checkpoints saved before the ConvLSTMs returned their states.
    """
    if _has_layer(model, STEP_MODEL):
        return model.get_layer(STEP_MODEL)
    if model in _STEP_MODELS:
        return _STEP_MODELS[model]
    recurrent = [layer for layer in model.layers if isinstance(layer, layers.ConvLSTM2D)]
    if not recurrent or not all(layer.return_state for layer in recurrent):
        return None
    frames = keras.Input(model.inputs[0].shape[1:], name="frames")
    initial, final = {}, {}
    for layer in recurrent:
        _, hidden, _ = layer.output  # [B, h, w, filters]
        initial[id(layer)] = [keras.Input(hidden.shape[1:], name=f"{layer.name}_{part}")
                              for part in ("h", "c")]

    def with_states(operation):
        if id(operation) not in initial:
            return operation

        def call(*args, **kwargs):
            outputs = operation(*args, initial_state=initial[id(operation)], **kwargs)
            final[id(operation)] = outputs[1:]
            return outputs

        return call

    # Keras' own graph replay (what a functional model's call runs), over new inputs:
    # every layer is the model's, only the ConvLSTMs also take and give their states.
    forecasts = model._run_through_graph([frames], operation_fn=with_states)
    inputs = [frames] + [state for layer in recurrent for state in initial[id(layer)]]
    outputs = [forecasts] + [state for layer in recurrent for state in final[id(layer)]]
    step = keras.Model(inputs, outputs, name=STEP_MODEL)
    _STEP_MODELS[model] = step
    return step


def forecast(model: keras.Model, context, steps: int, carry_states: bool = True) -> np.ndarray:
    """Forecasts `steps` frames after `context` [B, Tc, H, W, C] -> [B, steps, H, W, C].

    next_frame models roll out one frame at a time, feeding each forecast back. With
    their `step_model` that is one pass over the context and then one ConvLSTM step per
    frame (Shi et al. 2015 unroll the same way). Checkpoints without it, or
    `carry_states=False`, re-read a buffer of the context and the forecasts so far
    for every frame: `steps` full passes. The buffer is padded to a fixed length so
    the model is traced once; causality makes the padding harmless, as output t only
    reads buffer[: t + 1].
    encoder_forecaster models emit their trained horizon at once and, for longer
    horizons, continue from their own last `Tc` frames.
    """
    context = np.asarray(context, dtype=np.float32)
    batch, context_frames = context.shape[:2]
    if model_form(model) == "next_frame":
        step = step_model(model) if carry_states else None
        if step is not None:
            return _rollout_with_states(step, context, steps)
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


def _rollout_with_states(step: keras.Model, context: np.ndarray, steps: int) -> np.ndarray:
    """The context once from zero states (ConvLSTM2D's own start), then one frame a call."""
    states = [np.zeros((len(context), *state.shape[1:]), np.float32) for state in step.inputs[1:]]
    frames, produced = context, []
    for _ in range(steps):
        forecasts, *states = _predict(step, [frames, *states])
        frames = forecasts[:, -1:]  # [B, 1, H, W, C]: the next frame, fed back
        produced.append(frames)
    return np.concatenate(produced, axis=1)


def _predict(model: keras.Model, inputs):
    """`model.predict_on_batch` as float32 NumPy, one array per output."""
    rows = len(inputs[0]) if isinstance(inputs, list) else len(inputs)
    outputs = model.predict_on_batch(inputs)
    # Under tf.distribute.MirroredStrategy a batch smaller than the replica count
    # comes back padded to one row per replica; keep the rows that were asked for.
    if isinstance(outputs, (list, tuple)):
        return [np.asarray(output, np.float32)[:rows] for output in outputs]
    return np.asarray(outputs, np.float32)[:rows]


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
        level = float(np.clip(level, COPY_EPSILON, 1.0 - COPY_EPSILON))
        bias[:] = float(inverse_activation(np.float32(level), activation))
    head.set_weights([kernel, bias])


def _has_layer(model: keras.Model, name: str) -> bool:
    return any(layer.name == name for layer in model.layers)


def with_sampling(model: keras.Model, trainer, data_cfg) -> keras.Model:
    """The next_frame `model` unrolled with (reverse) scheduled sampling, per
    `trainer.sampling`; `model` itself for teacher forcing."""
    if trainer.sampling == "teacher_forcing":
        return model
    return build_sampled_next_frame(
        model, trainer.sampling, int(data_cfg.context_frames), int(data_cfg.future_frames),
        seed=int(trainer.seed), start_value=float(trainer.sampling_start_value),
        changing_rate=float(trainer.sampling_changing_rate),
        stop_step=int(trainer.sampling_stop_step),
        reverse_steps=[int(s) for s in trainer.reverse_sampling_steps],
        reverse_alpha=float(trainer.reverse_sampling_alpha),
    )
