# SPDX-License-Identifier: MIT
"""Brevitas-based binary layers whose integer accumulators are exact in float32.

``BinaryLinear`` / ``BinaryConv2d`` are Brevitas ``QuantLinear`` / ``QuantConv2d`` with a
custom ``tensor_quant`` (:class:`PeriodicWeightQuant`) that returns the unit ±1 weight
``sign(f(w))`` (BiPer eq. 8 for ``biper``) with scale 1, so the product ``x @ w_q`` is an exact
integer whenever ``x`` is ±1 or an 8-bit integer. The per-output-channel scaling factor
``gamma`` is applied *after* the accumulation (``y = gamma * acc``), never folded into the
weight: summing ``±gamma`` in float32 is not the same number as ``gamma * acc``, and the
exporter needs the PyTorch decision to be a function of the integer ``acc`` alone.

Scaling factor: ``gamma_c = mean_i |f(w_ci)|`` (for BiPer ``mean |sin(w0 w)|``). This is the
per-channel *empirical* minimiser of the quantization error of BiPer eq. 15 (the derivative of
``mean (|f| - gamma)^2`` vanishes at ``gamma = mean |f|``); eq. 18 is the same quantity in
closed form under a Laplace assumption on ``w`` (see :mod:`bnn2hw.analysis.quantization_error`).
The empirical form does not depend on the Laplace fit and keeps the stage-2 output magnitude
equal to stage 1's, where the weight is ``f(w)`` itself (the warm start of sec. 5.1.3).

Initialisation (opt-in, ``SurrogateConfig.period_init = True``; off by default): for a
continuous periodic binarizer (``Binarizer.periodic``: BiPer, sine, cosine, triangle,
arctan-sine; not sawtooth and square, whose f jumps) the latent weights start uniform over one
period, ``w ~ U(-pi/w0, pi/w0)``, so the phase ``w0 w`` is uniform on [-pi, pi) and ``f(w)``
covers [-1, 1]. Brevitas' default (Kaiming-uniform, bound ``1/sqrt(fan_in)``) puts the phases of
a 256-input layer within +-1.25 rad at w0 = 20, on the linear part of ``sin``. On the digits
BiPer MLP's *validation* split (6 seeds, lr2 0.1/w0^2) the period init gave 95.65 ± 0.83 vs
95.45 ± 1.37 (stage-1 -> 2 drop 0.7 vs 1.2 points): within the noise, so it is not the default.

Stages: ``stage = 1`` makes the layer use the real-valued ``f(w)`` (BiPer eq. 10) as its
weight, ``stage = 2`` the binary one. :func:`set_stage` switches a whole model.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from brevitas.function.ops_ste import round_ste
from brevitas.nn import QuantConv2d, QuantLinear
from brevitas.quant import Int8WeightPerTensorFloat, SignedBinaryWeightPerTensorConst
from torch import Tensor, nn

from .surrogates import Binarizer, SurrogateConfig, make_binarizer, triangle_wave


class PeriodicWeightQuant(nn.Module):
    """Brevitas ``tensor_quant``: returns ``(w_q, scale=1, zero_point=0, bit_width=1)``.

    ``w_q = binarizer.binarize(w)`` in stage 2 (exactly ±1), ``binarizer.relax(w)`` in stage 1.
    """

    def __init__(self, binarizer: Binarizer):
        super().__init__()
        self.binarizer = binarizer
        self.stage = 2
        self.register_buffer("unit_scale", torch.tensor(1.0), persistent=False)
        self.register_buffer("zero_point", torch.tensor(0.0), persistent=False)
        self.register_buffer("bit_width", torch.tensor(1.0), persistent=False)

    def forward(self, w: Tensor):
        if self.stage == 1:
            wq = self.binarizer.relax(w)
        else:
            shape = w.shape
            wq = self.binarizer.binarize(w.reshape(shape[0], -1)).reshape(shape)
        return wq, self.unit_scale, self.zero_point, self.bit_width


class PeriodicWeightQuantInjector(SignedBinaryWeightPerTensorConst):
    """Brevitas injector that plugs :class:`PeriodicWeightQuant` into Quant* layers."""

    tensor_quant = PeriodicWeightQuant
    scaling_const = 1.0


class _BinaryWeightMixin:
    """Shared by BinaryLinear and BinaryConv2d: per-channel gamma, stage switch, hard weights."""

    binarizer: Binarizer

    def _init_binary(self, out_channels: int, scaling: str, input_scale: float) -> None:
        if scaling not in ("mean-abs", "none", "alpha"):
            raise ValueError(f"scaling must be 'mean-abs', 'none' or 'alpha', got {scaling!r}")
        self.scaling = scaling
        if scaling == "alpha":  # the official BiPer code's learnable per-channel scale (any sign)
            self.alpha = nn.Parameter(torch.rand(out_channels, 1, 1))
        # A constant the accumulator is multiplied by (1/255 for 8-bit pixel input), so the
        # first layer sees the same magnitudes as the others; exact integer acc is kept.
        self.input_scale = float(input_scale)
        self.out_bias = None
        self.reset_binary_weight()

    def reset_binary_weight(self) -> None:
        """With ``SurrogateConfig.period_init`` and a continuous periodic binarizer:
        ``w ~ U(-pi/w0, pi/w0)`` (one period, see the module docstring); otherwise the layer's
        default initialisation is kept."""
        if getattr(self.binarizer, "periodic", False) and self.binarizer.config.period_init:
            half = math.pi / float(self.binarizer.config.w0)
            with torch.no_grad():
                self.weight.uniform_(-half, half)

    @property
    def tensor_quant(self) -> PeriodicWeightQuant:
        return self.weight_quant.tensor_quant

    @property
    def stage(self) -> int:
        return self.tensor_quant.stage

    @stage.setter
    def stage(self, value: int) -> None:
        self.tensor_quant.stage = int(value)

    def channel_scale(self) -> Tensor:
        """gamma per output channel (see module docstring); 1 in stage 1 (the weight is f(w))."""
        if self.scaling == "alpha":
            return self.alpha.reshape(-1)
        if self.scaling == "none" or self.stage == 1:
            return torch.ones(self.weight.shape[0], device=self.weight.device)
        relaxed = self.binarizer.relax(self.weight.reshape(self.weight.shape[0], -1))
        return relaxed.abs().mean(dim=1)

    def hard_weight(self) -> Tensor:
        """The trained ±1 weights as the exporter sees them: binarizer forward, no autograd."""
        w = self.weight.detach()
        return self.binarizer.hard(w.reshape(w.shape[0], -1)).reshape(w.shape)

    def _post(self, acc: Tensor) -> Tensor:
        shape = (1, -1) + (1,) * (acc.dim() - 2)
        y = acc * (self.channel_scale() * self.input_scale).reshape(shape)
        return y


class BinaryLinear(_BinaryWeightMixin, QuantLinear):
    """Binary-weight Linear: ``y = gamma * input_scale * (x @ sign(f(w))^T)``; no bias (a
    BatchNorm follows); Brevitas ``QuantLinear`` underneath."""

    def __init__(self, in_features: int, out_features: int, surrogate: SurrogateConfig,
                 scaling: str = "mean-abs", input_scale: float = 1.0):
        cfg = SurrogateConfig(**{**surrogate.to_dict(), "fda_features": in_features})
        binarizer = make_binarizer(cfg)
        super().__init__(in_features, out_features, bias=False,
                         weight_quant=PeriodicWeightQuantInjector.let(binarizer=binarizer))
        self.binarizer = self.tensor_quant.binarizer
        self._init_binary(out_features, scaling, input_scale)

    def forward(self, x: Tensor) -> Tensor:
        return self._post(super().forward(x))


class BinaryConv2d(_BinaryWeightMixin, QuantConv2d):
    """Binary-weight Conv2d on ±1 (or 8-bit) input, zero padding; no bias (a BatchNorm follows).

    Zero padding of ±1 data means a border tap contributes 0 to the accumulator, as in BiPer's
    official code; the IR records it and the back ends correct for it."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 surrogate: SurrogateConfig, stride: int = 1, padding: int = 0,
                 scaling: str = "mean-abs", input_scale: float = 1.0):
        fan_in = in_channels * kernel_size * kernel_size
        cfg = SurrogateConfig(**{**surrogate.to_dict(), "fda_features": fan_in})
        binarizer = make_binarizer(cfg)
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         bias=False,
                         weight_quant=PeriodicWeightQuantInjector.let(binarizer=binarizer))
        self.binarizer = self.tensor_quant.binarizer
        self._init_binary(out_channels, scaling, input_scale)

    def forward(self, x: Tensor) -> Tensor:
        return self._post(super().forward(x))


class Int8Linear(QuantLinear):
    """8-bit weight Linear (narrow range [-127, 127], per-tensor float scale s) for first/last
    layers: ``y = s * input_scale * (x @ w_int^T) + bias``, with the integer product exact."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 input_scale: float = 1.0):
        super().__init__(in_features, out_features, bias=False,
                         weight_quant=Int8WeightPerTensorFloat)
        self.input_scale = float(input_scale)
        self.out_bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def int_weight(self) -> tuple[Tensor, Tensor]:
        """(integer weight as float tensor with STE gradient, scale)."""
        qw = self.quant_weight()
        return round_ste(qw.value / qw.scale), qw.scale

    def forward(self, x: Tensor) -> Tensor:
        w_int, scale = self.int_weight()
        y = F.linear(x, w_int) * (scale * self.input_scale)
        if self.out_bias is not None:
            y = y + self.out_bias
        return y


class BinaryActivation(nn.Module):
    """Sign activation with a surrogate backward (Bi-Real eq. 6-7 by default); tie: 0 -> +1.

    ``features`` is the channel count (dim 1), needed by FDA's noise adaptation module.
    ``zero_tie=True`` gives ``torch.sign``'s 0 for an input of exactly 0 (the official BiPer
    code's activation; such a model has a third value and does not fold to bits)."""

    def __init__(self, name: str = "bireal", features: int | None = None,
                 surrogate: SurrogateConfig | None = None, zero_tie: bool = False):
        super().__init__()
        base = surrogate.to_dict() if surrogate is not None else {}
        cfg = SurrogateConfig(**{**base, "name": name, "fda_features": features})
        self.binarizer = make_binarizer(cfg, activation=True)
        self.zero_tie = bool(zero_tie)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() > 2:  # channel-last for the noise module, which acts on the last dim
            y = self.binarizer(x.movedim(1, -1)).movedim(-1, 1)
        else:
            y = self.binarizer(x)
        return y * (x != 0) if self.zero_tie else y


PERIODIC_FUNCTIONS = {
    "sine": torch.sin,
    "cosine": torch.cos,
    "triangle": triangle_wave,  # (2/pi) asin(sin t) without asin's infinite gradient at crests
    "arctan-sine": lambda t: torch.atan(torch.sin(t)),
}


class PeriodicActivation(nn.Module):
    """Real-valued periodic activation ``f(w0 x)`` for M-BiPer's residual form (eq. 7):
    ``y = f(BN(Conv(x))) + x``. Smooth members of the family only (sawtooth and square are
    discontinuous and serve as binarizers, not activations)."""

    def __init__(self, kind: str = "sine", w0: float = 1.0):
        super().__init__()
        if kind not in PERIODIC_FUNCTIONS:
            raise ValueError(f"unknown periodic activation {kind!r}; valid: {sorted(PERIODIC_FUNCTIONS)}")
        self.kind = kind
        self.w0 = float(w0)

    def forward(self, x: Tensor) -> Tensor:
        return PERIODIC_FUNCTIONS[self.kind](self.w0 * x)

    def extra_repr(self) -> str:
        return f"kind={self.kind}, w0={self.w0}"


def binary_layers(model: nn.Module):
    """All binary-weight layers of a model, in module order."""
    return [m for m in model.modules() if isinstance(m, (BinaryLinear, BinaryConv2d))]


def set_stage(model: nn.Module, stage: int) -> None:
    """Switch every binary layer of ``model`` to stage 1 (real f(w)) or 2 (binary weights)."""
    for m in binary_layers(model):
        m.stage = stage


def set_progress(model: nn.Module, progress: float) -> None:
    """Tell every binarizer how far training has got (FDA's n and alpha schedules)."""
    for m in model.modules():
        if isinstance(m, Binarizer):
            m.set_progress(progress)
