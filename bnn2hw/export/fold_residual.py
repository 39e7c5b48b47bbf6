# SPDX-License-Identifier: MIT
"""Folding a quantized-stream residual BNN (:mod:`bnn2hw.nn.residual`) into the graph IR.

Every decision the IR makes is a function of one integer per channel (a conv accumulator, or a
stream integer), over a finite range. The folder evaluates PyTorch's own eval-mode modules in
float32 on *every* integer of that range, for every channel, at every output position of the
layer's real shape (so a result that depended on the position, e.g. a vectorised tail, is
caught), and then proves the integer op equal on the whole table:

* :func:`fold_requant` -- ``Q(BN(conv(.)))`` becomes ``requant``: per channel integers ``mult``,
  ``bias`` and one ``shift`` with ``clip((acc * mult + bias) >> shift) == q_torch(acc)`` for every
  reachable ``acc`` (:func:`fit_requant`), else :class:`Bnn2hwError` naming layer and channel.
* :func:`fold_table_threshold` -- ``sign(BN(conv(.)))`` and ``sign(s + beta)`` become
  ``threshold``: ``acc >= thr`` (direction +1) or ``acc <= thr`` (-1), ties included (the tie
  rule 0 -> +1 is what PyTorch computed at that integer).
* the residual sum is an exact integer ``add`` saturated to ``bits`` (the shared stream
  quantizer re-quantizes a sum of two grid values, which only clamps);
* the global average pool is ``avgpool`` (window sum) and its ``1/k^2`` sits in the logits'
  affine next to the stream scale ``2^-frac``; the head's accumulator is integer in PyTorch too
  (:class:`bnn2hw.nn.residual.StreamHead`).

Requant derivation. PyTorch computes ``q(a) = clip(rhu(fl32(BN(a * gamma * s)) / 2^-frac))`` with
``rhu`` round half up: a monotone step function of the integer ``a`` (every float32 op is
monotone). ``floor((a m + c) / 2^k)`` equals ``q(a)`` on the unsaturated range iff for each ``a``
``q(a) 2^k <= a m + c <= (q(a) + 1) 2^k - 1`` (only the lower bound where ``q`` is the top code,
only the upper where it is the bottom code). For fixed ``k`` and ``m`` the admissible ``c``
form the interval ``[max_a(lo_a - a m), min_a(hi_a - a m)]``; its emptiness
``g(m) = max_a(lo_a - a m) + max_a(a m - hi_a)`` is convex in ``m``, so an integer ternary search
around the real slope ``m* = a_real 2^k`` finds a feasible ``m`` if one exists, and feasibility
is monotone in ``k`` (``(2m, 2c)`` works at ``k + 1``), so ``k`` is found by bisection. The rule
``+2^(k-1)`` of round half up is inside ``c``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import Bnn2hwError
from ..ir.graph import Graph, Layer
from ..nn.layers import BinaryConv2d, BinaryLinear, Int8Linear
from ..nn.residual import (DeployableVGGSmall, PaddedBinaryConv2d, ResidualBNN, StreamHead,
                           stream_frac, stream_requant)
from .fold import binarize_weights, int8_weights, model_hash

SHIFT_MAX = 40
"""Largest requant shift searched; with it ``|acc * mult + bias| < 2^62`` is checked."""
EVAL_CHUNK = 1 << 22
"""Float elements per evaluation batch of the enumerations."""


PROBE_WIDTH = 17
"""Positions per channel in the enumerations: one vector body (16 lanes) plus a scalar tail."""
EVAL_BUDGET = 1 << 24
"""Float elements per enumeration; large tables (16-bit stream signs) probe fewer positions (>= 2)."""


@torch.no_grad()
def evaluate_table(fn, values: np.ndarray, channels: int, spatial: tuple[int, int], name: str,
                   width: int = PROBE_WIDTH) -> np.ndarray:
    """``fn`` (a float32 torch function of an (n, C, H, W) tensor) on every integer of
    ``values`` broadcast to every channel and to a row of positions (``PROBE_WIDTH``, or the
    layer's own size if smaller: vectorised and scalar code paths both); returns
    (C, len(values)) float64. Raises if the result differs between positions (the decision must
    be a function of the channel and the integer alone)."""
    budget = max(2, EVAL_BUDGET // max(1, len(values) * channels))
    h, w = 1, min(width, budget, spatial[0] * spatial[1])
    per = max(1, EVAL_CHUNK // max(1, channels * h * w))
    out = np.empty((channels, len(values)), dtype=np.float64)
    for i in range(0, len(values), per):
        v = torch.tensor(values[i:i + per], dtype=torch.float32)
        x = v.view(-1, 1, 1, 1).expand(len(v), channels, h, w).contiguous()
        y = fn(x).reshape(len(v), channels, h * w)
        if not torch.all(y == y[:, :, :1]):
            raise Bnn2hwError(f"layer {name}: PyTorch's result for one accumulator value depends on "
                              "the output position; it cannot be folded per channel")
        out[:, i:i + per] = y[:, :, 0].double().numpy().T
    return out


def _g(m: np.ndarray, a: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For slopes ``m`` (C,): (g(m), max(lo - a m), min(hi - a m)) over the table (C, N)."""
    am = m[:, None] * a[None, :]
    low = np.max(lo - am, axis=1)
    high = np.min(hi - am, axis=1)
    return low - high, low, high


BIG = 1 << 61


MULT_LIMIT = 1 << 31
"""|mult| must stay below 2^31 (validate(): ``x * mult + bias`` fits int64 for |x| < 2^31)."""


def _feasible(q: np.ndarray, a: np.ndarray, qmin: int, qmax: int, k: int, slope: np.ndarray):
    """(ok (C,), mult (C,), bias (C,)) at shift ``k`` (see module docstring), with the feasible
    ``mult`` of smallest magnitude (a steep channel that saturates almost everywhere needs only
    a few of its steps reproduced, so its ``mult`` can be far below ``slope * 2^k``)."""
    one = np.int64(1) << np.int64(k)
    lo = np.where(q > qmin, q * one, -BIG)
    hi = np.where(q < qmax, (q + 1) * one - 1, BIG)
    centre = np.round(slope * float(one)).astype(np.int64)
    left = np.minimum(0, 2 * centre) - 64
    right = np.maximum(0, 2 * centre) + 64
    while True:  # ternary search for the minimum of the convex g
        active = right - left > 2
        if not active.any():
            break
        m1 = left + (right - left) // 3
        m2 = right - (right - left) // 3
        g1 = _g(m1, a, lo, hi)[0]
        g2 = _g(m2, a, lo, hi)[0]
        left = np.where(active & (g1 > g2), m1, left)
        right = np.where(active & (g1 < g2), m2, right)
        both = active & (g1 == g2)
        left = np.where(both, m1, left)
        right = np.where(both, m2, right)
    best_g = np.full(len(q), np.iinfo(np.int64).max)
    best_m = left.copy()
    for off in range(3):
        m = np.minimum(left + off, right)
        g = _g(m, a, lo, hi)[0]
        better = g < best_g
        best_g = np.where(better, g, best_g)
        best_m = np.where(better, m, best_m)
    ok = best_g <= 0
    # {g <= 0} is an interval containing best_m: move towards 0 to its end (bisection)
    zero_ok = _g(np.zeros_like(best_m), a, lo, hi)[0] <= 0
    near, far = np.zeros_like(best_m), best_m.copy()  # g(near) > 0 unless zero_ok, g(far) <= 0
    while True:
        active = ok & ~zero_ok & (np.abs(far - near) > 1)
        if not active.any():
            break
        mid = near + (far - near) // 2
        g = _g(mid, a, lo, hi)[0]
        far = np.where(active & (g <= 0), mid, far)
        near = np.where(active & (g > 0), mid, near)
    mult = np.where(zero_ok, 0, far)
    _, low, high = _g(mult, a, lo, hi)
    # a channel with no lower bound at all (always the bottom code) takes c from the upper side
    bias = np.where(low <= -BIG // 2, high, low)
    return ok, mult, bias


def requant_int(acc: np.ndarray, mult: np.ndarray, bias: np.ndarray, shift: int, bits: int) -> np.ndarray:
    """The IR's ``requant`` (graph.py): ``clip((x * mult + bias) >> shift, -2^(b-1), 2^(b-1)-1)``
    for accumulators ``acc`` (N,) and per-channel parameters; returns (C, N)."""
    v = (acc[None, :].astype(np.int64) * mult[:, None] + bias[:, None]) >> np.int64(shift)
    return np.clip(v, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def fit_requant(q: np.ndarray, accs: np.ndarray, bits: int, slope: np.ndarray, name: str):
    """Integers (mult (C,), bias (C,), shift) with :func:`requant_int` equal to ``q`` (C, N) on
    every accumulator in ``accs``; :class:`Bnn2hwError` naming the channel if none exists."""
    qmin, qmax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    q = q.astype(np.int64)
    a = accs.astype(np.int64)
    amax = max(1, int(np.abs(a).max()))
    cap = SHIFT_MAX
    smax = float(np.abs(slope).max()) if slope.size else 0.0
    while cap > 0 and (smax * 2.0 ** cap * 1.5 + 64) * amax >= 2.0 ** 59:
        cap -= 1
    ok_cap, _, _ = _feasible(q, a, qmin, qmax, cap, slope)
    if not ok_cap.all():
        c = int(np.flatnonzero(~ok_cap)[0])
        raise Bnn2hwError(f"layer {name}, channel {c}: no integer multiply-add-shift (shift <= {cap}, "
                          "any mult) reproduces PyTorch's requantization on every accumulator "
                          "value (its rounding is not a linear floor); retrain or change the stream bits")
    # smallest shift per channel (feasibility is monotone in the shift), then one shared shift
    lo_k = np.zeros(len(q), dtype=np.int64)
    hi_k = np.full(len(q), cap, dtype=np.int64)
    while (lo_k < hi_k).any():
        mid = (lo_k + hi_k) // 2
        ok = np.zeros(len(q), dtype=bool)
        for k in np.unique(mid[lo_k < hi_k]):
            sel = (mid == k) & (lo_k < hi_k)
            ok_k, _, _ = _feasible(q[sel], a, qmin, qmax, int(k), slope[sel])
            ok[np.flatnonzero(sel)] = ok_k
        hi_k = np.where((lo_k < hi_k) & ok, mid, hi_k)
        lo_k = np.where((lo_k < hi_k) & ~ok, mid + 1, lo_k)
    shift = int(hi_k.max())
    ok, mult, bias = _feasible(q, a, qmin, qmax, shift, slope)
    ok &= np.abs(mult) < MULT_LIMIT
    if not ok.all():  # the shift one channel needs makes another's mult reach 2^31
        c = int(np.flatnonzero(~ok)[0])
        raise Bnn2hwError(f"layer {name}, channel {c}: requantization needs |mult| >= 2^31 at the "
                          f"layer's shift {shift} (another channel needs that shift); the channels' "
                          "scales are too far apart for one shift")
    got = requant_int(a, mult, bias, shift, bits)
    bad = np.argwhere(got != q)
    if len(bad):
        c, i = bad[0]
        raise Bnn2hwError(f"layer {name}, channel {c}: requant gives {got[c, i]} for accumulator "
                          f"{a[i]}, PyTorch {q[c, i]}")
    return mult.astype(np.int64), bias.astype(np.int64), shift


def fold_table_threshold(fires: np.ndarray, values: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(thr (C,), direction (C,)) with ``threshold(values) == fires`` ((C, N) booleans) for every
    value, proven on the table; a channel whose decisions are not a monotone step is refused."""
    values = values.astype(np.int64)
    c_count = fires.shape[0]
    thr = np.empty(c_count, dtype=np.int64)
    direction = np.ones(c_count, dtype=np.int8)
    for c in range(c_count):
        f = fires[c]
        if f.all():
            thr[c] = values[0]
        elif not f.any():
            thr[c] = values[-1] + 1
        elif f[-1]:
            thr[c] = values[int(np.argmax(f))]
        else:
            direction[c] = -1
            thr[c] = values[len(f) - 1 - int(np.argmax(f[::-1]))]
    up = values[None, :] >= thr[:, None]
    down = values[None, :] <= thr[:, None]
    got = np.where(direction[:, None] > 0, up, down)
    bad = np.argwhere(got != fires)
    if len(bad):
        c, i = bad[0]
        raise Bnn2hwError(f"layer {name}, channel {c}: PyTorch's sign is not a monotone step in the "
                          f"integer input (value {values[i]}); no threshold reproduces it")
    return thr, direction


def _conv_out(shape: tuple[int, int, int], conv: nn.Module) -> tuple[int, int]:
    k = conv.kernel_size[0]
    s = conv.stride[0]
    p = conv.pad if isinstance(conv, PaddedBinaryConv2d) else conv.padding[0]
    return (shape[0] + 2 * p - k) // s + 1, (shape[1] + 2 * p - k) // s + 1


def _real_slope(conv: nn.Module, bn: nn.BatchNorm2d, unit: float) -> np.ndarray:
    """d(stream integer)/d(acc) of ``BN(post(acc)) / unit`` in float64 (the search centre)."""
    with torch.no_grad():
        k = (conv.channel_scale() * conv.input_scale).double()
        inv = 1.0 / torch.sqrt(bn.running_var.double() + bn.eps)
        return (k * bn.weight.double() * inv / unit).numpy()


class _Builder:
    """Appends IR layers, tracking each tensor's shape (H, W, C)."""

    def __init__(self, model: nn.Module, in_shape):
        self.layers: list[Layer] = []
        self.shapes: dict[str, tuple] = {"input": in_shape}
        self.names = {m: n for n, m in model.named_modules()}

    def add(self, layer: Layer, shape) -> str:
        self.layers.append(layer)
        self.shapes[layer.name] = tuple(shape)
        return layer.name

    def conv(self, name: str, conv: nn.Module, src: str, kind: str) -> tuple[str, tuple, int]:
        """A ``conv2d`` reading ``src``; returns (name, output (H, W, C), fan-in bound)."""
        w = binarize_weights(conv, self.names[conv])
        shape = self.shapes[src]
        o, kh, kw, c = w.shape
        if c != shape[2]:
            raise Bnn2hwError(f"layer {self.names[conv]}: expects {c} channels, gets {shape[2]}")
        padded = isinstance(conv, PaddedBinaryConv2d)
        pad = conv.pad if padded else int(conv.padding[0])
        attrs = {"in": kind, "stride": int(conv.stride[0]), "pad": int(pad), "weight_kind": "binary"}
        if kind == "bits" and pad:
            attrs["pad_value"] = conv.pad_value if padded else 0  # graph.py: the padded taps' value
        oh, ow = _conv_out(shape, conv)
        self.add(Layer("conv2d", name, self.names[conv], attrs, {"weight": w}, [src]), (oh, ow, o))
        peak = 255 if kind == "u8" else 1
        return name, (oh, ow, o), peak * kh * kw * c

    def requant(self, name: str, conv: nn.Module, bn: nn.BatchNorm2d, quant: nn.Module, src: str,
                bound: int, bits: int, frac: int) -> str:
        """``requant`` of ``Q(BN(post(acc)))`` proven on every acc in [-bound, bound]."""
        oh, ow, o = self.shapes[src]
        accs = np.arange(-bound, bound + 1, dtype=np.int64)
        unit = 2.0 ** -frac
        where = f"{self.names[bn]} -> stream ({name})"
        table = evaluate_table(lambda t: stream_requant(conv, bn, quant, t) / unit, accs, o, (oh, ow), where)
        if not np.all(table == np.round(table)):
            raise Bnn2hwError(f"layer {where}: the stream quantizer's output is not on its 2^-{frac} grid")
        mult, bias, shift = fit_requant(table.astype(np.int64), accs, bits,
                                        _real_slope(conv, bn, unit), where)
        self.add(Layer("requant", name, self.names[bn],
                       {"shift": shift, "bits": bits, "frac": frac, "acc_range": [-bound, bound]},
                       {"mult": mult, "bias": bias}, [src]), (oh, ow, o))
        return name

    def conv_threshold(self, name: str, conv: nn.Module, bn: nn.BatchNorm2d, act: nn.Module, src: str,
                       bound: int) -> str:
        oh, ow, o = self.shapes[src]
        accs = np.arange(-bound, bound + 1, dtype=np.int64)
        where = f"{self.names[act]} ({name})"
        table = evaluate_table(lambda t: act(bn(conv._post(t))), accs, o, (oh, ow), where)
        thr, d = fold_table_threshold(table >= 0, accs, where)
        self.add(Layer("threshold", name, self.names[act], {"acc_range": [-bound, bound]},
                       {"thr": thr, "direction": d}, [src]), (oh, ow, o))
        return name

    def stream_sign(self, name: str, sign: nn.Module, src: str, bits: int, frac: int) -> str:
        h, w, c = self.shapes[src]
        qs = np.arange(-(1 << (bits - 1)), 1 << (bits - 1), dtype=np.int64)
        unit = 2.0 ** -frac
        where = f"{self.names[sign]} ({name})"
        # one float add and a sign per element (no fused BN kernel): two positions suffice
        table = evaluate_table(lambda t: sign(t * unit), qs, c, (h, w), where, width=2)
        thr, d = fold_table_threshold(table >= 0, qs, where)
        self.add(Layer("threshold", name, self.names[sign], {"sign_of": "fixed"},
                       {"thr": thr, "direction": d}, [src]), (h, w, c))
        return name


def fold_residual_model(model: ResidualBNN, spec: dict, meta: dict | None = None) -> Graph:
    """The IR of a quantized-stream ResNet (see the module docstring); tensor names equal the
    names :meth:`ResidualBNN.trace` records, so :func:`bnn2hw.export.verify.compare_residual`
    compares them one by one."""
    model.eval()
    if not isinstance(model.stem, BinaryConv2d):
        raise Bnn2hwError("layer stem is full precision (--first float); bnn2hw exports the first "
                          "layer as 8-bit pixels x binary weights (train with --first binary)")
    if model.head.kind == "float":
        raise Bnn2hwError("layer head.layer is full precision (--last float); train with --last int8 "
                          "or binary")
    c, h, w = (int(d) for d in spec["in_shape"])
    bits, frac = model.bits, stream_frac(model.bits, model.int_bits)
    if model.stream_scale != 2.0 ** -frac:
        raise Bnn2hwError(f"stream scale {model.stream_scale} is not 2^-{frac}")
    b = _Builder(model, (h, w, c))
    q = model.quant
    name, _, bound = b.conv("stem", model.stem, "input", "u8")
    s = b.requant("stem_q", model.stem, model.stem_bn, q, name, bound, bits, frac)
    for block in model.blocks:
        p = f"b{block.index}_"
        b1 = b.stream_sign(p + "sign1", block.sign1, s, bits, frac)
        if block.downsample:
            cs, _, bs = b.conv(p + "short", block.short, b1, "bits")
            sc = b.requant(p + "qs", block.short, block.bn_short, q, cs, bs, bits, frac)
        else:
            sc = s
        c1, _, bound1 = b.conv(p + "conv1", block.conv1, b1, "bits")
        if block.double_skip:
            r1 = b.requant(p + "q1", block.conv1, block.bn1, q, c1, bound1, bits, frac)
            s1 = b.add(Layer("add", p + "add1", f"blocks.{block.index} residual 1",
                             {"frac": frac, "bits": bits}, {}, [r1, sc]), b.shapes[r1])
            b2 = b.stream_sign(p + "sign2", block.sign2, s1, bits, frac)
            c2, _, bound2 = b.conv(p + "conv2", block.conv2, b2, "bits")
            r2 = b.requant(p + "q2", block.conv2, block.bn2, q, c2, bound2, bits, frac)
            s = b.add(Layer("add", p + "add2", f"blocks.{block.index} residual 2",
                            {"frac": frac, "bits": bits}, {}, [r2, s1]), b.shapes[r2])
        else:
            h1 = b.conv_threshold(p + "thr1", block.conv1, block.bn1, block.act1, c1, bound1)
            c2, _, bound2 = b.conv(p + "conv2", block.conv2, h1, "bits")
            r2 = b.requant(p + "q2", block.conv2, block.bn2, q, c2, bound2, bits, frac)
            s = b.add(Layer("add", p + "add2", f"blocks.{block.index} residual",
                            {"frac": frac, "bits": bits}, {}, [r2, sc]), b.shapes[r2])
    _fold_stream_head(b, model.head, s, bits)
    sur = spec.get("surrogate", {})
    graph_meta = {"model_hash": model_hash(model), "surrogate": sur.get("name"), "w0": sur.get("w0"),
                  "arch": spec.get("arch"), "residual_bits": bits, "stream_frac": frac,
                  "pad_value": int(spec.get("pad_value", -1)), **(meta or {})}
    return Graph((h, w, c), b.layers, float((meta or {}).get("input_raw_scale", 1.0)), graph_meta)


def _fold_stream_head(b: _Builder, head: StreamHead, src: str, bits: int) -> None:
    """``avgpool`` (window sum) -> ``dense`` on the fixed sums -> ``affine`` with ``1/k^2``."""
    hh, ww, c = b.shapes[src]
    if hh != ww or hh != head.pool:
        raise Bnn2hwError(f"head: the stream map is {hh}x{ww}, the pool expects {head.pool}x{head.pool}")
    if hh * ww * (1 << (bits - 1)) >= 1 << 24:
        raise Bnn2hwError(f"head: a {hh}x{ww} window sum of {bits}-bit stream integers can exceed "
                          "2^24, beyond float32's exact integers (PyTorch's pool would round)")
    pool = b.add(Layer("avgpool", "pool", "head (global average pool)", {"kernel": hh, "stride": hh}, {},
                       [src]), (1, 1, c))
    lin = head.layer
    src_name = b.names[lin]
    if isinstance(lin, Int8Linear):
        wts, kind = int8_weights(lin, src_name), "int8"
    elif isinstance(lin, BinaryLinear):
        wts, kind = binarize_weights(lin, src_name), "binary"
    else:
        raise Bnn2hwError(f"layer {src_name} ({type(lin).__name__}) is full precision; train with "
                          "--last int8 or binary")
    b.add(Layer("dense", "fc", src_name, {"in": "fixed", "weight_kind": kind}, {"weight": wts}, [pool]),
          (wts.shape[0],))
    with torch.no_grad():
        k, bias = head.out_affine()
    b.add(Layer("affine", "logits", b.names[head], {}, {"scale": k.numpy().astype(np.float64),
                                                         "bias": bias.numpy().astype(np.float64)}),
          (wts.shape[0],))


def is_residual(model: nn.Module) -> bool:
    return isinstance(model, (ResidualBNN, DeployableVGGSmall))


CALIBRATION_BITS = 16
CALIBRATION_HEADROOM = 2.0


@torch.no_grad()
def calibrate_stream(model: ResidualBNN, spec: dict, x_u8: np.ndarray, bits: int = CALIBRATION_BITS,
                     headroom: float = CALIBRATION_HEADROOM, batch: int = 128):
    """A float-stream ResNet (``residual_bits`` 0) -> the same weights with a quantized stream.

    Invariant: the returned model is a :class:`ResidualBNN` with ``bits``-bit stream whose range
    ``±2^int_bits`` covers ``headroom`` times the largest stream magnitude PyTorch produces on
    ``x_u8`` (the training split), so :func:`fold_residual_model` folds it exactly; it is *not*
    the float model (the stream is rounded and saturated): the caller measures the change.
    Returns ``(quantized model, its spec, info)``."""
    import math

    from ..nn.models import build_model

    if model.bits:
        raise Bnn2hwError("calibrate_stream: the model already has a quantized stream")
    model.eval()
    peak = 0.0
    for i in range(0, len(x_u8), batch):
        named, _, _ = model.trace(torch.from_numpy(x_u8[i:i + batch].astype(np.float32)))
        for name, t in named.items():
            if not any(name.endswith(k) for k in ("sign1", "sign2", "thr1")):
                peak = max(peak, float(t.abs().max()))
    int_bits = max(0, math.ceil(math.log2(max(peak * headroom, 1.0))))
    if int_bits > bits - 2:
        raise Bnn2hwError(f"the float stream reaches {peak:.4g}; a {bits}-bit stream cannot hold it with "
                          f"{headroom}x headroom")
    qspec = {**spec, "residual_bits": int(bits), "stream_int_bits": int(int_bits)}
    qmodel = build_model(qspec)
    qmodel.load_state_dict(model.state_dict())
    from ..nn.layers import set_stage

    set_stage(qmodel, 2)
    qmodel.eval()
    info = {"stream_bits": int(bits), "stream_frac": stream_frac(bits, int_bits),
            "max_abs_stream": peak, "headroom": headroom, "calibration_samples": int(len(x_u8))}
    return qmodel, qspec, info
