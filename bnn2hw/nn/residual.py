# SPDX-License-Identifier: MIT
"""Deployable residual BNNs: a quantized residual stream between binary convolutions.

A residual network carries real values between its binary layers. To deploy it bit-exactly,
the stream is a fixed-point tensor: every value on it is ``q * 2^-frac`` with ``q`` a signed
``bits``-bit integer (``spec["residual_bits"]``: 8 or 16). One Brevitas ``QuantIdentity``
(:func:`stream_quantizer`) with a constant power-of-two scale ``2^-frac`` (range
``±2^stream_int_bits``, default ±8: ``frac = bits - 1 - 3``) is shared by every point of the
stream, so a residual sum of two stream tensors is an exact integer sum, and re-quantizing it
only saturates (the IR's ``add`` with ``bits``).

Rounding. The quantizer's float-to-int step is :class:`RoundHalfUpSte`: ``floor(v)`` plus one
where ``v - floor(v) >= 0.5`` (exact in float32 for |v| < 2^23), i.e. round half up, the IR's
``requant`` rule (floor after adding ``2^(shift-1)``). Brevitas' default ``torch.round`` rounds
half to even, which no single integer multiply-add-shift reproduces on exact ties.

The ops (each maps to IR ops, :mod:`bnn2hw.export.fold_residual`):

* stem: ``Q(BN(BinaryConv3x3(pixels)))`` -- 8-bit pixels times ±1 weights (zero padding of the
  pixels), then ``requant`` onto the stream;
* :class:`StreamSign`: ``sign(s + beta_c)`` with a learnable per-channel bias (ReActNet's RSign,
  initialised 0), folded to one integer ``threshold`` per channel on the stream integers;
* :class:`PaddedBinaryConv2d`: a binary conv whose padded taps are 0 (``pad_value`` 0: zero
  padding of the ±1 activation, official BiPer code, Larq) or the activation -1 (``pad_value``
  -1: what FINN's FMPadding does on a BINARY stream, whose padding bit 0 means -1);
* conv -> BN -> sign: an integer ``threshold``; conv -> BN -> Q: an integer ``requant``;
* downsampling shortcut: binary 1x1 stride-2 conv on the block's *binary* input, BN, Q (no
  padding, so it needs no pad convention; the float papers use avg-pool + a real 1x1 conv);
* head: :class:`StreamHead`: the global average pool is a window *sum* (exact: at most
  ``H*W * 2^(bits-1)`` stream units, below 2^24), the dense layer (int8 or binary weights) takes
  the integer sums in float64 (exact), and ``scale * 2^-frac / (H*W)`` becomes the logits'
  float affine, so the pool never rounds.

Topologies (``spec["arch"]``):

* ``resnet8``: MLPerf Tiny's image-classification ResNet-8: stem 16, three stacks of 16/32/64
  filters with one block each (two 3x3 convs around one skip; stride 2 and a 1x1 shortcut at
  stacks 2 and 3), global pool, dense 10.
* ``resnet20``: BiPer's CIFAR ResNet-20, three stages of three blocks (16/32/64) with Bi-Real
  double skips (each conv has its own shortcut), stride 2 at stages 2 and 3.

``spec["widths"]`` changes the stage widths (tests use narrow ones). ``residual_bits`` 0 gives
resnet8 a float stream (same topology, no stream quantizer; its export calibrates a 16-bit stream,
:func:`bnn2hw.export.fold_residual.calibrate_stream`); for resnet20 and vgg-small it selects the
papers' float models (:mod:`bnn2hw.nn.models`), which do not export.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from brevitas.inject.enum import RestrictValueType, ScalingImplType
from brevitas.nn import QuantConv2d, QuantIdentity
from brevitas.quant import Int8ActPerTensorFloat
from torch import Tensor, nn

from ..errors import Bnn2hwError
from .layers import BinaryActivation, BinaryConv2d, BinaryLinear, Int8Linear
from .surrogates import SurrogateConfig

STREAM_BITS = (8, 16)
DEFAULT_STREAM_INT_BITS = 3
PAD_VALUES = (0, -1)


class RoundHalfUpSte(nn.Module):
    """Brevitas ``float_to_int_impl``: round half up, ``floor(v) + (v - floor(v) >= 0.5)``, with a
    straight-through gradient. Equal to the IR's ``requant`` rounding (see module docstring)."""

    def __init__(self):
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        f = torch.floor(x)
        q = f + (x - f >= 0.5).to(x.dtype)
        return x + (q - x).detach()


class _StreamQuant(Int8ActPerTensorFloat):
    """Signed fixed-point activation quantizer: constant scale, round half up."""

    scaling_impl_type = ScalingImplType.CONST
    restrict_scaling_type = RestrictValueType.FP
    scaling_const = 8.0
    max_val = 8.0
    min_val = -8.0
    float_to_int_impl = RoundHalfUpSte


def stream_quantizer(bits: int, int_bits: int = DEFAULT_STREAM_INT_BITS) -> QuantIdentity:
    """A Brevitas ``QuantIdentity``: signed ``bits``-bit, constant scale ``2^(int_bits+1-bits)``
    (values ``q * scale``, ``q`` in ``[-2^(bits-1), 2^(bits-1) - 1]``), round half up."""
    if bits not in STREAM_BITS:
        raise Bnn2hwError(f"--residual-bits must be one of {STREAM_BITS} (or 0: float stream), got {bits}")
    if not 0 <= int_bits < bits - 1:
        raise Bnn2hwError(f"stream_int_bits must be in 0..{bits - 2}, got {int_bits}")

    quant = _StreamQuant.let(bit_width=int(bits), scaling_const=float(2 ** int_bits),
                             max_val=float(2 ** int_bits), min_val=-float(2 ** int_bits))
    return QuantIdentity(act_quant=quant, return_quant_tensor=False)


def stream_frac(bits: int, int_bits: int = DEFAULT_STREAM_INT_BITS) -> int:
    """Fraction bits of the stream: its integers ``q`` stand for ``q * 2^-frac``."""
    return int(bits) - 1 - int(int_bits)


def conv_accumulator(conv: BinaryConv2d, x: Tensor) -> Tensor:
    """The conv's accumulator before its scale: ``sum w x`` (an exact integer in stage 2)."""
    if isinstance(conv, PaddedBinaryConv2d) and conv.pad_value == -1 and conv.pad:
        x = F.pad(x, (conv.pad,) * 4, value=-1.0)
    return QuantConv2d.forward(conv, x)


def stream_requant(conv: BinaryConv2d, bn: nn.BatchNorm2d, quant: QuantIdentity, acc: Tensor) -> Tensor:
    """``Q(BN(acc * gamma * s))``: the stream value of a conv accumulator.

    Training: float32, the ordinary modules. Eval: the same formula in float64, then the exact
    float32 grid value. Why: a float32 chain ``fl(fl(acc k) alpha + beta) 2^frac`` errs by about
    ``|q| 2^-24`` stream units, 2e-3 for a 16-bit stream, so over thousands of accumulator values
    some land on the wrong side of a rounding boundary at random, and no integer
    multiply-add-shift reproduces them. In float64 the error is ~1e-12 units: the decisions are
    those of the real affine map, which the IR's ``requant`` represents
    (:func:`bnn2hw.export.fold_residual.fit_requant` proves it per layer)."""
    if bn.training:
        return quant(bn(conv._post(acc)))
    shape = (1, -1, 1, 1)
    k = (conv.channel_scale() * conv.input_scale).double().reshape(shape)
    y = F.batch_norm(acc.double() * k, bn.running_mean.double(), bn.running_var.double(),
                     bn.weight.double(), bn.bias.double(), False, 0.0, bn.eps)
    return quant(y).float()


class StreamSign(nn.Module):
    """``sign(s + beta_c)`` on the stream (learnable bias ``beta``, RSign; tie 0 -> +1)."""

    def __init__(self, channels: int, act: str, sur: SurrogateConfig):
        super().__init__()
        self.beta = nn.Parameter(torch.zeros(channels))
        self.act = BinaryActivation(act, channels, sur)

    def forward(self, s: Tensor) -> Tensor:
        return self.act(s + self.beta.view(1, -1, 1, 1))


class PaddedBinaryConv2d(BinaryConv2d):
    """Binary conv on ±1 activations with padding ``pad`` whose padded taps hold ``pad_value``:
    0 (contribute nothing, PyTorch's zero padding) or -1 (the activation -1, FINN's FMPadding)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, sur: SurrogateConfig, stride: int = 1,
                 pad: int = 0, pad_value: int = -1):
        if pad_value not in PAD_VALUES:
            raise Bnn2hwError(f"--pad-value must be 0 or -1, got {pad_value}")
        super().__init__(c_in, c_out, kernel, sur, stride=stride,
                         padding=pad if pad_value == 0 else 0)
        self.pad = int(pad)
        self.pad_value = int(pad_value)

    def forward(self, x: Tensor) -> Tensor:
        if self.pad_value == -1 and self.pad:
            x = F.pad(x, (self.pad,) * 4, value=-1.0)
        return super().forward(x)


class StreamHead(nn.Module):
    """Global average pool + last layer on the stream, exact in integers (module docstring).

    ``accumulate(s)`` is the integer logits ``W @ S`` (float64, exact) with ``S`` the per-channel
    window sums of the stream integers; ``forward`` returns ``acc * k_c + b_c``."""

    def __init__(self, kind: str, channels: int, classes: int, sur: SurrogateConfig,
                 pool: int, stream_scale: float):
        super().__init__()
        self.kind = kind
        self.pool = int(pool)
        self.stream_scale = float(stream_scale)
        if kind == "int8":
            self.layer = Int8Linear(channels, classes, bias=True)
        elif kind == "binary":
            self.layer = BinaryLinear(channels, classes, sur)
            self.scale = nn.Parameter(torch.ones(classes))
            self.bias = nn.Parameter(torch.zeros(classes))
        elif kind == "float":
            self.layer = nn.Linear(channels, classes)
        else:
            raise Bnn2hwError(f"--last must be binary, int8 or float, got {kind!r}")

    def window_sums(self, s: Tensor) -> Tensor:
        """Per-channel sums of the stream integers over the whole map (exact, float32)."""
        return s.sum(dim=(2, 3)) / self.stream_scale

    def accumulate(self, s: Tensor) -> Tensor:
        S = self.window_sums(s).double()
        if self.kind == "int8":
            w_int, _ = self.layer.int_weight()
            return F.linear(S, w_int.double())
        q = self.layer.quant_weight()
        return F.linear(S, (q.value if hasattr(q, "value") else q).double())

    def out_affine(self) -> tuple[Tensor, Tensor]:
        """(k, b) per class, float64: logits = acc * k + b."""
        unit = self.stream_scale / float(self.pool * self.pool)
        if self.kind == "int8":
            _, ws = self.layer.int_weight()
            return (ws.double() * unit).expand(self.layer.weight.shape[0]), self.layer.out_bias.double()
        k = self.layer.channel_scale().double() * unit * self.scale.double()
        return k, self.bias.double()

    def forward(self, s: Tensor) -> Tensor:
        if self.kind == "float":
            return self.layer(s.mean(dim=(2, 3)))
        k, b = self.out_affine()
        return (self.accumulate(s) * k + b).float()


class _Recorder:
    """Collects named stream/bit tensors during a traced forward (``model.trace``)."""

    def __init__(self):
        self.tensors: dict[str, Tensor] = {}

    def __call__(self, name: str, t: Tensor) -> Tensor:
        self.tensors[name] = t.detach()
        return t


def _noop(name: str, t: Tensor) -> Tensor:
    return t


class ResidualBlock(nn.Module):
    """One residual block on the quantized stream (names: IR tensor names, ``b<i>_*``).

    ``double_skip=False`` (ResNet-8): ``s' = Q(Q(BN2(C2(sign(BN1(C1(b)))))) + sc)``, ``b = sign(s)``.
    ``double_skip=True`` (Bi-Real, ResNet-20): ``s1 = Q(Q(BN1(C1(b1))) + sc)``, ``b1 = sign(s)``;
    ``s' = Q(Q(BN2(C2(b2))) + s1)``, ``b2 = sign(s1)``. ``sc`` is ``s``, or at a stride or width
    change ``Q(BNs(C1x1_s2(b1)))``."""

    def __init__(self, index: int, c_in: int, c_out: int, stride: int, double_skip: bool,
                 quant: QuantIdentity, sur: SurrogateConfig, act: str, pad_value: int):
        super().__init__()
        self.index = index
        self.double_skip = double_skip
        self.quant = quant
        self.sign1 = StreamSign(c_in, act, sur)
        self.conv1 = PaddedBinaryConv2d(c_in, c_out, 3, sur, stride=stride, pad=1, pad_value=pad_value)
        self.bn1 = nn.BatchNorm2d(c_out)
        if double_skip:
            self.sign2 = StreamSign(c_out, act, sur)
        else:
            self.act1 = BinaryActivation(act, c_out, sur)
        self.conv2 = PaddedBinaryConv2d(c_out, c_out, 3, sur, stride=1, pad=1, pad_value=pad_value)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = stride != 1 or c_in != c_out
        if self.downsample:
            self.short = BinaryConv2d(c_in, c_out, 1, sur, stride=stride)
            self.bn_short = nn.BatchNorm2d(c_out)

    def forward(self, s: Tensor, rec=_noop) -> Tensor:
        p, q = f"b{self.index}_", self.quant
        b1 = rec(p + "sign1", self.sign1(s))
        sc = s
        if self.downsample:
            sc = rec(p + "qs", stream_requant(self.short, self.bn_short, q, conv_accumulator(self.short, b1)))
        if self.double_skip:
            r1 = rec(p + "q1", stream_requant(self.conv1, self.bn1, q, conv_accumulator(self.conv1, b1)))
            s1 = rec(p + "add1", q(r1 + sc))
            b2 = rec(p + "sign2", self.sign2(s1))
            r2 = rec(p + "q2", stream_requant(self.conv2, self.bn2, q, conv_accumulator(self.conv2, b2)))
            return rec(p + "add2", q(r2 + s1))
        h = rec(p + "thr1", self.act1(self.bn1(self.conv1(b1))))
        r2 = rec(p + "q2", stream_requant(self.conv2, self.bn2, q, conv_accumulator(self.conv2, h)))
        return rec(p + "add2", q(r2 + sc))


RESIDUAL_ARCHS = {
    # arch: (blocks per stage, double skip, default widths)
    "resnet8": (1, False, [16, 32, 64]),
    "resnet20": (3, True, [16, 32, 64]),
}


class ResidualBNN(nn.Module):
    """ResNet-8 / ResNet-20 with a quantized residual stream (module docstring)."""

    def __init__(self, spec: dict, sur: SurrogateConfig, act: str):
        super().__init__()
        arch = spec["arch"]
        per_stage, double_skip, default_widths = RESIDUAL_ARCHS[arch]
        widths = [int(w) for w in (spec.get("widths") or default_widths)]
        if len(widths) != 3 or min(widths) < 1:
            raise Bnn2hwError(f"{arch}: widths must be three positive stage widths, got {widths}")
        c_in, h, w = (int(d) for d in spec["in_shape"])
        if h != w or h % 4:
            raise Bnn2hwError(f"{arch} needs square images whose side is a multiple of 4, got {h}x{w}")
        bits = int(spec["residual_bits"])
        self.bits = bits
        self.int_bits = int(spec.get("stream_int_bits", DEFAULT_STREAM_INT_BITS))
        if bits:
            self.quant = stream_quantizer(bits, self.int_bits)
            self.stream_scale = 2.0 ** -stream_frac(bits, self.int_bits)
        else:  # float stream (resnet8 --residual-bits 0): exported through calibration
            self.quant = nn.Identity()
            self.stream_scale = 1.0
        first = spec.get("first", "binary")
        from .models import PIXEL_SCALE

        if first == "binary":
            self.stem = BinaryConv2d(c_in, widths[0], 3, sur, padding=1, input_scale=PIXEL_SCALE)
        elif first == "float":
            self.stem = _FloatConv(c_in, widths[0])
        else:
            raise Bnn2hwError(f"{arch}: --first must be binary (8-bit pixels x ±1 weights) or float, "
                              f"got {first!r} (the IR has no int8 convolution)")
        self.stem_bn = nn.BatchNorm2d(widths[0])
        blocks, c, index = [], widths[0], 0
        for stage, width in enumerate(widths):
            for j in range(per_stage):
                stride = 2 if stage > 0 and j == 0 else 1
                blocks.append(ResidualBlock(index, c, width, stride, double_skip, self.quant, sur, act,
                                            int(spec.get("pad_value", -1))))
                c, index = width, index + 1
        self.blocks = nn.ModuleList(blocks)
        self.head = StreamHead(spec.get("last", "int8"), c, int(spec["num_classes"]), sur, h // 4,
                               self.stream_scale)

    def forward(self, x: Tensor, rec=_noop) -> Tensor:
        if isinstance(self.stem, BinaryConv2d):
            s = stream_requant(self.stem, self.stem_bn, self.quant, conv_accumulator(self.stem, x))
        else:
            s = self.quant(self.stem_bn(self.stem(x)))
        s = rec("stem_q", s)
        for block in self.blocks:
            s = block(s, rec)
        return self.head(s)

    @torch.no_grad()
    def trace(self, x: Tensor) -> tuple[dict, Tensor, Tensor]:
        """Eval-mode (named tensors, integer logits as float64, float logits)."""
        rec = _Recorder()
        logits = self.forward(x, rec)
        s = rec.tensors[f"b{len(self.blocks) - 1}_add2"]
        return rec.tensors, self.head.accumulate(s), logits


class _FloatConv(nn.Conv2d):
    """Full-precision padded stem on scaled pixels (``--first float``: trains, does not export)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(c_in, c_out, 3, padding=1, bias=False)

    def forward(self, x):
        from .models import PIXEL_SCALE

        return super().forward(x * PIXEL_SCALE)


class DeployableVGGSmall(nn.Module):
    """VGG-small (128-128-M-256-256-M-512-512-M, FC) as a padded binary CNN: stem 8-bit pixels x
    ±1 weights (zero padding of the pixels), then ``PaddedBinaryConv -> BN -> sign (-> max-pool)``,
    and an int8 or binary FC. Sign comes before the max-pool (FINN CNV's order): max-pool of bits
    is an OR, exact for any sign of the folded scale (BiPer's code pools the real conv output
    before BN, which commutes with the threshold only for positive scales). No stream."""

    def __init__(self, spec: dict, sur: SurrogateConfig, act: str):
        super().__init__()
        from .models import PIXEL_SCALE, ClassifierHead, _linear

        widths = [int(w) for w in (spec.get("widths") or [128, 256, 512])]
        if len(widths) != 3 or min(widths) < 1:
            raise Bnn2hwError(f"vgg-small: widths must be three positive widths, got {widths}")
        c, h, w = (int(d) for d in spec["in_shape"])
        if h != w or h % 8:
            raise Bnn2hwError(f"vgg-small needs square images whose side is a multiple of 8, got {h}x{w}")
        pad_value = int(spec.get("pad_value", -1))
        if spec.get("first", "binary") != "binary":
            raise Bnn2hwError("vgg-small (deployable): --first must be binary (8-bit pixels x ±1 weights)")
        cfg = [widths[0], widths[0], "M", widths[1], widths[1], "M", widths[2], widths[2], "M"]
        layers: list[nn.Module] = []
        c_now = c
        for i, v in enumerate(cfg):
            if v == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            if i == 0:
                conv = BinaryConv2d(c_now, v, 3, sur, padding=1, input_scale=PIXEL_SCALE)
            else:
                conv = PaddedBinaryConv2d(c_now, v, 3, sur, pad=1, pad_value=pad_value)
            layers += [conv, nn.BatchNorm2d(v), BinaryActivation(act, v, sur)]
            c_now = v
        layers.append(nn.Flatten())
        self.features = nn.Sequential(*layers)
        last = spec.get("last", "int8")
        n_in = c_now * (h // 8) * (w // 8)
        self.head = ClassifierHead(_linear(last, n_in, int(spec["num_classes"]), spec, last=True),
                                   int(spec["num_classes"]), learn_affine=last == "binary")

    def forward(self, x):
        return self.head(self.features(x))


def deployability_warnings(spec: dict) -> list[str]:
    """Reasons (naming the layer) why a model trained with ``spec`` will not export, or will
    export to one back end only; empty if it deploys to both."""
    arch, out = spec.get("arch"), []
    bits = int(spec.get("residual_bits", 0) or 0)
    if arch == "resnet8" and not bits:
        out.append("resnet8 with --residual-bits 0 has a float residual stream: export calibrates it to a "
                   "16-bit stream on the training data (not bit-exact to the float model; the accuracy "
                   "change is reported)")
    if arch in ("resnet20", "vgg-small", "resnet18", "mbiper-resnet20") and not bits:
        how = " with --residual-bits 0" if arch in ("resnet20", "vgg-small") else ""
        out.append(f"{arch}{how} is the papers' float model (layers 'stem' and 'fc' full precision, "
                   "real-valued skip paths): it trains but does not export"
                   + ("; --residual-bits 8 gives the deployable form" if how else ""))
        return out
    if arch not in ("resnet8", "resnet20", "vgg-small"):
        return out
    if spec.get("first") == "float":
        out.append(f"{arch}: layer 'stem' is full precision (--first float): it does not export "
                   "(use --first binary)")
    if spec.get("last") == "float":
        out.append(f"{arch}: layer 'head.layer' is full precision (--last float): it does not export "
                   "(use --last int8 or binary)")
    if spec.get("normalize"):
        out.append(f"{arch}: --normalize cannot be folded into layer 'stem' (it zero-pads the pixels; a "
                   "padded border is not the pixel 0 after normalization): the model will not export")
    if int(spec.get("pad_value", -1)) == 0:
        out.append(f"{arch}: --pad-value 0 (a padded tap contributes 0) deploys to C only: FINN's "
                   "FMPadding pads a binary stream with the bit 0, i.e. -1 (every padded binary conv)")
    return out
