"""The rollout."""

from __future__ import annotations

import weakref

import keras
import numpy as np
from keras import layers

from framepred import keras_internals
from framepred.models.heads import mean_displacement, move_layers
from framepred.models.layers import has_layer


def model_form(model: keras.Model) -> str:
    """"next_frame" for models that take any sequence length or hold a next_frame step
    (trained with scheduled sampling), else "encoder_forecaster"."""
    if model.inputs[0].shape[1] is None or has_layer(model, STEP_MODEL):
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
    if has_layer(model, STEP_MODEL):
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
    forecasts = keras_internals.run_through_graph(model, [frames], operation_fn=with_states)
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




def motion_fields(model: keras.Model, context, steps: int, forecasts=None):
    """The motion a motion-head model forecasts with: [B, steps, H, W, 2], the mean
    displacement (dy, dx) in pixels by which each pixel of forecast k arrived (the
    expected shift of its kernel, or its flow). None for models without one.

    `forecasts` [B, >= steps, H, W, C]: the model's own, when already made. The motion
    of a step depends on the frames before it, so it is read from the same inputs the
    rollout gave the model: the context and the forecasts so far.
    """
    found = _motion_graph(model)
    if found is None:
        return None
    logits_of, moves = found
    context = np.asarray(context, np.float32)
    if forecasts is None:
        forecasts = forecast(model, context, steps)
    forecasts = np.asarray(forecasts, np.float32)[:, :steps]
    if model_form(model) == "next_frame":
        # Output t moves frame t: forecast k moved frame context-1+k of this sequence.
        sequence = np.concatenate([context, forecasts[:, :-1]], axis=1)
        logits = _predict(logits_of, _with_zero_states(logits_of, sequence))
        logits = (logits[0] if isinstance(logits, list) else logits)[:, context.shape[1] - 1:]
    else:  # one Move a step; past the horizon the model restarts from its last frames
        trained_context, chunks = logits_of.inputs[0].shape[1], []
        for start in range(0, steps, len(moves)):
            history = np.concatenate([context, forecasts[:, :start]], axis=1)
            chunk = _predict(logits_of, history[:, -trained_context:])
            chunks.append(np.concatenate(chunk if isinstance(chunk, list) else [chunk], axis=1))
        logits = np.concatenate(chunks, axis=1)[:, :steps]
    move = moves[0]
    field = np.asarray(mean_displacement(logits, move.motion, move.radius))  # [B, T, h, w, 2]
    p = move.block_size
    return np.repeat(np.repeat(field, p, axis=2), p, axis=3)


_MOTION_GRAPHS = weakref.WeakKeyDictionary()  # model -> _motion_graph's answer, built once


def _motion_graph(model: keras.Model):
    """(a model from `model`'s inputs to its motion logits, the Move layers), or None.

    The logits are the second input of each Move layer's first call: in the model
    itself, or, for next_frame trained with scheduled sampling, in the step model it
    nests. Cached, as TensorBoard's images ask for it every epoch."""
    if model not in _MOTION_GRAPHS:
        _MOTION_GRAPHS[model] = _build_motion_graph(model)
    return _MOTION_GRAPHS[model]


def _build_motion_graph(model: keras.Model):
    graphs = [model] + ([model.get_layer(STEP_MODEL)] if has_layer(model, STEP_MODEL) else [])
    for graph in graphs:
        moves = move_layers(graph)
        if not moves:
            continue
        try:
            return keras.Model(graph.inputs, [move.input[1] for move in moves]), moves
        except ValueError:  # the layers' first call was in another graph
            continue
    return None


def _with_zero_states(graph: keras.Model, frames: np.ndarray):
    """frames alone, or frames and zero ConvLSTM states for a step model's inputs."""
    if len(graph.inputs) == 1:
        return frames
    return [frames] + [np.zeros((len(frames), *state.shape[1:]), np.float32)
                       for state in graph.inputs[1:]]
