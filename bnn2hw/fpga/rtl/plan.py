# SPDX-License-Identifier: MIT
"""IR + folding -> a list of :class:`MvauPlan`: everything the Verilog emitter needs per layer,
with the threshold folding into the hardware's accumulator domain done (and derived) here.

Bit convention (bnn2hw's, :mod:`bnn2hw.ir.ops`): in every RTL vector a bit ``1`` means ``+1`` and
``0`` means ``-1``; element ``i`` of a vector sits at bits ``[i*IW +: IW]`` (little end first);
u8 pixels are unsigned bytes, int8 weights two's complement; integer logits are two's-complement
words of ``LW`` bits, logit ``o`` at ``[o*LW +: LW]``.

Binary x binary layers count agreements instead of summing ±1 products:
``acc = sum_i x_i w_i = K - 2 popcount(x xor w) = 2 P - K`` with ``P = popcount(xnor(x, w))``,
so ``acc >= t  <=>  P >= ceil((t + K) / 2)`` and ``acc <= t  <=>  P <= floor((t + K) / 2)
<=> not (P >= floor((t + K) / 2) + 1)``. The emitter therefore stores, per output channel, one
unsigned threshold ``T`` on ``P`` and an invert bit (direction -1); the tie ``acc == t`` gives +1
in both directions, as :func:`bnn2hw.ir.ops.threshold` does. Layers with u8 input or int8
weights accumulate the signed products and compare ``acc >= t`` (direction +1) or
``not (acc >= t + 1)`` (direction -1). Thresholds outside the reachable accumulator range are
clamped to ``[lo, hi + 1]``, which keeps every comparison's outcome.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import Bnn2hwError
from ...ir.graph import Graph


def bitlen(v: int) -> int:
    """Bits of an unsigned integer (at least 1)."""
    return max(1, int(v).bit_length())


def signed_bits(lo: int, hi: int) -> int:
    """Bits of a two's-complement word holding every integer in [lo, hi]."""
    w = 1
    while not (-(1 << (w - 1)) <= lo and hi <= (1 << (w - 1)) - 1):
        w += 1
    return w


@dataclass
class MvauPlan:
    """One matrix-vector-threshold unit: ``MH`` outputs of fan-in ``MW``, folded ``PE`` x ``SIMD``."""

    name: str  # IR name of the dense op, e.g. "fc0"
    source: str  # PyTorch module
    thr_name: str | None  # IR name of the threshold op after it (None: the logits layer)
    in_kind: str  # "u8" | "bits" | "fixed" (signed stream integers of in_bits bits)
    weight_kind: str  # "binary" | "int8"
    MW: int
    MH: int
    PE: int
    SIMD: int
    weight: np.ndarray  # (MH, MW) int, ±1 or int8
    thr: np.ndarray | None  # (MH,) in the accumulator domain of the hardware (see module doc)
    inv: np.ndarray | None  # (MH,) 1 where the direction is -1
    acc_lo: int
    acc_hi: int
    conv: dict | None = None  # conv2d: in_h, in_w, C, kh, kw, stride, pad, oh, ow (the MVAU runs once per output pixel)
    pool: dict | None = None  # max-pool after the threshold: k, stride, ph, pw
    in_beat_bits: int | None = None  # first layer only: s_axis beat width (None: one whole frame per beat)
    in_bits: int | None = None  # in_kind "fixed": width of one stream integer (two's complement)
    # an IR requant fused into the MVAU's output (residual back end): {"name", "mult", "bias" (MH,),
    # "shift", "bits", "lo", "hi"}; the output is then MH stream integers of "bits" bits (not logits)
    requant: dict | None = None

    @property
    def vectors(self) -> int:
        return self.conv["oh"] * self.conv["ow"] if self.conv else 1

    @property
    def NF(self) -> int:
        return self.MH // self.PE

    @property
    def SF(self) -> int:
        return self.MW // self.SIMD

    @property
    def cycles(self) -> int:
        """FINN's MVAU model, (MH/PE)(MW/SIMD) x vectors: cycles between frames when this layer is
        the bottleneck."""
        return self.NF * self.SF * self.vectors

    @property
    def popcount(self) -> bool:
        """True for binary inputs x binary weights: accumulate agreements (unsigned)."""
        return self.in_kind == "bits" and self.weight_kind == "binary"

    @property
    def IW(self) -> int:
        if self.in_kind == "fixed":
            return self.in_bits
        return 8 if self.in_kind == "u8" else 1

    @property
    def WW(self) -> int:
        return 8 if self.weight_kind == "int8" else 1

    @property
    def TW(self) -> int:
        """Width of one product term: xnor bit, ±u8 (10), u8 x int8 (17), ±int8 (9); on a stream of
        b-bit integers: ±q (b + 1), q x int8 (b + 8)."""
        if self.popcount:
            return 1
        if self.in_kind == "fixed":
            return self.IW + (1 if self.weight_kind == "binary" else 8)
        if self.in_kind == "u8":
            return 10 if self.weight_kind == "binary" else 17
        return 9

    @property
    def tree_levels(self) -> int:
        return max(0, (self.SIMD - 1).bit_length())

    @property
    def AW(self) -> int:
        """Accumulator (and threshold) width: the full range, and at least the tree's output width."""
        rng = bitlen(self.MW + 1) if self.popcount else signed_bits(self.acc_lo, self.acc_hi + 1)
        return max(rng, self.TW + self.tree_levels)

    @property
    def is_logits(self) -> bool:
        return self.thr_name is None

    @property
    def LW(self) -> int:
        """Width of one integer logit (2P - K for popcount layers, else the accumulator)."""
        if self.popcount:
            return self.AW + 2
        return self.AW

    @property
    def in_width(self) -> int:
        return self.MW * self.IW

    @property
    def out_width(self) -> int:
        """Width of one MVAU output beat (one vector: one output pixel of a conv)."""
        if self.requant:
            return self.MH * self.requant["bits"]
        return self.MH * (self.LW if self.is_logits else 1)

    @property
    def frame_in_width(self) -> int:
        """Width of the layer's whole input frame (the image for a conv)."""
        if self.conv:
            return self.conv["in_h"] * self.conv["in_w"] * self.conv["C"] * self.IW
        return self.in_width

    @property
    def beat_width(self) -> int:
        """Width of one s_axis beat of the design (first layer): the whole frame unless streamed."""
        return self.in_beat_bits or self.frame_in_width

    @property
    def beats_per_frame(self) -> int:
        return -(-self.frame_in_width // self.beat_width)

    @property
    def frame_out_width(self) -> int:
        """Width of the layer's whole output frame (after the pool, if any)."""
        if self.pool:
            return self.pool["ph"] * self.pool["pw"] * self.MH
        return self.vectors * self.out_width


def hardware_thresholds(thr: np.ndarray, direction: np.ndarray, popcount: bool, K: int,
                        lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """IR (thr, direction) -> (T, inv) with out = (acc' >= T) xor inv, acc' = P or acc."""
    T = np.empty(len(thr), dtype=np.int64)
    inv = (np.asarray(direction) < 0).astype(np.int64)
    for c, (t, d) in enumerate(zip(np.asarray(thr, dtype=object), direction)):
        t = int(t)
        if popcount:
            T[c] = -((-(t + K)) // 2) if d > 0 else (t + K) // 2 + 1  # ceil / floor + 1
        else:
            T[c] = t if d > 0 else t + 1
    return np.clip(T, lo, hi + 1), inv


def plan_layers(graph: Graph, folding: list[dict]) -> list[MvauPlan]:
    """Pair each dense op with its threshold and its (PE, SIMD) from ``choose_folding``."""
    if graph.meta.get("fixed_point"):
        raise Bnn2hwError("the RTL back end takes binary MLPs; this model has a fixed-point value path "
                          "(M-BiPer residual), which only the C back end exports")
    fold = {L["name"]: L for L in folding}
    plans: list[MvauPlan] = []
    layers = graph.layers
    shape = tuple(graph.input_shape)
    for i, layer in enumerate(layers):
        if layer.op == "maxpool":
            k, st = layer.attrs["kernel"], layer.attrs["stride"]
            prev = layers[i - 1] if i else None
            if not plans or prev is None or prev.op != "threshold" or not plans[-1].conv or plans[-1].pool:
                raise Bnn2hwError(f"IR layer {layer.name}: the RTL back end pools only right after a conv's "
                                  "threshold")
            ph, pw = (shape[0] - k) // st + 1, (shape[1] - k) // st + 1
            plans[-1].pool = {"k": k, "stride": st, "ph": ph, "pw": pw, "name": layer.name}
            shape = (ph, pw, shape[2])
            continue
        if layer.op in ("threshold", "affine"):
            continue
        if layer.op == "flatten":
            shape = (int(np.prod(shape)),)
            continue
        if layer.op not in ("dense", "conv2d"):
            raise Bnn2hwError(f"IR layer {layer.name}: op {layer.op!r} has no RTL form")
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        thr_layer = nxt if nxt is not None and nxt.op == "threshold" else None
        plan, shape = mvau_plan(layer, shape, fold[layer.name], thr_layer)
        plans.append(plan)
    if not plans or not plans[-1].is_logits:
        raise Bnn2hwError("the IR graph does not end with a dense layer producing integer logits")
    if plans[-1].conv:
        raise Bnn2hwError("the last layer must be dense (integer logits), not a convolution")
    if any(p.is_logits for p in plans[:-1]):
        bad = next(p for p in plans[:-1] if p.is_logits)
        raise Bnn2hwError(f"IR layer {bad.name}: a dense layer without a threshold before the last layer")
    return plans


def mvau_plan(layer, shape: tuple, F: dict, thr_layer=None, in_bits: int | None = None) -> tuple[MvauPlan, tuple]:
    """One IR ``dense``/``conv2d`` op (input tensor ``shape``, folding ``F`` = {PE, SIMD}) and the
    ``threshold`` op after it (None: the MVAU outputs its integer accumulators, as for logits or a
    requant) -> (plan, output shape). ``in_bits``: element width of a ``fixed`` (stream) input."""
    conv = None
    if layer.op == "conv2d":
        w4 = np.asarray(layer.arrays["weight"], dtype=np.int64)
        o, kh, kw, c = w4.shape
        st, pad = layer.attrs["stride"], layer.attrs["pad"]
        pad_value = layer.attrs.get("pad_value", 0)
        if "pad_u8" in layer.arrays:
            raise Bnn2hwError(f"IR layer {layer.name}: per-channel padding values (pad_u8) have no RTL form; "
                              "the sliding window pads a u8 image with the pixel 0")
        if layer.attrs["in"] not in ("u8", "bits"):
            raise Bnn2hwError(f"IR layer {layer.name}: a convolution on a {layer.attrs['in']!r} input has no RTL form")
        if pad and layer.attrs["in"] == "bits" and pad_value != -1:
            raise Bnn2hwError(f"IR layer {layer.name}: padded convolutions with pad_value {pad_value} on a "
                              "binary input are not supported by the RTL back end (a padded ±1 tap that "
                              "contributes 0 needs a per-border threshold); pad_value -1 (FINN's FMPadding) "
                              "and zero-padded u8 pixels are")
        oh, ow = (shape[0] + 2 * pad - kh) // st + 1, (shape[1] + 2 * pad - kw) // st + 1
        if oh < 1 or ow < 1:
            raise Bnn2hwError(f"IR layer {layer.name}: a {kh}x{kw} kernel (pad {pad}) does not fit the "
                              f"{shape[0]}x{shape[1]} input")
        # a padded tap is the bit 0 (the activation -1, pad_value -1) on a binary input, the pixel 0
        # on a u8 input: both are all-zero bits, which the sliding window inserts
        conv = {"in_h": shape[0], "in_w": shape[1], "C": c, "kh": kh, "kw": kw, "stride": st, "oh": oh, "ow": ow,
                "pad": pad}
        w = w4.reshape(o, -1)  # (ky, kx, c) order, as im2col
        shape = (oh, ow, o)
    else:
        w = np.asarray(layer.arrays["weight"], dtype=np.int64)
        shape = (w.shape[0],)
    MH, MW = w.shape
    in_kind = layer.attrs["in"]
    wk = layer.attrs.get("weight_kind", "binary")
    if in_kind == "fixed":
        if not in_bits:
            raise Bnn2hwError(f"IR layer {layer.name}: a dense layer on the stream needs the stream's width")
        peak = 1 << (in_bits - 1)  # |q| <= 2^(bits-1)
    else:
        peak = 255 if in_kind == "u8" else 1
    wmax = 127 if wk == "int8" else 1
    if wk == "int8" and in_kind == "u8":
        # exact range of this layer's accumulator, from the weights
        pos = np.clip(w, 0, None).sum(1) * 255
        neg = np.clip(w, None, 0).sum(1) * 255
        lo, hi = int(neg.min()), int(pos.max())
    else:
        lo, hi = -peak * wmax * MW, peak * wmax * MW
    popcount = in_kind == "bits" and wk == "binary"
    if MH % F["PE"] or MW % F["SIMD"]:
        raise Bnn2hwError(f"IR layer {layer.name}: PE {F['PE']} must divide MH {MH} and SIMD {F['SIMD']} "
                          f"must divide MW {MW} (FINN's folding rule)")
    if thr_layer is not None:
        if np.asarray(thr_layer.arrays["thr"]).ndim != 1:
            raise Bnn2hwError(f"IR layer {thr_layer.name}: per-position thresholds have no RTL form")
        T, inv = hardware_thresholds(thr_layer.arrays["thr"], thr_layer.arrays["direction"], popcount, MW,
                                     0 if popcount else lo, MW if popcount else hi)
        thr_name = thr_layer.name
    else:
        T = inv = None
        thr_name = None
    plan = MvauPlan(layer.name, layer.source, thr_name, in_kind, wk, MW, MH, F["PE"], F["SIMD"],
                    w, T, inv, lo, hi, conv)
    plan.in_bits = in_bits
    return plan, shape
