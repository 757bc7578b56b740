"""data=moving_mnist: real MNIST digits bouncing as in Srivastava et al. (2015).

`data.path` is Keras' `mnist.npz` (x_train, x_test), one IDX image file
(`train-images-idx3-ubyte[.gz]`), or a folder holding `mnist.npz` or the
original IDX files. The digits go to the same bouncing generator as Moving
Digits (`MovingDigits(glyphs=...)`), each 28x28 MNIST image scaled to a height
drawn from `data.digit_size` (28 = the benchmark's size).

Splits never share a digit image: training bounces the MNIST training digits;
validation the first half of the test digits, test the second half. With only
one set of images (one IDX file), it is divided by `data.val_fraction` and
`data.test_fraction` with a permutation drawn from `data.seed`.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from PIL import Image

from framepred.data.splits import split_counts
from framepred.errors import FramepredError

IDX_IMAGES = 0x00000803  # the IDX magic number of unsigned-byte, 3-axis data


def read_idx_images(file: Path) -> np.ndarray:
    """An IDX image file (LeCun et al.), optionally gzipped -> uint8 [N, rows, cols]."""
    opener = gzip.open if file.suffix == ".gz" else open
    try:
        with opener(file, "rb") as stream:
            raw = stream.read()
    except (OSError, EOFError) as error:
        raise FramepredError(f"cannot read {file}: {error}") from error
    if len(raw) < 16 or int.from_bytes(raw[:4], "big") != IDX_IMAGES:
        raise FramepredError(
            f"{file} is not an IDX image file (magic number 0x00000803 expected); give "
            "train-images-idx3-ubyte[.gz] or t10k-images-idx3-ubyte[.gz]"
        )
    count, rows, cols = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
    if len(raw) != 16 + count * rows * cols:
        raise FramepredError(
            f"{file} is truncated: its header announces {count} images of {rows}x{cols}, "
            f"but it holds {len(raw) - 16} bytes of pixels"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(count, rows, cols)


def _from_npz(file: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(file, allow_pickle=False) as arrays:
            images = {name: arrays[f"x_{name}"] for name in ("train", "test")
                      if f"x_{name}" in arrays.files}
    except (OSError, ValueError, EOFError) as error:
        raise FramepredError(f"cannot read {file} as mnist.npz: {error}") from error
    if not images:
        raise FramepredError(f"{file} holds no x_train or x_test array (Keras' mnist.npz layout)")
    return images


def load_digit_sets(path: Path) -> dict[str, np.ndarray]:
    """{"train": ..., "test": ...} or {"all": ...}: uint8 [N, 28, 28] digit images."""
    if path.is_dir():
        npz = path / "mnist.npz"
        if npz.is_file():
            return _from_npz(npz)
        sets = {}
        for name, prefix in (("train", "train-images"), ("test", "t10k-images")):
            found = sorted(path.glob(f"{prefix}*idx3-ubyte*"))
            if found:
                sets[name] = read_idx_images(found[0])
        if not sets:
            raise FramepredError(
                f"data.path={path} holds no MNIST images: expected mnist.npz or "
                "train-images-idx3-ubyte[.gz] / t10k-images-idx3-ubyte[.gz]"
            )
        return sets
    if path.suffix == ".npz":
        return _from_npz(path)
    return {"all": read_idx_images(path)}


def split_digits(sets: dict[str, np.ndarray], split: str, val_fraction: float,
                 test_fraction: float, seed: int) -> np.ndarray:
    """The digit images one split may use; no image is in two splits."""
    if "train" in sets and "test" in sets:
        if split == "train":
            return sets["train"]
        half = len(sets["test"]) // 2
        return sets["test"][:half] if split == "val" else sets["test"][half:]
    images = next(iter(sets.values()))
    n_val, n_test = split_counts(len(images), val_fraction, test_fraction)
    order = np.random.default_rng(seed).permutation(len(images))
    chosen = {"test": order[:n_test], "val": order[n_test:n_test + n_val],
              "train": order[n_test + n_val:]}[split]
    if len(chosen) == 0:
        raise FramepredError(
            f"the {split} split has no MNIST digit: {len(images)} images and "
            f"data.{split}_fraction=0; raise the fraction or give both training and test files"
        )
    return images[np.sort(chosen)]


class MnistGlyphs:
    """`glyphs(rng) -> float32 [h, w]` for MovingDigits: a random digit image, scaled."""

    def __init__(self, images: np.ndarray, digit_size: tuple[int, int]):
        self.images = images
        self.digit_size = (int(digit_size[0]), int(digit_size[1]))

    def __call__(self, rng: np.random.Generator) -> np.ndarray:
        image = self.images[int(rng.integers(len(self.images)))]
        height = int(rng.integers(self.digit_size[0], self.digit_size[1] + 1))
        if height != image.shape[0]:
            width = max(1, round(image.shape[1] * height / image.shape[0]))
            image = np.asarray(Image.fromarray(image).resize((width, height),
                                                             Image.Resampling.BILINEAR))
        return image.astype(np.float32) / 255.0
