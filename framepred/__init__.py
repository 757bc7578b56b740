"""framepred: train ConvLSTM video-frame prediction models with Keras 3.

Importing the package registers its Keras objects (losses, metrics, layers), so
a checkpoint reloads with a plain `keras.models.load_model(path)`. Where TensorFlow
is not installed and JAX is (and no backend is set), Keras runs on JAX.
"""

import importlib.util
import json
import os

from framepred.console import native_start_up


def _keras_json_backend() -> str:
    """The backend keras.json names (Keras writes "tensorflow" there by default)."""
    path = os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")),
                        "keras.json")
    try:
        with open(path) as config:
            return json.load(config).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


if ("KERAS_BACKEND" not in os.environ and _keras_json_backend() == "tensorflow"
        and importlib.util.find_spec("tensorflow") is None
        and importlib.util.find_spec("jax") is not None):
    # Keras defaults to TensorFlow; on a JAX machine without it (a JAX container, a
    # TPU VM) that default can only fail, so JAX it is.
    os.environ["KERAS_BACKEND"] = "jax"

with native_start_up():  # Keras loads TensorFlow here: its start-up lines stay quiet
    import keras

    from framepred import losses, metrics, models, optimizers  # (registration)

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # CUDA is probed now, inside the filter

__version__ = "0.1.0"
__all__ = ["losses", "metrics", "models", "optimizers", "__version__"]
