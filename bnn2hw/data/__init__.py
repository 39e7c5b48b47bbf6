# SPDX-License-Identifier: MIT
"""Data sets as 8-bit integer arrays, the form every bnn2hw stage consumes.

* ``digits`` (the built-in default): scikit-learn's bundled 8x8 digits, pixel values 0..16
  mapped to 0..255 by ``round(p * 255 / 16)``, fixed stratified 75/25 split (``random_state=0``).
* ``path/to/data.npz``: arrays ``x`` (N, ...) and ``y`` (N,), optionally ``x_test``/``y_test``;
  ``x`` either uint8 (used as is) or float in [0, 1] (mapped by ``round(x * 255)``). Image data
  is ``(N, C, H, W)`` or ``(N, H, W)``; anything else is treated as a flat feature vector.
  Without a test split, a stratified 25% is held out with ``random_state=0``.
* ``path/to/folder``: torchvision ``ImageFolder`` layout (``folder/<class>/<image>``); images
  are read with Pillow as grayscale (``--channels 3`` for RGB), resized to ``--image-size``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import Bnn2hwError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".ppm", ".tif", ".tiff"}


@dataclass
class Dataset:
    """uint8 inputs shaped (N, C, H, W) for images or (N, F), int64 labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def _split(x: np.ndarray, y: np.ndarray, test_size: float = 0.25):
    from sklearn.model_selection import train_test_split

    return train_test_split(x, y, test_size=test_size, stratify=y, random_state=0)


def load_digits() -> Dataset:
    """scikit-learn's 8x8 digits as (N, 1, 8, 8) uint8, fixed stratified split."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None, :, :]
    y = d.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = _split(x, y)
    return Dataset("digits", x_tr, y_tr, x_te, y_te, 10)


def _to_uint8(x: np.ndarray, where: str) -> np.ndarray:
    if x.dtype == np.uint8:
        return x
    if np.issubdtype(x.dtype, np.floating):
        if x.size and (np.nanmin(x) < 0 or np.nanmax(x) > 1 or np.isnan(x).any()):
            raise Bnn2hwError(f"{where}: float inputs must lie in [0, 1] (or pass uint8 pixels)")
        return np.rint(x * 255.0).astype(np.uint8)
    if np.issubdtype(x.dtype, np.integer):
        if x.size and (x.min() < 0 or x.max() > 255):
            raise Bnn2hwError(f"{where}: integer inputs must lie in 0..255")
        return x.astype(np.uint8)
    raise Bnn2hwError(f"{where}: unsupported input dtype {x.dtype}")


def _image_shape(x: np.ndarray) -> np.ndarray:
    return x[:, None] if x.ndim == 3 else x


def load_npz(path: Path) -> Dataset:
    """A user's ``.npz``: ``x``, ``y`` and optional ``x_test``, ``y_test`` (see module doc)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as e:  # zip errors, pickled object arrays, truncated files
        raise Bnn2hwError(f"{path}: not a readable .npz file ({e})") from None
    for key in ("x", "y"):
        if key not in arrays:
            raise Bnn2hwError(f"{path}: missing array {key!r} (found: {sorted(arrays)})")

    def check(xk: str, yk: str):
        x, y = arrays[xk], arrays[yk]
        if y.ndim != 1:
            raise Bnn2hwError(f"{path}: {yk!r} must be 1-D labels, got shape {y.shape}")
        if x.ndim < 2 or x.shape[0] != y.shape[0]:
            raise Bnn2hwError(f"{path}: {xk!r} has shape {x.shape} but {yk!r} has shape "
                              f"{y.shape}; need x (N, ...) with one label per row")
        if not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0):
            raise Bnn2hwError(f"{path}: {yk!r} must hold non-negative integer class labels")
        return _image_shape(_to_uint8(x, f"{path}:{xk}")), y.astype(np.int64)

    x, y = check("x", "y")
    if "x_test" in arrays and "y_test" in arrays:
        x_te, y_te = check("x_test", "y_test")
        if x_te.shape[1:] != x.shape[1:]:
            raise Bnn2hwError(f"{path}: x_test rows have shape {x_te.shape[1:]}, x rows {x.shape[1:]}")
        x_tr, y_tr = x, y
    else:
        x_tr, x_te, y_tr, y_te = _split(x, y)
    num_classes = int(max(y_tr.max(), y_te.max())) + 1
    return Dataset(path.stem, x_tr, y_tr, x_te, y_te, num_classes)


def load_image_folder(path: Path, image_size: int = 8, channels: int = 1) -> Dataset:
    """torchvision-style folder of class subfolders, read with Pillow (see module doc)."""
    try:
        from PIL import Image
    except ImportError:
        raise Bnn2hwError("reading an image folder needs Pillow: pip install pillow") from None
    classes = sorted(p.name for p in path.iterdir() if p.is_dir())
    if not classes:
        raise Bnn2hwError(f"{path}: no class subfolders (expected {path}/<class>/<image>)")
    xs, ys = [], []
    mode = "L" if channels == 1 else "RGB"
    for label, cls in enumerate(classes):
        for img in sorted((path / cls).iterdir()):
            if img.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            with Image.open(img) as im:
                arr = np.asarray(im.convert(mode).resize((image_size, image_size)), dtype=np.uint8)
            xs.append(arr[None] if channels == 1 else arr.transpose(2, 0, 1))
            ys.append(label)
    if len(xs) < 2 * len(classes):
        raise Bnn2hwError(f"{path}: found {len(xs)} images for {len(classes)} classes; "
                          "need at least two per class")
    x_tr, x_te, y_tr, y_te = _split(np.stack(xs), np.array(ys, dtype=np.int64))
    return Dataset(path.name, x_tr, y_tr, x_te, y_te, len(classes))


def load_dataset(name: str, image_size: int = 8, channels: int = 1) -> Dataset:
    """``digits``, a ``.npz`` file or an image folder; errors name the path and the problem."""
    if name == "digits":
        return load_digits()
    path = Path(name)
    if not path.exists():
        raise Bnn2hwError(f"data set {name!r}: no such file or folder (or use the built-in 'digits')")
    if path.is_dir():
        return load_image_folder(path, image_size, channels)
    if path.suffix == ".npz":
        return load_npz(path)
    raise Bnn2hwError(f"{path}: data must be 'digits', a .npz file or an image folder")
