"""The optimizer a run trains with, and the learning-rate schedules Keras does not ship.

Keras only (no TensorFlow), so it runs under every backend.
"""

from __future__ import annotations

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="framepred")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """The one-cycle policy (Smith & Topin 2019), as PyTorch's `OneCycleLR` with
    cosine annealing, which OpenSTL's recipes use (`sched="onecycle"`).

    Formula:

    ```python
    initial = max_rate / div_factor
    final = initial / final_div_factor
    warmup = warmup_fraction * total_steps - 1  # steps from initial up to max_rate
    # step <= warmup: cosine from initial to max_rate; after: cosine down to final
    cosine(a, b, p) = b + (a - b) * (1 + cos(pi * p)) / 2
    ```

    Only the learning rate cycles; PyTorch's default also cycles Adam's beta_1, which
    Keras optimizers take as a constant.

    Args:
        max_rate: The peak learning rate (`trainer.learning_rate`).
        total_steps: Optimizer steps of the whole run.
        warmup_fraction: Share of the steps spent rising to `max_rate` (`pct_start`).
        div_factor: `max_rate / div_factor` is the first step's rate.
        final_div_factor: The last step's rate is the first's divided by this.
    """

    def __init__(self, max_rate, total_steps, warmup_fraction=0.3, div_factor=25.0,
                 final_div_factor=1e4, name="one_cycle"):
        self.max_rate = float(max_rate)
        self.total_steps = int(total_steps)
        self.warmup_fraction = float(warmup_fraction)
        self.div_factor = float(div_factor)
        self.final_div_factor = float(final_div_factor)
        self.name = name

    def __call__(self, step):
        initial = self.max_rate / self.div_factor
        final = initial / self.final_div_factor
        warmup = max(self.warmup_fraction * self.total_steps - 1.0, 1.0)
        decay = max(self.total_steps - 1.0 - warmup, 1.0)
        step = ops.cast(step, "float32")
        rising = ops.clip(step / warmup, 0.0, 1.0)
        falling = ops.clip((step - warmup) / decay, 0.0, 1.0)
        up = self.max_rate + (initial - self.max_rate) * (1.0 + ops.cos(math.pi * rising)) / 2.0
        down = final + (self.max_rate - final) * (1.0 + ops.cos(math.pi * falling)) / 2.0
        return ops.where(step <= warmup, up, down)

    def get_config(self):
        return {
            "max_rate": self.max_rate, "total_steps": self.total_steps,
            "warmup_fraction": self.warmup_fraction, "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor, "name": self.name,
        }


def build_optimizer(trainer, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """Adam or AdamW per `trainer.optimizer`, with `trainer.schedule` over the run's
    `trainer.epochs * steps_per_epoch` steps and `trainer.clipnorm`."""
    rate, total_steps = float(trainer.learning_rate), int(trainer.epochs) * steps_per_epoch
    if trainer.schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(rate, total_steps)
    elif trainer.schedule == "onecycle":
        rate = OneCycle(rate, total_steps, warmup_fraction=float(trainer.warmup_fraction))
    options = dict(learning_rate=rate, clipnorm=trainer.clipnorm)
    if trainer.optimizer == "adamw":
        return keras.optimizers.AdamW(weight_decay=float(trainer.weight_decay), **options)
    return keras.optimizers.Adam(**options)
