"""The private Keras APIs framepred relies on, each where Keras offers no public one.

Keras may rename or drop any of these in a release without notice, so they are
used here only, each with the reason, and `tests/test_keras_internals.py` checks
that each still does what framepred needs: a Keras upgrade that changes one fails
there, naming it, instead of somewhere deep in a training run. Keras only, no
TensorFlow: `models` and `metrics` import this module too.

One more use cannot live here: `framepred.callbacks.checkpoints.Backup` subclasses
Keras' `BackupAndRestore` and overrides its private `_save_model` hook (reading its
`_current_epoch`), to make every save atomic; the same test file holds Keras to it.
"""

from __future__ import annotations

import keras


def run_through_graph(model: keras.Model, inputs: list, operation_fn):
    """`model`'s layer graph replayed over new `inputs`, each layer passed through
    `operation_fn(layer) -> callable` first: what a functional model's `call` runs.

    The rollout's step model (`framepred.models.rollout.step_model`) replays a
    trained model with its ConvLSTM layers also taking and returning their states,
    every weight shared. Keras' public functional API cannot swap how one layer is
    called while cloning nothing (`keras.models.clone_model` makes new weights
    unless each layer is returned as it is, and cannot add the state inputs).
    """
    return model._run_through_graph(inputs, operation_fn=operation_fn)


def set_higher_is_better(metric: keras.metrics.Metric) -> None:
    """Tells Keras' monitoring callbacks (`EarlyStopping`, `ModelCheckpoint`,
    `ReduceLROnPlateau`) in `mode="auto"` that a larger value of `metric` is better.

    Keras' own metrics say so with the private `_direction` (accuracy, AUC); there
    is no public way, and without it `mode="auto"` minimizes SSIM and PSNR.
    """
    metric._direction = "up"


def set_initial_epoch(model: keras.Model, epoch: int) -> None:
    """Makes the running `fit` start at `epoch`, from a callback's `on_train_begin`.

    A resumed run learns its epoch only when its backup is read, inside `fit`;
    Keras' own `BackupAndRestore` resumes the same way, as `fit`'s public
    `initial_epoch` is fixed before any callback runs.
    """
    model._initial_epoch = epoch


def summary_writers(callback: keras.callbacks.Callback) -> list:
    """The open event writers of Keras' `TensorBoard` callback (and of framepred's
    callbacks, which keep theirs under the same name), to flush before a backup.

    Keras' `TensorBoard` opens its writers lazily into `_writers` and has no public
    flush; a backup taken while they hold unwritten events would resume with
    TensorBoard steps missing.
    """
    return list(getattr(callback, "_writers", {}).values())
