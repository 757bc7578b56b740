"""Facts the numerics choose their formulation by: the Keras backend and its device.

XLA's CPU compiler handles some operations far worse than TensorFlow's kernels do
(convolution gradients above all: the kernel gradient of a convolution inside a
`lax.scan` runs about 25x slower than outside one on the 2-core CPU, see
docs/performance.md), so `ssim` and `models` take other, equal formulations there.
"""

from __future__ import annotations

from keras import backend as keras_backend
from keras import distribution as keras_distribution


def on_jax() -> bool:
    """True under Keras' JAX backend."""
    return keras_backend.backend() == "jax"


def jax_on_cpu() -> bool:
    """True under JAX where it computes on a CPU (its first device is one)."""
    return on_jax() and keras_distribution.list_devices()[0].startswith("cpu")
