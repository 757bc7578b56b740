"""Devices, precision, compilation and distribution for a run.

`configure(cfg.trainer)` is the one place a run touches process-wide TensorFlow and
Keras state: logical devices, seeds, the global dtype policy, the strategy.

- `trainer.virtual_cpu_devices=N` splits the CPU into N logical devices, so a
  `trainer.distribution=mirrored` run has N replicas without a GPU (the tests use
  N=2). TensorFlow fixes its devices the first time it uses them, so this only
  takes effect in a fresh process, before anything has run on a device; a later
  run in the same process (a sweep) may keep the same N, and a different N is a
  user error (FramepredError), never a silent single-device run.
- `trainer.precision`: float32, mixed_float16 or mixed_bfloat16, as Keras' global
  dtype policy. Under mixed_float16 `Model.compile` wraps the optimizer in
  `LossScaleOptimizer` (dynamic loss scaling; keras/src/trainers/trainer.py,
  `auto_scale_loss=True`). The model's head and the losses stay float32.
- `trainer.jit_compile`: auto = XLA on GPUs only. On the 2-core CPU sandbox XLA
  trained the default model 13x slower than TensorFlow's own kernels (63.9 -> 4.8
  frames/s, scripts/bench_train.py, docs/performance.md), while on GPUs it fuses
  the ConvLSTM gate math.
- `trainer.distribution=mirrored`: `tf.distribute.MirroredStrategy` over every
  local GPU (or every logical CPU device when there is no GPU). The data pipeline
  batches with the global batch = per-replica batch x replicas. Several hosts:
  Keras 3 `model.fit` fails under `MultiWorkerMirroredStrategy`
  (keras-team/keras#20585); use the JAX backend's `keras.distribution` instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf

from framepred.errors import FramepredError

log = logging.getLogger(__name__)

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


@dataclass
class Setup:
    strategy: Any
    jit_compile: bool
    precision: str
    device: str

    @property
    def replicas(self) -> int:
        return int(self.strategy.num_replicas_in_sync)

    def global_batch(self, per_replica: int) -> int:
        return int(per_replica) * self.replicas


def describe_devices() -> str:
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        names = []
        for gpu in tf.config.list_physical_devices("GPU"):
            details = tf.config.experimental.get_device_details(gpu)
            names.append(details.get("device_name", gpu.name))
        return f"{len(gpus)} GPU ({', '.join(sorted(set(names)))})"
    return f"CPU ({len(tf.config.list_logical_devices('CPU'))} logical device(s))"


def resolve_jit(option: Any) -> bool:
    """auto -> XLA on GPUs only (measured on the CPU: 13x slower for our default model)."""
    choice = str(option).lower()
    if choice == "auto":
        return bool(tf.config.list_physical_devices("GPU"))
    return choice == "true"


def split_cpu(count: int) -> None:
    """Splits the first CPU into `count` logical devices; must run before TF uses them."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )
    except RuntimeError:
        # TensorFlow has initialized its devices (an earlier run in this process).
        present = len(tf.config.list_logical_devices("CPU"))
        if present != count:
            raise FramepredError(
                f"trainer.virtual_cpu_devices={count} cannot take effect: TensorFlow already "
                f"initialized {present} CPU device(s) in this process. Start a fresh process "
                "(python -m framepred.train ...) with the same value for every run in it"
            ) from None


def build_strategy(distribution: str):
    if distribution != "mirrored":
        return tf.distribute.get_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    if len(devices) == 1:
        log.warning("trainer.distribution=mirrored found one device (%s): one replica",
                    devices[0])
    return tf.distribute.MirroredStrategy(devices)


def configure(trainer: Any) -> Setup:
    """Logical devices, seeds, the precision policy and the distribution strategy."""
    if trainer.virtual_cpu_devices:
        split_cpu(int(trainer.virtual_cpu_devices))
    keras.utils.set_random_seed(int(trainer.seed))
    precision = str(trainer.precision)
    keras.mixed_precision.set_global_policy(precision)
    strategy = build_strategy(str(trainer.distribution))
    return Setup(strategy=strategy, jit_compile=resolve_jit(trainer.jit_compile),
                   precision=precision, device=describe_devices())
