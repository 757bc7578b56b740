"""Heads: forecaster features -> frames."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

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
    head = model.get_layer("head")
    activation = model.get_layer("forecast").get_config()["activation"]
    kernel, bias = head.get_weights()  # kernel [1, 1, 1, features, p*p*C]
    if has_layer(model, "copy_last"):
        kernel[:] = 0.0
        bias[:] = 0.0
    else:
        level = float(np.clip(level, COPY_EPSILON, 1.0 - COPY_EPSILON))
        bias[:] = float(inverse_activation(np.float32(level), activation))
    head.set_weights([kernel, bias])


