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

The package, one file a job (as OpenSTL separates modules, models and methods):

- `layers`: the per-frame layers (patches, queries, normalization, copy-last);
- `convlstm`: the ConvLSTM layer and its matrix-product recurrence;
- `heads`: features -> frames: the residual head and the motion head;
- `builders`: the two forms, from a config;
- `sampling`: (reverse) scheduled sampling for next_frame;
- `rollout`: forecasting past the context, the state-carrying step model.
"""

from framepred.models.builders import build_encoder_forecaster, build_model, build_next_frame
from framepred.models.convlstm import ConvLSTM
from framepred.models.heads import init_head
from framepred.models.layers import (
    COPY_EPSILON,
    DepthToSpace,
    InverseActivation,
    SpaceToDepth,
    inverse_activation,
)
from framepred.models.rollout import STEP_MODEL, forecast, model_form, motion_fields, step_model
from framepred.models.sampling import (
    SampleTrueFrames,
    build_sampled_next_frame,
    true_frame_probabilities,
    with_sampling,
)

__all__ = [
    "COPY_EPSILON", "STEP_MODEL", "ConvLSTM", "DepthToSpace", "InverseActivation",
    "SampleTrueFrames", "SpaceToDepth", "build_encoder_forecaster", "build_model",
    "build_next_frame", "build_sampled_next_frame", "forecast", "init_head",
    "inverse_activation", "model_form", "motion_fields", "step_model", "true_frame_probabilities",
    "with_sampling",
]
