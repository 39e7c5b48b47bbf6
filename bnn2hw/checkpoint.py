# SPDX-License-Identifier: MIT
"""The bnn2hw checkpoint: one file every later command reads.

A checkpoint is a plain ``dict`` saved with ``torch.save`` and loaded with
``torch.load(path, weights_only=True)`` (no pickled code ever runs):

``format``      ``"bnn2hw-checkpoint"``
``version``     format version (1)
``spec``        the model spec (:func:`bnn2hw.nn.models.build_model` rebuilds the model);
                includes the surrogate name and w0, so the binarizer is known at export time
``state_dict``  the model's ``state_dict`` (latent real weights, BatchNorm statistics)
``resume``      (periodic checkpoints of ``train --save-every`` only) the state that
                ``train --resume`` continues from: see :mod:`bnn2hw.train`
``meta``        training metadata: data set, input quantization (``{"dtype": "uint8",
                "raw_scale": ...}``), test accuracy, seed, epochs, learning rates, bnn2hw version
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from . import __version__
from .errors import Bnn2hwError
from .nn.models import build_model
from .outdir import write_file_atomically

FORMAT = "bnn2hw-checkpoint"
VERSION = 1


def save_checkpoint(path: str | Path, model: nn.Module, spec: dict, meta: dict,
                    resume: dict | None = None) -> None:
    """Write atomically (temp file + rename): a crash or a signal never leaves a half-written
    checkpoint, and an existing directory or symlink at ``path`` is refused. ``resume``: the
    trainer's resumable state (periodic checkpoints)."""
    payload = {"format": FORMAT, "version": VERSION, "spec": spec,
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
               "meta": {**meta, "bnn2hw_version": __version__}}
    if resume is not None:
        payload["resume"] = resume
    write_file_atomically(Path(path), lambda tmp: torch.save(payload, tmp))


def _refuse_other_formats(path: Path) -> None:
    """Name the format of files that are clearly not a torch checkpoint (an ONNX model, an IR)."""
    with open(path, "rb") as f:
        head = f.read(4)
    if path.suffix == ".onnx" or (head[:1] == b"\x08" and path.suffix != ".pt"):
        raise Bnn2hwError(f"{path}: this is an ONNX file, not a bnn2hw checkpoint; export, emit-c, "
                          "inspect and summary import QONNX files (name them .onnx), this needs the .pt "
                          "checkpoint that `bnn2hw train` wrote")
    if path.name.endswith(".bnnir.npz"):
        raise Bnn2hwError(f"{path}: this is a bnn2hw IR file, not a checkpoint; `bnn2hw inspect` "
                          "reads it, export and emit-c need the .pt checkpoint")


def read_checkpoint(path: str | Path) -> dict:
    """Load and validate a checkpoint dict; every problem names the file."""
    path = Path(path)
    if not path.is_file():
        raise Bnn2hwError(f"{path}: no such checkpoint file")
    _refuse_other_formats(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "weights_only" in first or "Unpickler" in first:
            first = "it holds Python objects that a safe load refuses to run"
        raise Bnn2hwError(f"{path}: not a bnn2hw checkpoint (torch.load failed: {first})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise Bnn2hwError(f"{path}: not a bnn2hw checkpoint (no 'format: {FORMAT}' entry)")
    if ckpt.get("version") != VERSION:
        raise Bnn2hwError(f"{path}: checkpoint version {ckpt.get('version')} unsupported "
                          f"(this bnn2hw reads version {VERSION})")
    for key, kind in (("spec", dict), ("state_dict", dict), ("meta", dict)):
        if not isinstance(ckpt.get(key), kind):
            raise Bnn2hwError(f"{path}: checkpoint lacks {key!r} (or it is not a {kind.__name__})")
    return ckpt


def check_state_dict(path: Path, state: dict) -> None:
    """Every tensor finite, every BatchNorm variance non-negative; errors name the tensor."""
    for name, t in state.items():
        if not isinstance(t, torch.Tensor):
            raise Bnn2hwError(f"{path}: state_dict[{name!r}] is a {type(t).__name__}, not a tensor")
        if t.is_floating_point():
            bad = ~torch.isfinite(t)
            if bad.any():
                kinds = sorted({"NaN" if bool(v) else "Inf" for v in torch.isnan(t[bad]).tolist()})
                raise Bnn2hwError(f"{path}: tensor {name!r} holds {' and '.join(kinds)} "
                                  f"({int(bad.sum())} of {t.numel()} values); the model cannot "
                                  "be folded to integers")
            if name.endswith("running_var") and bool((t < 0).any()):
                raise Bnn2hwError(f"{path}: tensor {name!r} (a BatchNorm variance) has negative "
                                  f"values (min {float(t.min()):g})")


def _build_checked(path: Path, spec: dict, state: dict) -> nn.Module:
    """Build the model from ``spec`` only after checking, on PyTorch's meta device (no memory),
    that its tensors have exactly the checkpoint's names and shapes."""
    try:
        with torch.device("meta"):
            skeleton = build_model(spec)
    except Bnn2hwError as e:
        raise Bnn2hwError(f"{path}: bad model spec: {e}") from None
    except Exception as e:  # a malformed spec (wrong types, negative sizes)
        raise Bnn2hwError(f"{path}: bad model spec ({type(e).__name__}: {e})") from None
    want = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in state.items()}
    missing = sorted(set(want) - set(have))
    unexpected = sorted(set(have) - set(want))
    if missing or unexpected:
        raise Bnn2hwError(f"{path}: weights do not fit the model spec (missing: "
                          f"{missing[:4] or 'none'}; unexpected: {unexpected[:4] or 'none'})")
    for k in want:
        if want[k] != have[k]:
            raise Bnn2hwError(f"{path}: weights do not fit the model spec: tensor {k!r} has shape "
                              f"{list(have[k])} but the spec ({spec.get('arch')!r}) needs {list(want[k])}")
    return build_model(spec)


def load_checkpoint(path: str | Path, require_finite: bool = False) -> tuple[nn.Module, dict]:
    """Rebuild the model in eval mode; returns ``(model, checkpoint_dict)``. With
    ``require_finite`` (every export does), NaN/Inf tensors and negative BatchNorm variances are
    refused by name (:func:`check_state_dict`)."""
    path = Path(path)
    ckpt = read_checkpoint(path)
    if require_finite:
        check_state_dict(path, ckpt["state_dict"])
    model = _build_checked(path, ckpt["spec"], ckpt["state_dict"])
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise Bnn2hwError(f"{path}: weights do not fit the model spec: {e}") from None
    model.eval()
    if ckpt["spec"].get("normalize") and not ckpt["spec"].get("official_biper"):
        # (an imported official BiPer model keeps its Normalize: bnn2hw.export.fold_official folds it
        # into the int8 first conv and the uint8 padding)
        model = _fold_normalization(path, model, ckpt["spec"], strict=require_finite)
    return model, ckpt


def _fold_normalization(path: Path, model: nn.Module, spec: dict, strict: bool) -> nn.Module:
    """Fold the input normalization into the first BatchNorm (exportable models); a model that
    cannot fold keeps it, unless ``strict`` (every export), which refuses with the reason."""
    from .nn.normalize import FoldInputNormalization

    try:
        return FoldInputNormalization()(model, spec)
    except Bnn2hwError as e:
        if strict:
            raise Bnn2hwError(f"{path}: {e}") from None
        return model
