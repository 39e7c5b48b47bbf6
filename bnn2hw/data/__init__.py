# SPDX-License-Identifier: MIT
"""Data sets as 8-bit integer arrays, the form every bnn2hw stage consumes.

* ``digits`` (the built-in default): scikit-learn's bundled 8x8 digits, pixel values 0..16
  mapped to 0..255 by ``round(p * 255 / 16)``, fixed stratified 75/25 split (``random_state=0``).
* ``path/to/data.npz``: arrays ``x`` (N, ...) and ``y`` (N,), optionally ``x_test``/``y_test``;
  ``x`` either uint8 (used as is) or float in [0, 1] (mapped by ``round(x * 255)``). Image data
  is ``(N, C, H, W)`` or ``(N, H, W)``; channels-last ``(N, H, W, C)`` is accepted only when
  the file says so with a string array ``layout`` = ``"NHWC"`` (``"NCHW"`` is the default), and
  refused when it looks channels-last without it. Rank-2 ``x`` is a flat feature vector.
  Without a test split, a stratified 25% is held out with ``random_state=0``.
* ``path/to/folder``: torchvision ``ImageFolder`` layout (``folder/<class>/<image>``); images
  are read with Pillow as grayscale (``--channels 3`` for RGB), at their own size (all must share
  one square size) or resized to ``--image-size``. A folder with exactly ``train/`` and
  ``test/`` subfolders (each ``<class>/<image>``, e.g. CIFAR-10 exported to PNGs) gives the two
  splits; otherwise a stratified 25% is held out with ``random_state=0``.

Labels must be the integers ``0..K-1`` with every class present in the training split, K >= 2,
and at least two samples per class (the stratified split needs them); anything else is refused
with the offending labels named. The options that shape the data (image size, channels) are
recorded in the checkpoint (:meth:`Dataset.load_options`) and the path is made absolute
(:func:`describe_source`), so ``export``/``emit-c`` reload exactly the same data from anywhere.
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
    options: dict | None = None  # the loader options that produced it (image size, channels)

    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def load_options(self) -> dict:
        """What ``load_dataset`` needs besides the path to reproduce this data set."""
        return dict(self.options or {})


def describe_source(name: str) -> str:
    """``digits``, or the absolute path of a user's data set (checkpoints record this)."""
    return name if name == "digits" else str(Path(name).resolve())


def check_labels(where: str, y_train: np.ndarray, y_test: np.ndarray | None = None) -> int:
    """Labels must be 0..K-1, K >= 2, every class in the training split; returns K."""
    if y_train.size == 0:
        raise Bnn2hwError(f"{where}: no samples")
    present = np.unique(y_train)
    k = int(present.max()) + 1
    if y_test is not None and y_test.size:
        k = max(k, int(y_test.max()) + 1)
    if len(present) < 2:
        raise Bnn2hwError(f"{where}: only one class ({int(present[0])}); a classifier needs at least two")
    missing = sorted(set(range(k)) - set(int(v) for v in present))
    if missing:
        shown = ", ".join(map(str, missing[:5])) + (f" ... ({len(missing)} in all)" if len(missing) > 5 else "")
        raise Bnn2hwError(f"{where}: labels must be 0..K-1 with every class present in the training "
                          f"data; labels run to {k - 1} but {shown} never occur (renumber them)")
    return k


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


def _image_shape(x: np.ndarray, layout: str, where: str) -> np.ndarray:
    """(N, H, W) -> (N, 1, H, W); NHWC -> NCHW when declared; refuse an undeclared NHWC look."""
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        if layout == "NHWC":
            return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        if x.shape[3] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
            raise Bnn2hwError(f"{where}: x has shape {list(x.shape)}, which looks channels-last "
                              f"(N, H, W, C); bnn2hw reads (N, C, H, W). Store x.transpose(0, 3, 1, 2), "
                              "or add layout='NHWC' to the .npz")
    if x.ndim > 4:
        raise Bnn2hwError(f"{where}: x has {x.ndim} dimensions; expected (N, F), (N, H, W) or (N, C, H, W)")
    return x


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
    layout = str(arrays["layout"]) if "layout" in arrays else "NCHW"
    if layout not in ("NCHW", "NHWC"):
        raise Bnn2hwError(f"{path}: layout must be 'NCHW' or 'NHWC', got {layout!r}")

    def check(xk: str, yk: str):
        x, y = arrays[xk], arrays[yk]
        if y.ndim != 1:
            raise Bnn2hwError(f"{path}: {yk!r} must be 1-D labels, got shape {y.shape}")
        if x.ndim < 2 or x.shape[0] != y.shape[0]:
            raise Bnn2hwError(f"{path}: {xk!r} has shape {x.shape} but {yk!r} has shape "
                              f"{y.shape}; need x (N, ...) with one label per row")
        if x.shape[0] == 0 or 0 in x.shape[1:]:
            raise Bnn2hwError(f"{path}: {xk!r} has shape {list(x.shape)}: no samples or empty rows")
        if not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0):
            raise Bnn2hwError(f"{path}: {yk!r} must hold non-negative integer class labels")
        return _image_shape(_to_uint8(x, f"{path}:{xk}"), layout, f"{path}:{xk}"), y.astype(np.int64)

    x, y = check("x", "y")
    if "x_test" in arrays and "y_test" in arrays:
        x_te, y_te = check("x_test", "y_test")
        if x_te.shape[1:] != x.shape[1:]:
            raise Bnn2hwError(f"{path}: x_test rows have shape {x_te.shape[1:]}, x rows {x.shape[1:]}")
        x_tr, y_tr = x, y
    else:
        check_labels(str(path), y)
        _check_splittable(str(path), y)
        x_tr, x_te, y_tr, y_te = _split(x, y)
    num_classes = check_labels(str(path), y_tr, y_te)
    return Dataset(path.stem, x_tr, y_tr, x_te, y_te, num_classes)


def _check_splittable(where: str, y: np.ndarray) -> None:
    labels, counts = np.unique(y, return_counts=True)
    few = [int(lab) for lab, c in zip(labels, counts) if c < 2]
    if few:
        raise Bnn2hwError(f"{where}: class(es) {few[:5]} have a single sample; the stratified "
                          "train/test split needs at least two per class (or give x_test/y_test)")


def _read_class_folders(path: Path, image_size: int | None, channels: int,
                        classes: list[str] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images of ``path/<class>/*`` as (N, C, H, W) uint8 and labels (class folders sorted)."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise Bnn2hwError("reading an image folder needs Pillow: pip install pillow") from None
    found = sorted(p.name for p in path.iterdir() if p.is_dir())
    if classes is not None and found != classes:
        raise Bnn2hwError(f"{path}: class folders {found[:5]} differ from the training split's "
                          f"{classes[:5]}")
    classes = found
    if not classes:
        raise Bnn2hwError(f"{path}: no class subfolders (expected {path}/<class>/<image>)")
    if len(classes) < 2:
        raise Bnn2hwError(f"{path}: only one class folder ({classes[0]}); a classifier needs at least two")
    files = {cls: [f for f in sorted((path / cls).iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
             for cls in classes}
    empty = [cls for cls, fs in files.items() if not fs]
    if empty:
        raise Bnn2hwError(f"{path}: class folder(s) {', '.join(empty)} hold no images "
                          f"({', '.join(sorted(IMAGE_SUFFIXES))})")
    xs, ys, sizes = [], [], set()
    mode = "L" if channels == 1 else "RGB"
    for label, cls in enumerate(classes):
        for img in files[cls]:
            try:
                with Image.open(img) as im:
                    im = im.convert(mode)
                    sizes.add(im.size)
                    if image_size is not None:
                        im = im.resize((image_size, image_size))
                    elif len(sizes) > 1:
                        raise Bnn2hwError(f"{path}: images have different sizes ({sorted(sizes)[:3]}, ...); "
                                          "pass --image-size to resize them all")
                    arr = np.asarray(im, dtype=np.uint8)
            except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as e:
                raise Bnn2hwError(f"{img}: not a readable image ({e})") from None
            xs.append(arr[None] if channels == 1 else arr.transpose(2, 0, 1))
            ys.append(label)
    if image_size is None:
        (w, h), = sizes
        if w != h:
            raise Bnn2hwError(f"{path}: images are {w}x{h}, not square; pass --image-size N to resize")
    return np.stack(xs), np.array(ys, dtype=np.int64), classes


def load_image_folder(path: Path, image_size: int | None = None, channels: int = 1) -> Dataset:
    """torchvision-style folder of class subfolders, read with Pillow (see module doc). A folder
    holding exactly ``train/`` and ``test/`` (each with the same class subfolders, the usual
    CIFAR-10 export) uses them as the two splits instead of a random 25% test split."""
    subdirs = sorted(p.name for p in path.iterdir() if p.is_dir())
    if subdirs == ["test", "train"]:
        x_tr, y_tr, classes = _read_class_folders(path / "train", image_size, channels)
        size = image_size if image_size is not None else int(x_tr.shape[-1])
        x_te, y_te, _ = _read_class_folders(path / "test", size, channels, classes)
        opts = {"image_size": int(x_tr.shape[-1]), "channels": channels}
        return Dataset(path.name, x_tr, y_tr, x_te, y_te, len(classes), opts)
    x, y, classes = _read_class_folders(path, image_size, channels)
    _check_splittable(str(path), y)
    x_tr, x_te, y_tr, y_te = _split(x, y)
    opts = {"image_size": int(x.shape[-1]), "channels": channels}
    return Dataset(path.name, x_tr, y_tr, x_te, y_te, len(classes), opts)


def load_dataset(name: str, image_size: int | None = None, channels: int = 1) -> Dataset:
    """``digits``, a ``.npz`` file or an image folder; errors name the path and the problem.
    ``image_size`` and ``channels`` apply to image folders only."""
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
