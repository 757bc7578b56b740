"""Devices, precision, compilation and distribution for a run."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    strategy: Any
    jit_compile: bool
    precision: str
    device: str

    @property
    def replicas(self) -> int:
        return int(self.strategy.num_replicas_in_sync)


def _value(option) -> str:
    return str(getattr(option, "value", option))


def describe_devices() -> str:
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        return f"{len(gpus)} GPU ({', '.join(d.name for d in gpus)})"
    return f"CPU ({len(tf.config.list_logical_devices('CPU'))} logical device(s))"


def resolve_jit(option: Any) -> bool:
    """auto -> XLA on GPUs only: on our 2-core CPU XLA made a small ConvLSTM ~30x slower."""
    choice = str(option).lower()
    if choice == "auto":
        return bool(tf.config.list_physical_devices("GPU"))
    return choice == "true"


def configure(trainer: Any) -> Runtime:
    """Seeds, logical devices, the precision policy and the distribution strategy."""
    if trainer.virtual_cpu_devices:
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * int(trainer.virtual_cpu_devices)
            )
        except RuntimeError:
            # Devices are fixed once TensorFlow initializes them (a second run in the
            # same process); keep what is there.
            log.warning("virtual CPU devices already initialized; keeping %s",
                        tf.config.list_logical_devices("CPU"))
    keras.utils.set_random_seed(int(trainer.seed))
    precision = _value(trainer.precision)
    keras.mixed_precision.set_global_policy(precision)
    if _value(trainer.distribution) == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        strategy = tf.distribute.MirroredStrategy(devices)
    else:
        strategy = tf.distribute.get_strategy()
    return Runtime(strategy=strategy, jit_compile=resolve_jit(trainer.jit_compile),
                   precision=precision, device=describe_devices())
