"""Motion-head models whose motion is known, without training: an untrained flow head
(zero kernel) whose motion layer's bias is set so that every pixel pans alike."""

from __future__ import annotations

import numpy as np

# The motion the panning models make, (dy, dx) pixels a step, and their radius: half of
# it to the right, so the motion colour is red at half strength.
PAN, RADIUS = (0.0, 2.0), 4
HEAD = ["model.head=flow", "model.forecaster_input=forecast", f"model.motion_radius={RADIUS}"]


def panning_model(cfg, pan=PAN):
    """The model `cfg` (model.head=flow) builds, started as training starts it, with
    every pixel's flow `pan` (dy, dx) in pixels at every step: the flow head's
    displacement is R * tanh(logits) (framepred.models.heads.shift_weights)."""
    from framepred import models

    model = models.build_model(cfg.model, cfg.data)
    models.init_head(model, level=0.5)
    motion = model.get_layer("motion")
    kernel, bias = motion.get_weights()  # kernel zero: the bias alone is the motion
    bias[:] = np.arctanh(np.asarray(pan, np.float32) / int(cfg.model.motion_radius))
    motion.set_weights([kernel, bias])
    return model
