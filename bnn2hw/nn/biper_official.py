# SPDX-License-Identifier: MIT
"""The official BiPer CIFAR architectures, built from bnn2hw layers (spec ``"official_biper": true``).

These mirror, module for module and in eval mode, the models of github edmav4/BiPer (commit
0c07fdd), so that :mod:`bnn2hw.frontends.biper_official` can load their state dicts:

* ``resnet20``: ``cifar10/models_cifar/resnet.py`` ``resnet20_1w1a`` (``ResNet``,
  ``BasicBlock_1w1a``): float stem conv + BN + hardtanh; blocks
  ``out = hardtanh(BN1(Conv1(x)) + shortcut(x)); out = hardtanh(BN2(Conv2(out)) + out)``;
  global average pool, ``bn2`` (BatchNorm1d), float ``linear``.
* ``resnet18``: ``cifar10/models_cifar/resnet2.py`` ``resnet18_1w1a`` (widths 64..512): float stem
  conv + BN (no hardtanh); blocks ``out = hardtanh(BN1(Conv1(x))); out = hardtanh(BN2(Conv2(out))
  + shortcut(x))``; ``avg_pool2d(out, 4)``, ``bn2``, float ``linear``.
* ``vgg-small``: ``cifar10/models_cifar/vgg.py`` ``vgg_small_1w1a``: float ``conv0`` + BN +
  hardtanh, then ``conv -> [max-pool] -> BN -> hardtanh`` five times, float ``fc`` on the
  flattened (C, H, W) hardtanh output.

Shortcuts with a stride or a width change are the official "option A": ``AvgPool2d(2)`` then
zero channel padding of ``planes // 4`` on each side (no parameters).

Binary conv (``cifar10/modules/binarized_modules.py`` ``BinarizeConv2d``, eval mode, stage 2):
``conv2d(sign(x), sign(sin(freq w)), padding) * alpha`` with ``torch.sign`` (0 -> 0) on the
activation, zero padding of the signed activations, and a learnable per-channel ``alpha`` of
any sign. Here: :class:`~bnn2hw.nn.layers.BinaryActivation` with ``zero_tie=True`` and
:class:`~bnn2hw.nn.layers.BinaryConv2d` with ``scaling="alpha"`` and the ``biper`` binarizer
(``sign(sin(w0 w))``; a latent weight with ``sin(w0 w) = 0``, whose official sign is 0, is
refused by the importer). The training-only division of the activation by its standard
deviation does not change its sign and is absent in eval mode.

Deployment (``export``/``emit-c``): :mod:`bnn2hw.export.fold_official` quantizes these models
(fixed-point stream, int8 first/last layers) into a twin the IR equals bit for bit.

Inputs are bnn2hw's uint8 pixels: ``x * PIXEL_SCALE`` after the optional ``spec["normalize"]``
(the official loaders normalize with torchvision's Normalize), so the model sees what the
official one sees.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from .layers import BinaryActivation, BinaryConv2d
from .surrogates import SurrogateConfig

PIXEL_SCALE = 1.0 / 255.0
ARCHS = ("resnet20", "resnet18", "vgg-small")


class OfficialBinaryConv(nn.Module):
    """``BinarizeConv2d`` in eval mode: ``conv(sign(x), sign(sin(w0 w))) * alpha``."""

    def __init__(self, c_in: int, c_out: int, sur: SurrogateConfig, stride: int = 1):
        super().__init__()
        self.sign = BinaryActivation("bireal", c_in, sur, zero_tie=True)  # ApproxSign backward
        self.conv = BinaryConv2d(c_in, c_out, 3, sur, stride=stride, padding=1, scaling="alpha")

    def forward(self, x):
        return self.conv(self.sign(x))


class OptionAShortcut(nn.Module):
    """``AvgPool2d((2, 2))`` then ``F.pad(x, (0, 0, 0, 0, pad, pad))`` on channels (official)."""

    def __init__(self, pad: int):
        super().__init__()
        self.pool = nn.AvgPool2d((2, 2))
        self.pad = pad

    def forward(self, x):
        return F.pad(self.pool(x), (0, 0, 0, 0, self.pad, self.pad), "constant", 0)


class _Block(nn.Module):
    def __init__(self, c_in: int, planes: int, stride: int, sur: SurrogateConfig, resnet18: bool):
        super().__init__()
        self.resnet18 = resnet18
        self.conv1 = OfficialBinaryConv(c_in, planes, sur, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = OfficialBinaryConv(planes, planes, sur)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != planes:
            self.shortcut = OptionAShortcut(0 if planes == c_in else planes // 4)

    def forward(self, x):
        if self.resnet18:  # resnet2.py BasicBlock_1w1a
            out = F.hardtanh(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out)) + self.shortcut(x)
            return F.hardtanh(out)
        out = F.hardtanh(self.bn1(self.conv1(x)) + self.shortcut(x))  # resnet.py BasicBlock_1w1a
        return F.hardtanh(self.bn2(self.conv2(out)) + out)


class OfficialResNet(nn.Module):
    """``resnet20_1w1a`` (depth 20) or ``resnet18_1w1a`` (depth 18) of the official code."""

    def __init__(self, spec: dict, depth: int):
        super().__init__()
        sur = SurrogateConfig(**spec["surrogate"])
        self.depth = depth
        widths, blocks = ([16, 32, 64], 3) if depth == 20 else ([64, 128, 256, 512], 2)
        c_in = int(spec["in_shape"][0])
        self.conv1 = nn.Conv2d(c_in, widths[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        c = widths[0]
        for i, width in enumerate(widths):
            layers = []
            for j in range(blocks):
                layers.append(_Block(c, width, 2 if (i > 0 and j == 0) else 1, sur, depth == 18))
                c = width
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
        self.bn2 = nn.BatchNorm1d(c)
        self.linear = nn.Linear(c, int(spec["num_classes"]))

    def forward(self, x):
        out = self.bn1(self.conv1(x * PIXEL_SCALE))
        if self.depth == 20:
            out = F.hardtanh(out)
        for i in range(4 if self.depth == 18 else 3):
            out = getattr(self, f"layer{i + 1}")(out)
        out = F.avg_pool2d(out, 4 if self.depth == 18 else out.size(3))
        return self.linear(self.bn2(out.view(out.size(0), -1)))


class OfficialVGGSmall(nn.Module):
    """``vgg_small_1w1a`` of the official code (attribute names as there)."""

    def __init__(self, spec: dict):
        super().__init__()
        sur = SurrogateConfig(**spec["surrogate"])
        c_in, h = int(spec["in_shape"][0]), int(spec["in_shape"][1])
        self.conv0 = nn.Conv2d(c_in, 128, kernel_size=3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(128)
        widths = [(128, 128), (128, 256), (256, 256), (256, 512), (512, 512)]
        for i, (a, b) in enumerate(widths, start=1):
            setattr(self, f"conv{i}", OfficialBinaryConv(a, b, sur))
            setattr(self, f"bn{i}", nn.BatchNorm2d(b))
        self.pooling = nn.MaxPool2d(kernel_size=2, stride=2)
        self.fc = nn.Linear(512 * (h // 8) ** 2, int(spec["num_classes"]))

    def forward(self, x):
        x = F.hardtanh(self.bn0(self.conv0(x * PIXEL_SCALE)))
        for i in range(1, 6):
            x = getattr(self, f"conv{i}")(x)
            if i in (1, 3, 5):
                x = self.pooling(x)
            x = F.hardtanh(getattr(self, f"bn{i}")(x))
        return self.fc(x.view(x.size(0), -1))


def build_official(spec: dict) -> nn.Module:
    arch = spec["arch"]
    if arch == "resnet20":
        return OfficialResNet(spec, 20)
    if arch == "resnet18":
        return OfficialResNet(spec, 18)
    if arch == "vgg-small":
        return OfficialVGGSmall(spec)
    from ..errors import Bnn2hwError

    raise Bnn2hwError(f"official BiPer architecture must be one of {', '.join(ARCHS)}, got {arch!r}")
