"""Causal ConvLSTM builders."""

from __future__ import annotations

import keras
from keras import layers

from framepred.models.convlstm import ConvLSTM
from framepred.models.heads import residual_head
from framepred.models.layers import (
    ForecastQueries,
    RepeatLast,
    SpaceToDepth,
    normalization_layer,
)


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
        norm = normalization_layer(normalization, width_i, f"norm_{i}")
        x = norm(x) if norm is not None else x
    if skip:
        # Output t also sees frame t itself: the head adds its projection to that frame
        # (copy-last), and the projection reads the raw frame beside the ConvLSTM
        # features; still causal.
        x = layers.Concatenate(axis=-1, name="skip")([x, patches])
    forecast = residual_head(x, channels, patch_size, output_activation, last=patches if skip else None)
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
        norm = normalization_layer(normalization, width_i, f"encoder_norm_{i}")
        x = norm(x) if norm is not None else x
    y, outputs = queries, []
    for i, (width_i, kernel) in enumerate(zip(filters, kernel_size)):
        y = ConvLSTM(width_i, kernel, padding="same", return_sequences=True,
                     name=f"forecaster_{i}")(y, initial_state=list(states[i]))
        norm = normalization_layer(normalization, width_i, f"forecaster_norm_{i}")
        y = norm(y) if norm is not None else y
        outputs.append(y)
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


