"""framepred: train ConvLSTM video-frame prediction models with Keras 3.

Importing the package registers its Keras objects (losses, metrics, layers), so
a checkpoint reloads with a plain `keras.models.load_model(path)`.
"""

import os

# TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) buries the progress bar.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from framepred import losses, metrics, models, optimizers  # noqa: E402  (registration)

__version__ = "0.1.0"
__all__ = ["losses", "metrics", "models", "optimizers", "__version__"]
