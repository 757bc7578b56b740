"""Scheduled sampling: training next_frame on its own forecasts."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from framepred.models.rollout import step_model

# OpenSTL's schedule defaults (openstl/utils/predrnn_utils.py and its ConvLSTM configs:
# sampling_start_value, sampling_changing_rate, sampling_stop_iter; r_sampling_step_1/2,
# r_exp_alpha), in optimizer steps. Declared here only: the config's
# trainer.sampling_* keys take them from here.
START_VALUE = 1.0
CHANGING_RATE = 2e-5
STOP_STEP = 50000
REVERSE_STEPS = (25000, 50000)
REVERSE_ALPHA = 5000.0


def true_frame_probabilities(kind: str, iteration, steps: int, context_frames: int,
                             start_value=START_VALUE, changing_rate=CHANGING_RATE,
                             stop_step=STOP_STEP, reverse_steps=REVERSE_STEPS,
                             reverse_alpha=REVERSE_ALPHA):
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

    def __init__(self, kind, context_frames, start_value=START_VALUE,
                 changing_rate=CHANGING_RATE, stop_step=STOP_STEP, reverse_steps=REVERSE_STEPS,
                 reverse_alpha=REVERSE_ALPHA, seed=None, **kwargs):
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

