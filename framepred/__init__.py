"""framepred: train ConvLSTM video-frame prediction models with Keras 3.

Importing the package registers its Keras objects (losses, metrics, layers), so
a checkpoint reloads with a plain `keras.models.load_model(path)`.
"""

from framepred.console import native_start_up

with native_start_up():  # Keras loads TensorFlow here: its start-up lines stay quiet
    import keras

    from framepred import losses, metrics, models, optimizers  # (registration)

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # CUDA is probed now, inside the filter

__version__ = "0.1.0"
__all__ = ["losses", "metrics", "models", "optimizers", "__version__"]
