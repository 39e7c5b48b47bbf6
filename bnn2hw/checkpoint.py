# SPDX-License-Identifier: MIT
"""The bnn2hw checkpoint: one file every later command reads.

A checkpoint is a plain ``dict`` saved with ``torch.save`` and loaded with
``torch.load(path, weights_only=True)`` (no pickled code ever runs):

``format``      ``"bnn2hw-checkpoint"``
``version``     format version (1)
``spec``        the model spec (:func:`bnn2hw.nn.models.build_model` rebuilds the model);
                includes the surrogate name and w0, so the binarizer is known at export time
``state_dict``  the model's ``state_dict`` (latent real weights, BatchNorm statistics)
``meta``        training metadata: data set, input quantization (``{"dtype": "uint8",
                "raw_scale": ...}``), test accuracy, seed, epochs, learning rates, bnn2hw version
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from . import __version__
from .errors import Bnn2hwError
from .nn.models import build_model

FORMAT = "bnn2hw-checkpoint"
VERSION = 1


def save_checkpoint(path: str | Path, model: nn.Module, spec: dict, meta: dict) -> None:
    """Write atomically (temp file + rename): a crash never leaves a half-written checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, "spec": spec,
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
               "meta": {**meta, "bnn2hw_version": __version__}}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_checkpoint(path: str | Path) -> dict:
    """Load and validate a checkpoint dict; every problem names the file."""
    path = Path(path)
    if not path.is_file():
        raise Bnn2hwError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise Bnn2hwError(f"{path}: not a bnn2hw checkpoint (torch.load failed: {first})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise Bnn2hwError(f"{path}: not a bnn2hw checkpoint (no 'format: {FORMAT}' entry)")
    if ckpt.get("version") != VERSION:
        raise Bnn2hwError(f"{path}: checkpoint version {ckpt.get('version')} unsupported "
                          f"(this bnn2hw reads version {VERSION})")
    for key in ("spec", "state_dict", "meta"):
        if key not in ckpt:
            raise Bnn2hwError(f"{path}: checkpoint lacks {key!r}")
    return ckpt


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict]:
    """Rebuild the model in eval mode; returns ``(model, checkpoint_dict)``."""
    ckpt = read_checkpoint(path)
    model = build_model(ckpt["spec"])
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise Bnn2hwError(f"{path}: weights do not fit the model spec: {e}") from None
    model.eval()
    return model, ckpt
