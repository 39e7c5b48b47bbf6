# SPDX-License-Identifier: MIT
"""Deploying checkpoints of the official BiPer code (issue 10 section 3): float residual stream,
option-A shortcuts and full-precision first/last layers, through a fixed-point deployment.

The official networks (:mod:`bnn2hw.nn.biper_official`) carry real values between the binary
convs. They deploy through a *quantized twin* (:class:`QuantizedTwin`): the official eval forward
with every real value replaced by integer arithmetic, and the IR (:func:`fold_official`) is
proven equal to the twin on every stream integer, every sign bit and every integer logit
(:func:`bnn2hw.export.verify.compare_residual`). The float official model's accuracy and class
agreement against the deployed IR are measured on the user's data and reported
(:func:`bnn2hw.export.pipeline._report_calibration`): the twin is a post-training quantization,
not the float model.

The twin (all integers; ``Q(f)``: an integer q stands for ``q 2^-f``):

* stream: ``bits`` (16 by default) signed integers in Q(f) with ``f = bits - 3`` (range ±4).
  Every stream tensor of resnet20 and vgg-small is a ``hardtanh`` output, so ``[-1, 1]`` is
  its range whatever the data: the format needs no calibration. A block's BatchNorm output is
  requantized to the full ±4 range before the residual add; saturating it there and clipping
  the sum to ``[-2^f, 2^f]`` afterwards equals clipping the exact sum (a saturated BN output
  of ±4 plus a shortcut in [-1, 1] is beyond ±1 either way). ``hardtanh`` is the IR's
  ``add``/``requant`` with ``lo = -2^f, hi = 2^f``.
* requant of a BatchNorm'd accumulator ``v = A_c acc + B_c`` (real): ``q = clip(floor((acc
  mult_c + bias_c) / 2^k), lo, hi)`` with ``mult_c = round(A_c 2^(f+k))``, ``bias_c = round(B_c
  2^(f+k)) + 2^(k-1)`` (round half up) and one shift ``k`` per layer, the largest with
  ``|mult| < 2^30`` (:func:`fit_affine`): the relative error of the slope is below 2^-29 on
  the steepest channel (channels with a smaller slope keep fewer bits).
* sign of the stream: ``q >= 0 -> +1`` (the official ``torch.sign`` gives 0 on an exact 0,
  which no binary conv can take; a stream integer of 0 is the only place twin and official
  code differ by rule rather than by rounding).
* binary convs: ``conv(sign(x), sign(sin(w0 w)))`` with zero padding (a padded tap
  contributes 0), exact integers; ``alpha`` and the BatchNorm sit in the requant.
* option-A shortcut: ``AvgPool2d(2)`` is the window sum (``avgpool``) requantized by
  ``floor((s + 2) / 4)`` (round half up) to Q(f), then ``pad_channels`` (zeros).
* first conv (float, after torchvision's ``Normalize(mean, std)``, zero padding in the
  normalized space): ``W' = W / (255 std_c)`` quantized to int8 per output channel
  (``scale_o = max|W'_o| / 127``) on the uint8 pixels; the input is padded with the rounded
  mean pixel ``p_c = round(255 mean_c)`` (``pad_u8``) and the mean is taken out in the bias
  (``-scale_o sum Wq 255 mean_c``), so inside the image the conv is exact up to the int8
  weights and a padded tap contributes ``W'(p_c - 255 mean_c)`` instead of 0: at most
  ``0.5 / (255 std_c)`` per tap in normalized units (:func:`pad_error`; 0.0056, 0.0049 and
  0.0082 for the CIFAR-10 statistics).
* last layer: resnet: the global average pool is the window sum requantized by
  ``floor((s + 2^(k-1)) / 2^k)`` (``k^2 = H W``) to Q(f); ``bn2`` (BatchNorm1d) is folded into
  ``linear``, whose rows are quantized to int8 per class; ``logits = scale_o (Wq . q) + b_o``
  (the IR's ``dense`` on the stream + ``affine``). vgg-small: ``fc`` reads the flattened
  ``hardtanh`` output of ``conv5``, stored in Q(``head_frac``) so that 8192 int8 products fit
  int32; its weight columns are permuted from the official (C, H, W) order to the IR's
  (H, W, C).
* max-pool (vgg-small, ``conv -> maxpool -> BN -> hardtanh``): on the accumulator before the
  requant, ``max`` for channels with ``alpha >= 0``, ``min`` otherwise (``max(alpha a) =
  alpha max a``). The IR pools after the per-position threshold (bits) or requant (stream):
  a monotone map commutes with max/min, so a channel whose map is increasing in
  ``alpha a`` pools with OR/max; the others are stored complemented (bits) or negated
  (stream: ``-floor(y / 2^k) = floor((-y + 2^k - 1) / 2^k)``, exact) and the consumer's weight
  column is negated (``flip``, exact with zero padding).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import Bnn2hwError
from ..ir.graph import Graph, Layer
from .fold import model_hash

STREAM_BITS = 16
INT32_LIMIT = 1 << 31
BIG_THR = 1 << 40
"""Threshold standing for 'never' / 'always' (a channel whose BatchNorm slope is 0)."""


def stream_format(bits: int) -> int:
    """Q(frac) of a ``bits``-bit hardtanh stream: range ±4 (see the module docstring)."""
    if not 4 <= bits <= 16:
        raise Bnn2hwError(f"stream bits must lie in 4..16, got {bits}")
    return bits - 3


def fit_affine(a: np.ndarray, b: np.ndarray, frac: int, amax: int, name: str) -> dict:
    """Integer requant (mult, bias, shift) of ``v = a acc + b`` to Q(frac), round half up (module
    docstring); ``amax`` bounds |acc| (so |acc mult + bias| < 2^62 is checked)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise Bnn2hwError(f"layer {name}: its folded BatchNorm is not finite")
    peak_a = float(np.abs(a).max()) * 2.0 ** frac
    peak_b = float(np.abs(b).max()) * 2.0 ** frac
    k = 40
    while k > 1 and (peak_a * 2.0 ** k >= 2 ** 30 or peak_b * 2.0 ** k >= 2 ** 60
                     or (peak_a * amax + peak_b) * 2.0 ** k >= 2 ** 61):
        k -= 1
    if peak_a * 2.0 ** k >= 2 ** 30 or (peak_a * amax + peak_b) * 2.0 ** k >= 2 ** 61:
        raise Bnn2hwError(f"layer {name}: its BatchNorm slope {peak_a:.3g} (Q{frac}) is too steep for a "
                          "32-bit requant multiplier (a running variance near 0?)")
    mult = np.round(a * 2.0 ** (frac + k)).astype(np.int64)
    bias = np.round(b * 2.0 ** (frac + k)).astype(np.int64) + (1 << (k - 1))
    return {"mult": mult, "bias": bias, "shift": int(k)}


def bn_affine(bn: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """(g, h) with ``BN(x) = g x + h`` per channel, float64."""
    with torch.no_grad():
        g = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
        h = bn.bias.double() - g * bn.running_mean.double()
    return g.numpy(), h.numpy()


def pad_error(normalize: dict | None) -> list[float]:
    """Per input channel: |p_c - 255 mean_c| / (255 std_c), the normalized value a padded tap
    holds instead of 0."""
    if not normalize:
        return []
    m = np.asarray(normalize["mean"], dtype=np.float64)
    s = np.asarray(normalize["std"], dtype=np.float64)
    return [float(v) for v in np.abs(np.round(255 * m) - 255 * m) / (255 * s)]


def binary_weight(conv: nn.Module, w0: float) -> torch.Tensor:
    """``sign(sin(w0 w))`` of an official binary conv (:class:`OfficialBinaryConv`), (O, C, 3, 3)."""
    return torch.sign(torch.sin(w0 * conv.conv.weight.detach().double()))


def _alpha(conv: nn.Module) -> np.ndarray:
    return conv.conv.alpha.detach().double().reshape(-1).numpy()


class _Plan:
    """The integer parameters of the twin, by official module name, computed once from the float
    model (post-training quantization) and read by both the twin and the IR builder."""

    def __init__(self, model: nn.Module, spec: dict, bits: int):
        self.model, self.spec, self.bits = model, spec, bits
        self.frac = stream_format(bits)
        self.lo, self.hi = -(1 << self.frac), 1 << self.frac
        self.w0 = float(spec["surrogate"]["w0"])
        self.arch = spec["arch"]
        self.p: dict[str, dict] = {}
        norm = spec.get("normalize")
        c = int(spec["in_shape"][0])
        self.mean = np.asarray(norm["mean"] if norm else [0.0] * c, dtype=np.float64)
        self.std = np.asarray(norm["std"] if norm else [1.0] * c, dtype=np.float64)
        self.pad_u8 = np.round(255 * self.mean).astype(np.int64)
        if self.pad_u8.min() < 0 or self.pad_u8.max() > 255:
            raise Bnn2hwError(f"the input Normalize mean {list(self.mean)} is outside [0, 1]: its padding "
                              "value is not a uint8 pixel")

    def first(self, conv: nn.Conv2d, bn: nn.Module, name: str, frac: int, levels: int = 127) -> dict:
        """int8 (``levels`` 127) weights per output channel; other ``levels`` only for the
        twin-only diagnostics of benchmarks/bench_biper_official.py (the IR takes int8)."""
        w = conv.weight.detach().double().numpy() / (255.0 * self.std.reshape(1, -1, 1, 1))
        peak = np.abs(w).reshape(len(w), -1).max(1)
        scale = np.where(peak > 0, peak / levels, 1.0)
        wq = np.clip(np.round(w / scale.reshape(-1, 1, 1, 1)), -levels, levels).astype(np.int64)
        cbias = -scale * (wq * (255.0 * self.mean).reshape(1, -1, 1, 1)).sum(axis=(1, 2, 3))
        g, h = bn_affine(bn)
        amax = int(255 * np.abs(wq).reshape(len(wq), -1).sum(1).max())
        rq = fit_affine(g * scale, g * cbias + h, frac, amax, name)
        self.p[name] = {"wq": wq, **rq, "amax": amax}
        return self.p[name]

    def binary(self, conv: nn.Module, bn: nn.Module, name: str, frac: int) -> dict:
        g, h = bn_affine(bn)
        amax = int(np.prod(conv.conv.weight.shape[1:]))
        rq = fit_affine(g * _alpha(conv), h, frac, amax, name)
        self.p[name] = {**rq, "amax": amax, "alpha_sign": np.where(_alpha(conv) >= 0, 1, -1)}
        return self.p[name]


def _rq(x: torch.Tensor, p: dict, lo: int, hi: int) -> torch.Tensor:
    """``clip(floor((x mult + bias) / 2^shift), lo, hi)`` on an NCHW or NC int64 tensor."""
    shape = (1, -1) + (1,) * (x.dim() - 2)
    m = torch.as_tensor(p["mult"]).view(shape)
    b = torch.as_tensor(p["bias"]).view(shape)
    v = torch.div(x.long() * m + b, 1 << p["shift"], rounding_mode="floor")
    return v.clamp(lo, hi)


def _mean_of_sum(s: torch.Tensor, shift: int) -> torch.Tensor:
    return torch.div(s + (1 << (shift - 1)), 1 << shift, rounding_mode="floor")


def _conv(x: torch.Tensor, w: torch.Tensor, stride: int, pad: int) -> torch.Tensor:
    """Exact integer conv (float64 sums of integers below 2^53)."""
    return torch.round(F.conv2d(x.double(), w.double(), None, stride, pad)).long()


def _sign(q: torch.Tensor) -> torch.Tensor:
    return torch.where(q >= 0, 1, -1).long()


class QuantizedTwin(nn.Module):
    """The official eval forward in integer arithmetic (module docstring). ``trace(x)`` returns
    (named int64 tensors in integer units, NCHW, keyed by IR tensor name; integer logits; float
    logits) as :func:`bnn2hw.export.verify.compare_residual` expects (``stream_scale`` 1: the
    tensors are already the integers)."""

    stream_scale = 1.0

    def __init__(self, plan: _Plan):
        super().__init__()
        self.plan = plan

    def forward(self, x):
        return self.trace(x)[2]

    @torch.no_grad()
    def trace(self, x: torch.Tensor):
        pl = self.plan
        x = x.double()
        pad = torch.as_tensor(pl.pad_u8, dtype=torch.float64).view(1, -1, 1, 1)
        xp = F.pad(x - pad, (1, 1, 1, 1)) + pad  # uint8 pixels, padded with the mean pixel
        if pl.arch == "vgg-small":
            return self._vgg(xp)
        return self._resnet(xp)

    def _first(self, xp, name, lo, hi):
        p = self.plan.p[name]
        return _rq(_conv(xp, torch.as_tensor(p["wq"]), 1, 0), p, lo, hi)

    def _resnet(self, xp):
        pl, m, named = self.plan, self.plan.model, {}
        r18 = pl.arch == "resnet18"
        lo, hi = pl.lo, pl.hi
        full = (-(1 << (pl.bits - 1)), (1 << (pl.bits - 1)) - 1)
        s = self._first(xp, "conv1", *(full if r18 else (lo, hi)))
        named["stem_q"] = s
        for bname, block in _blocks(m):
            p = _ir(bname)
            stride = block.conv1.conv.stride[0]
            b1 = _sign(s)
            named[p + "sign1"] = b1
            a1 = _conv(b1, binary_weight(block.conv1, pl.w0), stride, 1)
            sc = s
            if not isinstance(block.shortcut, nn.Sequential):
                ssum = F.avg_pool2d(s.double(), 2) * 4
                sc = _mean_of_sum(torch.round(ssum).long(), 2)
                named[p + "qs"] = sc
                if block.shortcut.pad:
                    sc = F.pad(sc, (0, 0, 0, 0, block.shortcut.pad, block.shortcut.pad))
                    named[p + "short"] = sc
            if r18:  # out = hardtanh(BN1(conv1(x))); h = hardtanh(BN2(conv2(out)) + shortcut(x))
                b2 = _sign(_rq(a1, pl.p[bname + ".bn1"], lo, hi))
                named[p + "thr1"] = b2
                r2 = _rq(_conv(b2, binary_weight(block.conv2, pl.w0), 1, 1), pl.p[bname + ".bn2"], *full)
                named[p + "q2"] = r2
                s = (r2 + sc).clamp(lo, hi)
                named[p + "add2"] = s
                continue
            r1 = _rq(a1, pl.p[bname + ".bn1"], *full)
            named[p + "q1"] = r1
            s1 = (r1 + sc).clamp(lo, hi)
            named[p + "add1"] = s1
            b2 = _sign(s1)
            named[p + "sign2"] = b2
            r2 = _rq(_conv(b2, binary_weight(block.conv2, pl.w0), 1, 1), pl.p[bname + ".bn2"], *full)
            named[p + "q2"] = r2
            s = (r2 + s1).clamp(lo, hi)
            named[p + "add2"] = s
        k = s.shape[-1] if not r18 else 4
        ssum = torch.round(F.avg_pool2d(s.double(), k) * k * k).long()
        named["pool"] = ssum
        shift = pl.p["pool"]["shift"]
        avg = _mean_of_sum(ssum, shift) if shift else ssum
        named["avg"] = avg
        head = pl.p["linear"]
        acc = avg.flatten(1) @ torch.as_tensor(head["wq"]).T
        logits = acc.double() * torch.as_tensor(head["scale"]) + torch.as_tensor(head["bias"])
        return named, acc, logits

    def _vgg(self, xp):
        pl, m, named = self.plan, self.plan.model, {}
        lo, hi = pl.lo, pl.hi
        b = _sign(self._first(xp, "conv0", lo, hi))
        named["t0"] = b
        for i in range(1, 6):
            p = pl.p[f"bn{i}"]
            a = _conv(b, binary_weight(getattr(m, f"conv{i}"), pl.w0), 1, 1)
            if i in (1, 3, 5):  # max-pool of alpha * acc: max of acc (alpha >= 0) or min (alpha < 0)
                sg = torch.as_tensor(p["alpha_sign"]).view(1, -1, 1, 1)
                a = torch.round(F.max_pool2d((a * sg).double(), 2, 2)).long() * sg
            flip = torch.as_tensor(p["flip"]).view(1, -1, 1, 1)
            if i < 5:
                b = _sign(_rq(a, p, lo, hi))
                named[f"p{i}" if i in (1, 3) else f"t{i}"] = b * flip  # the IR stores flipped channels
                continue
            q = _rq(a, p, -(1 << pl.head_frac), 1 << pl.head_frac)
            named["p5"] = q * flip
        head = pl.p["fc"]
        acc = q.flatten(1) @ torch.as_tensor(head["wq"]).T  # official (C, H, W) order
        logits = acc.double() * torch.as_tensor(head["scale"]) + torch.as_tensor(head["bias"])
        return named, acc, logits


def _blocks(model):
    for i in range(1, 5):
        layer = getattr(model, f"layer{i}", None)
        if layer is None:
            break
        for j, block in enumerate(layer):
            yield f"layer{i}.{j}", block


def _ir(bname: str) -> str:
    """IR prefix of an official block name: layer2.0 -> l2_0_."""
    return "l" + bname[len("layer"):].replace(".", "_") + "_"


def _head(pl: _Plan, lin: nn.Linear, in_scale: np.ndarray, in_bias: np.ndarray, name: str) -> dict:
    """``logits = W (in_scale q + in_bias) + b`` with int8 rows: (wq, scale, bias) (module doc)."""
    w = lin.weight.detach().double().numpy()
    weff = w * in_scale.reshape(1, -1)
    peak = np.abs(weff).max(1)
    scale = np.where(peak > 0, peak / 127.0, 1.0)
    wq = np.clip(np.round(weff / scale.reshape(-1, 1)), -127, 127).astype(np.int64)
    bias = w @ in_bias + lin.bias.detach().double().numpy()
    pl.p[name] = {"wq": wq, "scale": scale, "bias": bias}
    return pl.p[name]


def _threshold_of(p: dict) -> tuple[np.ndarray, np.ndarray]:
    """(thr, direction) with ``threshold(a) == (requant(a) >= 0)`` for every integer a:
    ``floor(y / 2^k) >= 0 <=> y = a mult + bias >= 0`` (lo < 0 < hi: the clip keeps the sign)."""
    m, b = p["mult"].astype(np.int64), p["bias"].astype(np.int64)
    thr = np.empty(len(m), dtype=np.int64)
    d = np.ones(len(m), dtype=np.int8)
    for c in range(len(m)):
        if m[c] > 0:
            thr[c] = -(b[c] // m[c])  # a >= ceil(-b / m)
        elif m[c] < 0:
            thr[c], d[c] = b[c] // (-m[c]), -1  # a <= floor(b / -m)
        else:
            thr[c] = -BIG_THR if b[c] >= 0 else BIG_THR
    return thr, d


CALIBRATION_HEADROOM = 2.0


@torch.no_grad()
def stem_peak(model: nn.Module, x_u8: np.ndarray, batch: int = 256) -> float:
    """max |bn1(conv1(x))| of the float model on ``x_u8`` (resnet18's stem is not clipped)."""
    from ..train import as_float

    peak = [0.0]
    hook = model.bn1.register_forward_hook(lambda _m, _i, out: peak.__setitem__(0, max(peak[0],
                                                                                       float(out.abs().max()))))
    try:
        for i in range(0, len(x_u8), batch):
            model(as_float(x_u8[i:i + batch]))
    finally:
        hook.remove()
    return peak[0]


def plan_official(model: nn.Module, spec: dict, bits: int = STREAM_BITS, x_calib: np.ndarray | None = None) -> _Plan:
    """The twin's integer parameters for an official resnet20 / resnet18 / vgg-small.

    resnet18's stem output (``bn1(conv1(x))``, no hardtanh) is the one unbounded stream tensor:
    its integer bits are calibrated on ``x_calib`` (``CALIBRATION_HEADROOM`` times the largest
    magnitude, at least ±4), which is then required."""
    model.eval()
    pl = _Plan(model, spec, bits)
    pl.calibration = {"stream_bits": bits, "stream_frac": pl.frac, "max_abs_stream": 1.0,
                      "calibration_samples": 0, "format": "hardtanh-bounded: [-1, 1] in a ±4 range"}
    if pl.arch == "resnet18":
        if x_calib is None:
            raise Bnn2hwError("an official resnet18's stem output is not clipped: its stream format is calibrated "
                              "on data; pass --dataset")
        peak = stem_peak(model, x_calib)
        int_bits = max(2, math.ceil(math.log2(max(peak * CALIBRATION_HEADROOM, 1.0))))
        if int_bits > bits - 3:
            raise Bnn2hwError(f"layer bn1: the stem reaches {peak:.4g}; a {bits}-bit stream cannot hold it with "
                              f"{CALIBRATION_HEADROOM}x headroom and 2 fraction bits")
        pl.frac = bits - 1 - int_bits
        pl.lo, pl.hi = -(1 << pl.frac), 1 << pl.frac
        pl.calibration.update(stream_frac=pl.frac, max_abs_stream=peak, calibration_samples=len(x_calib),
                              format=f"stem calibrated: ±{2 ** int_bits} range ({CALIBRATION_HEADROOM}x headroom)")
    f = pl.frac
    if pl.arch == "vgg-small":
        pl.first(model.conv0, model.bn0, "conv0", f)
        fan_in = model.fc.in_features
        pl.head_frac = math.floor(math.log2((INT32_LIMIT - 1) / (127 * fan_in))) - 1
        if pl.head_frac < 1:
            raise Bnn2hwError(f"layer fc: {fan_in} inputs leave no fraction bits for an int32 accumulator")
        pl.head_frac = min(pl.head_frac, f)
        for i in range(1, 6):
            p = pl.binary(getattr(model, f"conv{i}"), getattr(model, f"bn{i}"), f"bn{i}",
                          pl.head_frac if i == 5 else f)
            up = p["mult"] >= 0
            pooled = i in (1, 3, 5)
            p["flip"] = np.where(pooled & (p["mult"] != 0) & (up != (p["alpha_sign"] > 0)), -1, 1)
        h = model.fc.in_features // 512
        side = math.isqrt(h)
        hd = _head(pl, model.fc, np.full(model.fc.in_features, 2.0 ** -pl.head_frac),
                   np.zeros(model.fc.in_features), "fc")
        hd["side"] = side
        return pl
    pl.first(model.conv1, model.bn1, "conv1", f)
    for bname, block in _blocks(model):
        pl.binary(block.conv1, block.bn1, bname + ".bn1", f)
        pl.binary(block.conv2, block.bn2, bname + ".bn2", f)
    g, h = bn_affine(model.bn2)
    return _finish_resnet_head(pl, model, g, h)


def _finish_resnet_head(pl: _Plan, model, g, h) -> _Plan:
    side = int(pl.spec["in_shape"][1]) // 4 if pl.arch == "resnet20" else 4  # global pool / avg_pool2d(out, 4)
    if side & (side - 1):
        raise Bnn2hwError(f"the final {side}x{side} average pool of this {pl.arch} is not a power-of-two window: "
                          "its mean is not a shift of the window sum (use 32x32 or 64x64 inputs)")
    pl.p["pool"] = {"shift": 2 * (side.bit_length() - 1), "window": side}
    _head(pl, model.linear, g * 2.0 ** -pl.frac, h, "linear")
    return pl


def _rq_layer(name: str, src: str, source: str, p: dict, bits: int, frac: int, lo=None, hi=None,
              neg: np.ndarray | None = None) -> Layer:
    mult, bias, k = p["mult"].astype(np.int64), p["bias"].astype(np.int64), p["shift"]
    if neg is not None:  # store -q on these channels: -floor(y/2^k) = floor((-y + 2^k - 1)/2^k)
        mult = np.where(neg, -mult, mult)
        bias = np.where(neg, -bias + (1 << k) - 1, bias)
    attrs = {"shift": k, "bits": bits, "frac": frac}
    if lo is not None:
        attrs.update(lo=int(lo), hi=int(hi))
    return Layer("requant", name, source, attrs, {"mult": mult, "bias": bias}, [src])


def _sum_layer(name: str, src: str, source: str, shift: int, channels: int, bits: int, frac: int) -> Layer:
    """Requant of a window sum of 2^shift values to their mean (round half up) in Q(frac)."""
    return Layer("requant", name, source, {"shift": shift, "bits": bits, "frac": frac},
                 {"mult": np.ones(channels, dtype=np.int64),
                  "bias": np.full(channels, (1 << (shift - 1)) if shift else 0, dtype=np.int64)}, [src])


def _bin_w(conv: nn.Module, w0: float, flip_in: np.ndarray | None = None) -> np.ndarray:
    """IR weights (O, kh, kw, C) int8 ±1, input channels with flip_in = -1 negated."""
    w = binary_weight(conv, w0).numpy().transpose(0, 2, 3, 1)
    if not np.all((w == 1) | (w == -1)):
        raise Bnn2hwError("a latent weight gives sin(w0 w) = 0 (no binary value)")
    if flip_in is not None:
        w = w * flip_in.reshape(1, 1, 1, -1)
    return np.ascontiguousarray(w.astype(np.int8))


def _first_layer(pl: _Plan, name: str, src_name: str, c_in: int) -> Layer:
    p = pl.p[src_name]
    w = np.ascontiguousarray(p["wq"].transpose(0, 2, 3, 1).astype(np.int8))
    return Layer("conv2d", name, f"{src_name} (int8, Normalize folded)",
                 {"in": "u8", "stride": 1, "pad": 1, "weight_kind": "int8"},
                 {"weight": w, "pad_u8": pl.pad_u8.copy()}, ["input"])


def fold_official(plan: _Plan, meta: dict | None = None) -> Graph:
    """The IR of the twin (names equal :meth:`QuantizedTwin.trace`'s)."""
    pl, m = plan, plan.model
    c, hgt, wid = (int(d) for d in pl.spec["in_shape"])
    bits, f, lo, hi = pl.bits, pl.frac, pl.lo, pl.hi
    L: list[Layer] = []
    if pl.arch == "vgg-small":
        L.append(_first_layer(pl, "conv0", "conv0", c))
        thr, d = _threshold_of(pl.p["conv0"])
        L.append(Layer("threshold", "t0", "bn0 -> hardtanh -> sign", {}, {"thr": thr, "direction": d}))
        flip_in = None
        for i in range(1, 6):
            p = pl.p[f"bn{i}"]
            conv = getattr(m, f"conv{i}")
            L.append(Layer("conv2d", f"conv{i}", f"conv{i}", {"in": "bits", "stride": 1, "pad": 1,
                                                             "weight_kind": "binary", "pad_value": 0},
                           {"weight": _bin_w(conv, pl.w0, flip_in)}))
            flip = p["flip"]
            if i < 5:
                thr, d = _threshold_of(p)
                neg = flip < 0  # complement: not(a >= t) = a <= t - 1, not(a <= t) = a >= t + 1
                thr = np.where(neg, np.where(d > 0, thr - 1, thr + 1), thr)
                d = np.where(neg, -d, d).astype(np.int8)
                tname = f"t{i}" if i not in (1, 3) else f"s{i}"
                L.append(Layer("threshold", tname, f"bn{i} -> hardtanh -> sign", {}, {"thr": thr, "direction": d}))
                if i in (1, 3):
                    L.append(Layer("maxpool", f"p{i}", "pooling", {"kernel": 2, "stride": 2}, {}))
            else:
                hb = pl.head_frac + 2
                L.append(_rq_layer("q5", "conv5", "bn5 -> hardtanh", p, hb, pl.head_frac,
                                   -(1 << pl.head_frac), 1 << pl.head_frac, neg=flip < 0))
                L.append(Layer("maxpool", "p5", "pooling", {"kernel": 2, "stride": 2}, {}))
            flip_in = flip
        side = pl.p["fc"]["side"]
        wq = pl.p["fc"]["wq"]
        o = wq.shape[0]
        w = wq.reshape(o, 512, side, side).transpose(0, 2, 3, 1) * flip_in.reshape(1, 1, 1, -1)
        L.append(Layer("flatten", "flat", "view(N, -1)", {}, {}))
        L.append(Layer("dense", "fc", "fc (int8)", {"in": "fixed", "weight_kind": "int8"},
                       {"weight": np.ascontiguousarray(w.reshape(o, -1).astype(np.int8))}))
        L.append(Layer("affine", "logits", "fc", {}, {"scale": pl.p["fc"]["scale"], "bias": pl.p["fc"]["bias"]}))
    else:
        r18 = pl.arch == "resnet18"
        L.append(_first_layer(pl, "stem", "conv1", c))
        L.append(_rq_layer("stem_q", "stem", "bn1" + ("" if r18 else " -> hardtanh"), pl.p["conv1"], bits, f,
                           *((None, None) if r18 else (lo, hi))))
        s = "stem_q"
        for bname, block in _blocks(m):
            p = _ir(bname)
            stride = block.conv1.conv.stride[0]
            sc = s
            if not isinstance(block.shortcut, nn.Sequential):
                cs = _ch(L, s)
                L.append(Layer("avgpool", p + "sum", f"{bname}.shortcut (AvgPool2d(2) sum)",
                               {"kernel": 2, "stride": 2}, {}, [s]))
                L.append(_sum_layer(p + "qs", p + "sum", f"{bname}.shortcut (mean)", 2, cs, bits, f))
                sc = p + "qs"
                if block.shortcut.pad:
                    L.append(Layer("pad_channels", p + "short", f"{bname}.shortcut (channel pad)",
                                   {"before": block.shortcut.pad, "after": block.shortcut.pad}, {}, [sc]))
                    sc = p + "short"
            L.append(Layer("threshold", p + "sign1", f"{bname}.conv1 (sign)", {"sign_of": "fixed"},
                           {"thr": np.zeros(_ch(L, s), dtype=np.int64),
                            "direction": np.ones(_ch(L, s), dtype=np.int8)}, [s]))
            L.append(Layer("conv2d", p + "conv1", f"{bname}.conv1", {"in": "bits", "stride": stride, "pad": 1,
                                                                   "weight_kind": "binary", "pad_value": 0},
                           {"weight": _bin_w(block.conv1, pl.w0)}))
            if r18:
                thr, d = _threshold_of(pl.p[bname + ".bn1"])
                L.append(Layer("threshold", p + "thr1", f"{bname}.bn1 -> hardtanh -> sign", {},
                               {"thr": thr, "direction": d}, [p + "conv1"]))
                L.append(Layer("conv2d", p + "conv2", f"{bname}.conv2",
                               {"in": "bits", "stride": 1, "pad": 1, "weight_kind": "binary", "pad_value": 0},
                               {"weight": _bin_w(block.conv2, pl.w0)}))
                L.append(_rq_layer(p + "q2", p + "conv2", f"{bname}.bn2", pl.p[bname + ".bn2"], bits, f))
                L.append(Layer("add", p + "add2", f"{bname} residual -> hardtanh",
                               {"frac": f, "bits": bits, "lo": lo, "hi": hi}, {}, [p + "q2", sc]))
                s = p + "add2"
                continue
            L.append(_rq_layer(p + "q1", p + "conv1", f"{bname}.bn1", pl.p[bname + ".bn1"], bits, f))
            L.append(Layer("add", p + "add1", f"{bname} residual 1 -> hardtanh",
                           {"frac": f, "bits": bits, "lo": lo, "hi": hi}, {}, [p + "q1", sc]))
            L.append(Layer("threshold", p + "sign2", f"{bname}.conv2 (sign)", {"sign_of": "fixed"},
                           {"thr": np.zeros(_ch(L, p + "q1"), dtype=np.int64),
                            "direction": np.ones(_ch(L, p + "q1"), dtype=np.int8)}, [p + "add1"]))
            L.append(Layer("conv2d", p + "conv2", f"{bname}.conv2", {"in": "bits", "stride": 1, "pad": 1,
                                                                   "weight_kind": "binary", "pad_value": 0},
                           {"weight": _bin_w(block.conv2, pl.w0)}))
            L.append(_rq_layer(p + "q2", p + "conv2", f"{bname}.bn2", pl.p[bname + ".bn2"], bits, f))
            L.append(Layer("add", p + "add2", f"{bname} residual 2 -> hardtanh",
                           {"frac": f, "bits": bits, "lo": lo, "hi": hi}, {}, [p + "q2", p + "add1"]))
            s = p + "add2"
        k = pl.p["pool"]["window"]
        L.append(Layer("avgpool", "pool", "avg_pool2d (sum)", {"kernel": k, "stride": k}, {}, [s]))
        L.append(_sum_layer("avg", "pool", "avg_pool2d (mean)", pl.p["pool"]["shift"], _ch(L, s), bits, f))
        L.append(Layer("flatten", "flat", "view(N, -1)", {}, {}))
        hd = pl.p["linear"]
        L.append(Layer("dense", "fc", "bn2 + linear (int8)", {"in": "fixed", "weight_kind": "int8"},
                       {"weight": hd["wq"].astype(np.int8)}))
        L.append(Layer("affine", "logits", "linear", {}, {"scale": hd["scale"], "bias": hd["bias"]}))
    sur = pl.spec.get("surrogate", {})
    gmeta = {"model_hash": model_hash(m), "surrogate": sur.get("name"), "w0": sur.get("w0"),
             "arch": pl.arch, "official_biper": True, "residual_bits": bits, "stream_frac": f,
             "pad_u8": [int(v) for v in pl.pad_u8], "pad_error_normalized": pad_error(pl.spec.get("normalize")),
             **(meta or {})}
    if pl.arch == "vgg-small":
        gmeta["head_frac"] = pl.head_frac
    return Graph((hgt, wid, c), L, 1.0, gmeta)


def _ch(layers: list[Layer], name: str) -> int:
    """Channel count of tensor ``name`` (from the weights of the layer that made it or its source)."""
    by = {l.name: l for l in layers}
    while True:
        l = by[name]
        if l.op in ("conv2d", "dense"):
            return int(l.arrays["weight"].shape[0])
        if l.op == "pad_channels":
            return _ch(layers, l.inputs[0]) + l.attrs["before"] + l.attrs["after"]
        if "mult" in l.arrays:
            return len(l.arrays["mult"])
        name = l.inputs[0] if l.inputs else layers[layers.index(l) - 1].name


def is_official(spec: dict) -> bool:
    return bool(spec.get("official_biper"))


def export_official(model: nn.Module, spec: dict, meta: dict | None = None, bits: int = STREAM_BITS,
                    x_calib: np.ndarray | None = None):
    """(graph, twin, calibration info) of an official BiPer model (see the module docstring)."""
    if spec.get("arch") not in ("resnet20", "resnet18", "vgg-small"):
        raise Bnn2hwError(f"official BiPer architecture {spec.get('arch')!r} is not deployable")
    plan = plan_official(model, spec, bits, x_calib)
    graph = fold_official(plan, meta)
    return graph, QuantizedTwin(plan), dict(plan.calibration)
