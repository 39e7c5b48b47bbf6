# SPDX-License-Identifier: MIT
"""Per-channel input normalization, and folding it into the first layer for export.

Convention: ``spec["normalize"] = {"mean": [m_c], "std": [s_c]}`` in the torchvision sense,
for pixels scaled to [0, 1]: the model sees ``(p / 255 - m_c) / s_c``. Every bnn2hw model
already multiplies its uint8 input ``p`` by 1/255 in its first layer, so the normalization runs
in pixel units before it: ``p' = (p - 255 m_c) / s_c`` (:class:`InputNormalization`, attached as
a forward pre-hook; it has no persistent tensors, so the state dict does not change).

Folding for export (the deployed model keeps taking uint8 pixels). Let ``L`` be the first layer
(affine: ``L(x) = A x + L(0)``) and ``o`` the image whose channel ``c`` is ``255 m_c``. When every
``s_c`` equals one ``s > 0`` and ``L`` has no zero padding (a padded border would be ``0`` in
normalized units, i.e. the pixel ``255 m_c``, not the pixel 0):

    L((p - o) / s) = (L(p) - L(o)) / s + L(0) = (L(p) - c) / s,     c = L(o) - s L(0).

The BatchNorm after ``L`` computes ``(y' - mu) / sqrt(var + eps)``; with ``y' = (y - c) / s``
that is ``(y - mu') / sqrt(var' + eps)`` for ``mu' = c + s mu`` and
``var' = s^2 (var + eps) - eps`` (refused if not positive). So the folded model has the same
first layer, a changed BatchNorm and no normalization: exact in real arithmetic. Per-channel
different ``s_c`` would scale the +-1 weights of each input channel differently, which binary
(and per-tensor int8) weights cannot represent; such checkpoints, and padded first convs, are
refused at export with a message (:class:`FoldInputNormalization`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import Bnn2hwError


class InputNormalization(nn.Module):
    """``p -> (p - 255 mean_c) / std_c`` on dim 1 (pixel units; no persistent state)."""

    def __init__(self, mean: list[float], std: list[float]):
        super().__init__()
        m = torch.tensor([float(v) for v in mean]) * 255.0
        s = torch.tensor([float(v) for v in std])
        self.register_buffer("offset", m, persistent=False)
        self.register_buffer("scale", s, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = [1, -1] + [1] * (x.dim() - 2)
        return (x - self.offset.view(shape)) / self.scale.view(shape)


def _pre_hook(module: nn.Module, args):
    return (module.input_normalization(args[0]),) + tuple(args[1:])


def attach_normalization(model: nn.Module, normalize: dict | None) -> nn.Module:
    """Give ``model`` the input normalization of ``spec["normalize"]`` (None: nothing)."""
    if not normalize:
        return model
    model.input_normalization = InputNormalization(normalize["mean"], normalize["std"])
    model._normalization_hook = model.register_forward_pre_hook(_pre_hook)
    return model


def check_normalize(normalize: dict, channels: int) -> dict:
    """Validate ``{"mean": [...], "std": [...]}`` for ``channels`` input channels (a single value
    is repeated); returns lists of ``channels`` floats."""
    out = {}
    for key in ("mean", "std"):
        vals = [float(v) for v in normalize[key]]
        if len(vals) == 1:
            vals = vals * channels
        if len(vals) != channels:
            raise Bnn2hwError(f"--normalize: {len(vals)} {key} values for {channels} input channel(s)")
        if not all(np.isfinite(vals)):
            raise Bnn2hwError(f"--normalize: {key} values must be finite, got {vals}")
        out[key] = vals
    if min(out["std"]) <= 0:
        raise Bnn2hwError(f"--normalize: std values must be positive, got {out['std']}")
    return out


def parse_normalize(text: str) -> dict | str:
    """``auto`` | ``M,S`` (every channel) | ``M1,M2,M3:S1,S2,S3`` (per channel), values for
    pixels in [0, 1]."""
    text = text.strip()
    if text == "auto":
        return "auto"
    try:
        if ":" in text:
            mean, std = text.split(":")
            return {"mean": [float(v) for v in mean.split(",")], "std": [float(v) for v in std.split(",")]}
        m, s = text.split(",")
        return {"mean": [float(m)], "std": [float(s)]}
    except ValueError:
        raise Bnn2hwError(f"--normalize must be 'auto', 'MEAN,STD' or 'M1,M2,M3:S1,S2,S3' (pixels in "
                          f"[0, 1]), got {text!r}") from None


def channel_statistics(x: np.ndarray) -> dict:
    """Per-channel mean and std of uint8 images (N, C, H, W) or rows (N, F), pixels in [0, 1]."""
    xf = x.astype(np.float64) / 255.0
    axes = (0, 2, 3) if x.ndim == 4 else (0, 1)
    mean = np.atleast_1d(xf.mean(axis=axes))
    std = np.atleast_1d(xf.std(axis=axes))
    return {"mean": [round(float(v), 6) for v in mean],
            "std": [round(float(max(v, 1e-3)), 6) for v in std]}


def _first_affine_and_bn(model: nn.Module, arch: str):
    if arch == "mlp":
        feats = list(model.features)
        if len(feats) < 3 or not isinstance(feats[2], nn.BatchNorm1d):
            raise Bnn2hwError("the MLP has no hidden layer, so no BatchNorm after its first layer "
                              "absorbs the input normalization")
        return feats[1], feats[2]
    if arch == "cnn":
        conv, bn = model.features[0], model.features[1]
        pad = conv.padding if isinstance(conv.padding, tuple) else (conv.padding,)
        if any(int(p) for p in pad):
            raise Bnn2hwError("the first conv zero-pads its input; a padded border is not the pixel "
                              "value 0 after normalization, so the normalization cannot be folded "
                              "exactly (retrain without --normalize, or with padding 0 in the first conv)")
        return conv, bn
    if arch == "mbiper-mlp":
        return nn.Sequential(model.flatten, model.stem), model.stem_bn
    if arch in ("resnet8", "resnet20", "vgg-small") and int(spec_bits(model)):
        raise Bnn2hwError(f"the {arch} stem zero-pads its input; a padded border is not the pixel value 0 "
                          "after normalization, so the normalization cannot be folded exactly (retrain "
                          "without --normalize)")
    raise Bnn2hwError(f"input normalization cannot be folded into a {arch!r} model (not exportable)")


def spec_bits(model: nn.Module) -> int:
    """The quantized-stream width of a deployable residual/padded model (0 for the papers' float ones)."""
    from .residual import DeployableVGGSmall, ResidualBNN

    if isinstance(model, ResidualBNN):
        return model.bits
    return 8 if isinstance(model, DeployableVGGSmall) else 0


class FoldInputNormalization:
    """After it, ``model`` has no input normalization and its first BatchNorm absorbs it: the
    model takes uint8 pixels and computes the same function (see the module docstring)."""

    def __call__(self, model: nn.Module, spec: dict) -> nn.Module:
        norm = spec.get("normalize")
        if not norm:
            return model
        std = [float(v) for v in norm["std"]]
        if max(std) != min(std):
            raise Bnn2hwError(f"input normalization with per-channel std {std} cannot be folded into "
                              "binary first-layer weights (each input channel would need its own "
                              "weight scale); retrain with one std for all channels, e.g. --normalize "
                              "M1,M2,M3:S,S,S")
        layer, bn = _first_affine_and_bn(model, spec["arch"])
        s = std[0]
        shape = [1] + [int(d) for d in spec["in_shape"]]
        offset = torch.tensor([255.0 * float(v) for v in norm["mean"]], dtype=torch.float64)
        view = [-1] + [1] * (len(shape) - 2)
        o = (torch.zeros(shape, dtype=torch.float64) + offset.view(view)).float()
        was_training = layer.training
        layer.eval()
        with torch.no_grad():
            y_o = layer(o).double()
            y_0 = layer(torch.zeros(shape)).double()
        layer.train(was_training)
        c = y_o - s * y_0
        c = c.reshape(c.shape[0], c.shape[1], -1)[0, :, 0]  # spatially constant (no padding)
        with torch.no_grad():
            mu = bn.running_mean.double()
            var = bn.running_var.double()
            new_var = s * s * (var + bn.eps) - bn.eps
            if bool((new_var <= 0).any()):
                raise Bnn2hwError("input normalization cannot be folded: a BatchNorm variance of the "
                                  "first layer would become non-positive")
            bn.running_mean.copy_((c + s * mu).float())
            bn.running_var.copy_(new_var.float())
        model._normalization_hook.remove()
        del model.input_normalization
        del model._normalization_hook
        return model
