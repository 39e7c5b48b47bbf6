# SPDX-License-Identifier: MIT
"""Model builders. Every model is built from a plain-dict *spec* (stored in checkpoints).

Deployable models (the exporter folds them to the integer IR):

* ``mlp``: FINN-TFC-like binary MLP, ``in -> hidden... -> classes``; each hidden block is
  ``Linear -> BatchNorm1d -> sign``. The input is 8-bit pixels (0..255, as float).
* ``cnn``: small binary CNN of ``Conv -> BatchNorm2d -> sign [-> MaxPool]`` blocks, then
  dense blocks, sized for 8x8 digits. Convs default to no padding (as in FINN's CNV), so the
  FPGA path needs no padding correction.

First and last layers: ``binary`` (±1 weights; the first layer still takes 8-bit input and keeps
an exact integer accumulator), ``int8`` (8-bit weights, exact integer accumulator) or ``float``
(full precision, as the papers do; trainable but not exportable to integers).

Deployable residual and padded models (:mod:`bnn2hw.nn.residual`): ``resnet8`` (MLPerf Tiny),
``resnet20`` and ``vgg-small`` with ``spec["residual_bits"]`` 8 or 16 (the default 8): a
quantized residual stream, binary stem on 8-bit pixels, int8 (default) or binary last layer,
``spec["pad_value"]`` -1 (default; deploys to FINN and C) or 0 (C only).

Papers' architectures, for users with GPUs (trainable, not exportable: they carry real values
between binary layers): ``resnet18`` / ``resnet20`` (``residual_bits`` 0) with Bi-Real double
skip connections, ``vgg-small`` (``residual_bits`` 0), and ``mbiper-resnet`` whose blocks follow
M-BiPer eq. 7, ``y = f(BN(Conv(x))) + x`` with a periodic ``f``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..errors import Bnn2hwError
from .layers import (BinaryActivation, BinaryConv2d, BinaryLinear, Int8Linear,
                     PeriodicActivation)
from .surrogates import SurrogateConfig, default_activation

PIXEL_SCALE = 1.0 / 255.0
"""Inputs are 8-bit integers; the first layer multiplies its integer accumulator by this."""


def default_spec(model: str, in_shape: tuple[int, ...], num_classes: int) -> dict:
    """A spec with bnn2hw's defaults for ``model`` on data of ``in_shape`` (C, H, W or F)."""
    if model == "mlp":
        spec = {"hidden": [256, 256]}
    elif model == "cnn":
        spec = {"convs": [[32, 3, 0, False], [64, 3, 0, True]], "hidden": [128]}
    elif model == "mbiper-mlp":
        spec = {"width": 128, "blocks": 2, "periodic": "sine", "periodic_w0": 1.0}
    elif model in DEPLOYABLE_RESIDUAL:
        spec = {"residual_bits": 8, "pad_value": -1, "widths": None}
    elif model in PAPER_MODELS:
        spec = {}
    else:
        raise Bnn2hwError(f"unknown model {model!r}; valid: {', '.join(MODEL_NAMES)}")
    return {"arch": model, "in_shape": list(in_shape), "num_classes": int(num_classes),
            "first": "binary", "last": "int8" if model in DEPLOYABLE_RESIDUAL else "binary",
            "surrogate": SurrogateConfig().to_dict(), "activation": None, **spec}


def _surrogate(spec: dict) -> SurrogateConfig:
    return SurrogateConfig(**spec["surrogate"])


def _act_name(spec: dict) -> str:
    return spec.get("activation") or default_activation(spec["surrogate"]["name"])


def _linear(kind: str, n_in: int, n_out: int, spec: dict, input_scale: float = 1.0,
            last: bool = False) -> nn.Module:
    if kind == "binary":
        return BinaryLinear(n_in, n_out, _surrogate(spec), input_scale=input_scale)
    if kind == "int8":
        return Int8Linear(n_in, n_out, bias=last, input_scale=input_scale)
    if kind == "float":
        return _ScaledLinear(n_in, n_out, bias=last, input_scale=input_scale)
    raise Bnn2hwError(f"layer kind must be binary, int8 or float, got {kind!r}")


class _ScaledLinear(nn.Linear):
    """Full-precision Linear on scaled input (first/last layer 'float')."""

    def __init__(self, n_in, n_out, bias, input_scale):
        super().__init__(n_in, n_out, bias=bias)
        self.input_scale = input_scale

    def forward(self, x):
        return super().forward(x * self.input_scale)


class ClassifierHead(nn.Module):
    """Last layer: integer accumulator times a learnable per-class scale, plus a bias.

    ``logits = acc * scale + bias`` (binary weights), or the Int8/float layer's own output."""

    def __init__(self, layer: nn.Module, num_classes: int, learn_affine: bool):
        super().__init__()
        self.layer = layer
        self.learn_affine = learn_affine
        if learn_affine:
            self.scale = nn.Parameter(torch.ones(num_classes))
            self.bias = nn.Parameter(torch.zeros(num_classes))

    def forward(self, x):
        y = self.layer(x)
        if self.learn_affine:
            y = y * self.scale + self.bias
        return y


class BinaryMLP(nn.Module):
    """``Flatten -> [Linear -> BN -> sign] * len(hidden) -> Linear`` (FINN TFC shape)."""

    def __init__(self, spec: dict):
        super().__init__()
        n_in = 1
        for d in spec["in_shape"]:
            n_in *= int(d)
        act = _act_name(spec)
        blocks: list[nn.Module] = [nn.Flatten()]
        for i, width in enumerate(spec["hidden"]):
            kind = spec["first"] if i == 0 else "binary"
            scale = PIXEL_SCALE if i == 0 else 1.0
            blocks += [_linear(kind, n_in, width, spec, input_scale=scale),
                       nn.BatchNorm1d(width), BinaryActivation(act, width, _surrogate(spec))]
            n_in = width
        self.features = nn.Sequential(*blocks)
        last_kind = spec["last"]
        scale = PIXEL_SCALE if not spec["hidden"] else 1.0
        self.head = ClassifierHead(_linear(last_kind, n_in, spec["num_classes"], spec,
                                           input_scale=scale, last=True),
                                   spec["num_classes"], learn_affine=last_kind == "binary")

    def forward(self, x):
        return self.head(self.features(x))


class BinaryCNN(nn.Module):
    """``[Conv -> BN -> sign (-> MaxPool 2)] * n -> Flatten -> [Linear -> BN -> sign] -> Linear``.

    ``spec['convs']`` lists ``[out_channels, kernel, padding, pool]`` per conv block."""

    def __init__(self, spec: dict):
        super().__init__()
        c, h, w = (int(d) for d in spec["in_shape"])
        act = _act_name(spec)
        sur = _surrogate(spec)
        blocks: list[nn.Module] = []
        for i, (out_c, k, pad, pool) in enumerate(spec["convs"]):
            if i == 0 and spec["first"] != "binary":
                raise Bnn2hwError("the CNN's first conv supports first='binary' only")
            blocks += [BinaryConv2d(c, out_c, k, sur, padding=pad,
                                    input_scale=PIXEL_SCALE if i == 0 else 1.0),
                       nn.BatchNorm2d(out_c), BinaryActivation(act, out_c, sur)]
            c, h, w = out_c, h + 2 * pad - k + 1, w + 2 * pad - k + 1
            if pool:
                blocks.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            if h <= 0 or w <= 0:
                raise Bnn2hwError(f"conv block {i} shrinks the {spec['in_shape']} input to nothing")
        blocks.append(nn.Flatten())
        n_in = c * h * w
        for width in spec.get("hidden", []):
            blocks += [BinaryLinear(n_in, width, sur), nn.BatchNorm1d(width),
                       BinaryActivation(act, width, sur)]
            n_in = width
        self.features = nn.Sequential(*blocks)
        last_kind = spec["last"]
        self.head = ClassifierHead(_linear(last_kind, n_in, spec["num_classes"], spec, last=True),
                                   spec["num_classes"], learn_affine=last_kind == "binary")

    def forward(self, x):
        return self.head(self.features(x))


class BinaryResMLP(nn.Module):
    """M-BiPer residual MLP (deployable on MCUs, eq. 7): a real-valued stream ``x`` of width W,

    ``x_0 = BN(FirstLayer(pixels))``, then per block ``x_{i+1} = f(BN(BinaryLinear(sign(x_i)))) + x_i``
    with a periodic ``f(w0p t)`` (``spec["periodic"]``: sine, cosine, triangle or arctan-sine,
    M-BiPer sec. 4.1), then ``logits = BinaryLinear(sign(x_n)) * scale + bias``.
    The stream is exported as fixed point (formats from calibration data); FINN cannot express
    ``f`` (not a monotone threshold), so this model exports to C only."""

    def __init__(self, spec: dict):
        super().__init__()
        n_in = 1
        for d in spec["in_shape"]:
            n_in *= int(d)
        width, blocks = int(spec["width"]), int(spec["blocks"])
        sur, act = _surrogate(spec), _act_name(spec)
        self.flatten = nn.Flatten()
        self.stem = _linear(spec["first"], n_in, width, spec, input_scale=PIXEL_SCALE)
        self.stem_bn = nn.BatchNorm1d(width)
        self.signs = nn.ModuleList(BinaryActivation(act, width, sur) for _ in range(blocks + 1))
        self.linears = nn.ModuleList(BinaryLinear(width, width, sur) for _ in range(blocks))
        self.bns = nn.ModuleList(nn.BatchNorm1d(width) for _ in range(blocks))
        self.periodic = PeriodicActivation(spec.get("periodic", "sine"), float(spec.get("periodic_w0", 1.0)))
        self.head = ClassifierHead(_linear(spec["last"], width, spec["num_classes"], spec, last=True),
                                   spec["num_classes"], learn_affine=spec["last"] == "binary")

    def forward(self, x):
        x = self.stem_bn(self.stem(self.flatten(x)))
        for sign, lin, bn in zip(self.signs, self.linears, self.bns):
            x = self.periodic(bn(lin(sign(x)))) + x
        return self.head(self.signs[-1](x))


# ---------------------------------------------------------------------------------------------
# The papers' architectures (CIFAR/ImageNet scale). Not exportable: real-valued residual paths.


class BiRealBlock(nn.Module):
    """Bi-Real basic block with a double skip connection: each binary conv has its own
    shortcut, ``x = BN(Conv(sign(x))) + x`` twice (BiPer sec. 5.1.2). Downsampling shortcuts
    are average pooling + full-precision 1x1 conv, as in BiPer's ImageNet models."""

    def __init__(self, c_in: int, c_out: int, stride: int, sur: SurrogateConfig, act: str,
                 periodic: PeriodicActivation | None = None):
        super().__init__()
        self.act1 = BinaryActivation(act, c_in, sur)
        self.conv1 = BinaryConv2d(c_in, c_out, 3, sur, stride=stride, padding=1)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.act2 = BinaryActivation(act, c_out, sur)
        self.conv2 = BinaryConv2d(c_out, c_out, 3, sur, padding=1)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.periodic = periodic or nn.Identity()
        self.down = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.down = nn.Sequential(nn.AvgPool2d(stride) if stride > 1 else nn.Identity(),
                                      nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        # M-BiPer eq. 7 when ``periodic`` is set: y = f(BN(Conv(x))) + x.
        out = self.periodic(self.bn1(self.conv1(self.act1(x)))) + self.down(x)
        return self.periodic(self.bn2(self.conv2(self.act2(out)))) + out


class BiRealResNet(nn.Module):
    """ResNet-18 (4 stages x 2 blocks, 64..512) or ResNet-20 (3 stages x 3 blocks, 16..64) with
    Bi-Real double skips; first conv and last FC full precision, as in BiPer."""

    def __init__(self, spec: dict, depth: int, periodic: str | None = None):
        super().__init__()
        sur, act = _surrogate(spec), _act_name(spec)
        c_in = int(spec["in_shape"][0])
        if depth == 18:
            widths, blocks = [64, 128, 256, 512], 2
        else:
            widths, blocks = [16, 32, 64], 3
        self.stem = nn.Sequential(nn.Conv2d(c_in, widths[0], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]))
        layers, c = [], widths[0]
        for i, width in enumerate(widths):
            for j in range(blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                f = PeriodicActivation(periodic, spec["surrogate"].get("w0", 1.0)) if periodic else None
                layers.append(BiRealBlock(c, width, stride, sur, act, f))
                c = width
        self.body = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, spec["num_classes"])

    def forward(self, x):
        x = self.body(self.stem(x * PIXEL_SCALE))
        return self.fc(torch.flatten(self.pool(x), 1))


class VGGSmall(nn.Module):
    """VGG-small (128-128-M-256-256-M-512-512-M, FC): conv -> max-pool -> BN -> sign, the order
    of BiPer's code (it commutes with the threshold only for a positive folded scale)."""

    def __init__(self, spec: dict):
        super().__init__()
        sur, act = _surrogate(spec), _act_name(spec)
        c = int(spec["in_shape"][0])
        cfg = [128, 128, "M", 256, 256, "M", 512, 512, "M"]
        self.stem = nn.Sequential(nn.Conv2d(c, 128, 3, padding=1, bias=False), nn.BatchNorm2d(128),
                                  BinaryActivation(act, 128, sur))
        layers, c = [], 128
        for i, v in enumerate(cfg[1:]):
            if v == "M":
                continue
            pool = i + 2 < len(cfg) and cfg[i + 2] == "M"
            layers += [BinaryConv2d(c, v, 3, sur, padding=1)]
            if pool:
                layers.append(nn.MaxPool2d(2))
            layers += [nn.BatchNorm2d(v), BinaryActivation(act, v, sur)]
            c = v
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(c * (int(spec["in_shape"][1]) // 8) ** 2, spec["num_classes"])

    def forward(self, x):
        x = self.body(self.stem(x * PIXEL_SCALE))
        return self.fc(torch.flatten(x, 1))


DEPLOYABLE_RESIDUAL = ("resnet8", "resnet20", "vgg-small")
"""Models with a deployable form: ``spec["residual_bits"]`` 8 or 16 (:mod:`bnn2hw.nn.residual`);
``resnet20`` and ``vgg-small`` with ``residual_bits`` 0 (or absent: checkpoints written before
it existed) are the papers' float models below."""

PAPER_MODELS = {
    "resnet18": lambda s: BiRealResNet(s, 18),
    "resnet20": lambda s: BiRealResNet(s, 20),
    "vgg-small": VGGSmall,
    "mbiper-resnet20": lambda s: BiRealResNet(s, 20, periodic=s.get("periodic", "sine")),
}

MODEL_NAMES = ["mlp", "cnn", "mbiper-mlp", "resnet8", *PAPER_MODELS]


def build_model(spec: dict) -> nn.Module:
    """Rebuild a model from its spec (the same spec the checkpoint stores), with the input
    normalization of ``spec["normalize"]`` if any (:mod:`bnn2hw.nn.normalize`)."""
    from .normalize import attach_normalization

    return attach_normalization(_build_model(spec), spec.get("normalize"))


def _build_model(spec: dict) -> nn.Module:
    spec = copy.deepcopy(spec)
    arch = spec.get("arch")
    if arch == "mlp":
        return BinaryMLP(spec)
    if arch == "cnn":
        return BinaryCNN(spec)
    if arch == "mbiper-mlp":
        return BinaryResMLP(spec)
    if arch in DEPLOYABLE_RESIDUAL and int(spec.get("residual_bits") or 0):
        from .residual import DeployableVGGSmall, ResidualBNN

        if arch == "vgg-small":
            return DeployableVGGSmall(spec, _surrogate(spec), _act_name(spec))
        return ResidualBNN(spec, _surrogate(spec), _act_name(spec))
    if arch == "resnet8":  # residual_bits 0: the same topology with a float stream
        from .residual import ResidualBNN

        return ResidualBNN(spec, _surrogate(spec), _act_name(spec))
    if arch in PAPER_MODELS:
        return PAPER_MODELS[arch](spec)
    raise Bnn2hwError(f"unknown model {arch!r}; valid: {', '.join(MODEL_NAMES)}")
