"""The two causal forms, built from a config: next_frame and encoder_forecaster."""

from __future__ import annotations

import keras
from keras import layers

from framepred.models.convlstm import ConvLSTM
from framepred.models.heads import MotionHead, residual_head
from framepred.models.layers import (
    DepthToSpace,
    ForecastQueries,
    FrameAt,
    InverseActivation,
    RepeatLast,
    SpaceToDepth,
    norm_layer,
)


def build_next_frame(
    frame_size, channels, *, filters, kernel_size, patch_size, normalization,
    output_activation, skip, head="residual", motion_radius=5, warp="backward",
) -> keras.Model:
    """Stacked ConvLSTMs; output t is the forecast of frame t+1. Any sequence length.

    The motion head moves frame t itself, by the motion the ConvLSTM reads up to t."""
    height, width = frame_size
    frames = keras.Input((None, height, width, channels), name="frames")
    x = patches = SpaceToDepth(patch_size, name="to_patches")(frames)
    for i, (width_i, kernel) in enumerate(zip(filters, kernel_size)):
        # The final states are unused here; `step_model` reads them to roll out one
        # frame per step instead of re-reading the whole buffer.
        x, _, _ = ConvLSTM(width_i, kernel, padding="same", return_sequences=True,
                           return_state=True, name=f"convlstm_{i}")(x)
        norm = norm_layer(normalization, width_i, f"norm_{i}")
        x = norm(x) if norm is not None else x
    if skip:
        # Output t also sees frame t itself: the head adds its projection to that frame
        # (copy-last), and the projection reads the raw frame beside the ConvLSTM
        # features; still causal.
        x = layers.Concatenate(axis=-1, name="skip")([x, patches])
    if head != "residual":
        forecast = _motion_head(channels, patch_size, output_activation, head,
                                motion_radius, warp)(x, frames)
    else:
        forecast = residual_head(x, channels, patch_size, output_activation,
                                 last=patches if skip else None)
    return keras.Model(frames, forecast, name="next_frame_convlstm")


def build_encoder_forecaster(
    frame_size, channels, context_frames, future_frames, *, filters, kernel_size,
    patch_size, normalization, output_activation, skip, head="residual", motion_radius=5,
    forecaster_input="zeros", warp="backward",
) -> keras.Model:
    """Encoder ConvLSTMs read the context; their states start the forecaster's.

    With `forecaster_input="forecast"` the forecaster reads, at each step, the frame
    it forecast one step earlier (the last context frame first), patched, as Finn et
    al. 2016's and De Brabandere et al. 2016's networks read their previous frame: it
    sees where things are now, not only what its state remembers. With "zeros" it reads
    nothing (Shi et al. 2015) and unrolls from the encoder's states alone.
    """
    height, width = frame_size
    context = keras.Input((context_frames, height, width, channels), name="context")
    to_patches = SpaceToDepth(patch_size, name="to_patches")
    x = patches = to_patches(context)
    states = []
    for i, (width_i, kernel) in enumerate(zip(filters, kernel_size)):
        x, h, c = ConvLSTM(width_i, kernel, padding="same", return_sequences=True,
                           return_state=True, name=f"encoder_{i}")(x)
        states.append([h, c])
        norm = norm_layer(normalization, width_i, f"encoder_norm_{i}")
        x = norm(x) if norm is not None else x
    forecasters = [
        (ConvLSTM(width_i, kernel, padding="same", return_sequences=True,
                  return_state=forecaster_input == "forecast", name=f"forecaster_{i}"),
         norm_layer(normalization, width_i, f"forecaster_norm_{i}"))
        for i, (width_i, kernel) in enumerate(zip(filters, kernel_size))]
    if head == "residual" and forecaster_input == "zeros":
        return _shi_forecaster(context, patches, states, forecasters, channels, patch_size,
                               output_activation, skip, future_frames)

    if forecaster_input == "zeros":  # every step's features at once, then one head a step
        unrolled = _forecast_from_zeros(patches, forecasters, states, future_frames)
    step_head = (_motion_head(channels, patch_size, output_activation, head, motion_radius,
                              warp)
                 if head != "residual"
                 else _ResidualStep(channels, patch_size, output_activation, skip))
    # float32 under mixed precision too: the frame that gets moved is copied exactly.
    previous = RepeatLast(1, name="last_context", dtype="float32")(context)  # [B, 1, H, W, C]
    forecasts = []
    for t in range(future_frames):
        seen = to_patches(previous)  # [B, 1, h, w, p*p*C]
        if forecaster_input == "forecast":
            y, outputs = seen, []
            for i, (forecaster, norm) in enumerate(forecasters):
                y, *states[i] = forecaster(y, initial_state=states[i])
                y = norm(y) if norm is not None else y
                outputs.append(y)
        else:
            outputs = [FrameAt(t, name=f"step_{t}_{i}")(y) for i, y in enumerate(unrolled)]
        features = layers.Concatenate(axis=-1, name=f"features_{t}")([*outputs, seen])
        previous = step_head(features, previous, name=f"move_{t}")
        forecasts.append(previous)
    forecast = layers.Concatenate(axis=1, name="forecasts", dtype="float32")(forecasts)
    return keras.Model(context, forecast, name="encoder_forecaster_convlstm")


def _shi_forecaster(context, patches, states, forecasters, channels, patch_size,
                    output_activation, skip, future_frames) -> keras.Model:
    """The residual head on a forecaster that reads zeros: every step at once (the
    layout of checkpoints saved before the motion head, kept layer for layer)."""
    outputs = _forecast_from_zeros(patches, forecasters, states, future_frames)
    # Shi et al. 2015 concatenate every forecaster layer's states for the prediction.
    if skip:
        # Every forecast step also sees the last context frame: the head adds its
        # projection to it (copy-last), and the forecaster learns the motion on top.
        last = RepeatLast(future_frames, name="skip")(patches)
        outputs.append(last)
    features = outputs[0] if len(outputs) == 1 else layers.Concatenate(axis=-1)(outputs)
    forecast = residual_head(features, channels, patch_size, output_activation,
                             last=last if skip else None)
    return keras.Model(context, forecast, name="encoder_forecaster_convlstm")


def _forecast_from_zeros(patches, forecasters, states, future_frames) -> list:
    """Shi et al.'s forecaster: every layer unrolls all future steps at once from its
    encoder's states, reading zeros; each layer's outputs [B, Tf, h, w, filters]."""
    y, outputs = ForecastQueries(future_frames, name="queries")(patches), []
    for (forecaster, norm), state in zip(forecasters, states):
        y = forecaster(y, initial_state=state)
        y = norm(y) if norm is not None else y
        outputs.append(y)
    return outputs


def _motion_head(channels, patch_size, activation, head, radius, warp) -> MotionHead:
    return MotionHead(channels, patch_size, activation, "kernel" if head == "motion" else "flow",
                      radius, warp)


class _ResidualStep:
    """The residual head, one forecast step at a time: a correction of the previous
    forecast (the last context frame first), in the activation's input space; without
    the skip, the projection alone."""

    def __init__(self, channels, patch_size, activation, skip):
        self.projection = layers.Conv3D(channels * patch_size * patch_size, kernel_size=1,
                                        name="head", dtype="float32")
        self.to_frames = DepthToSpace(patch_size, name="to_frames", dtype="float32")
        self.inverse = (InverseActivation(activation, name="copy_last", dtype="float32")
                        if skip else None)
        self.add = layers.Add(name="residual", dtype="float32")
        self.activation = layers.Activation(activation, name="forecast", dtype="float32")

    def __call__(self, features, frames, name=None):
        head_input = self.to_frames(self.projection(features))
        if self.inverse is not None:
            head_input = self.add([self.inverse(frames), head_input])
        return self.activation(head_input)


def build_model(model_cfg, data_cfg) -> keras.Model:
    """The model a config asks for. Every option comes from the config, whose schema
    (`framepred.config.ModelConfig`) holds the defaults."""
    form = model_cfg.form
    if str(model_cfg.head) != "residual" and not model_cfg.skip:
        # framepred.config.validate says so in one line for the commands.
        raise ValueError(f"model.head={model_cfg.head} moves the latest frame; it needs "
                         "model.skip=true")
    options = dict(
        frame_size=tuple(data_cfg.frame_size),
        channels=int(data_cfg.channels),
        filters=tuple(model_cfg.filters),
        kernel_size=tuple(model_cfg.kernel_size),
        patch_size=int(model_cfg.patch_size),
        normalization=str(model_cfg.normalization),
        output_activation=str(model_cfg.output_activation),
        skip=bool(model_cfg.skip),
        head=str(model_cfg.head),
        motion_radius=int(model_cfg.motion_radius),
        warp=str(model_cfg.warp),
    )
    if form == "next_frame":
        return build_next_frame(**options)
    return build_encoder_forecaster(
        context_frames=int(data_cfg.context_frames),
        future_frames=int(data_cfg.future_frames),
        forecaster_input=str(model_cfg.forecaster_input),
        **options,
    )
