# SPDX-License-Identifier: MIT
"""An imported QONNX model against qonnx's execution of the ORIGINAL file.

The reference is ``qonnx.core.onnx_exec.execute_onnx`` on the file as written (only its batch
size changed by qonnx's ``ChangeBatchSize``, after qonnx's ``FoldConstants`` has evaluated the
constant subgraphs that hold no quantizer). Compared, on every input: every hidden bit (each
IR threshold/pool output against the original activation quantizer's output tensor), the integer
logits (recovered from the file's float output through the IR's affine, which must land within
1e-3 of the IR's integer), the predicted class, and the float logits' largest difference.

Float-order ties (:func:`float_order_ties`): where a layer's float32 dot product is not exact
(non-power-of-two scales), qonnx's decision for an accumulator exactly on a threshold can depend on
onnxruntime's summation order, so two inputs with the same integer accumulator can get different
bits. A difference is accepted only on an input with such an accumulator on a channel flagged
``float_order_sensitive``; it is counted and reported, and any other difference fails the import.

Inputs: the user's data (a ``.npz`` with float ``x`` as the file
takes it, optional ``y``), or random integers spanning the input quantizer's range plus inputs
hill-climbed until a chosen channel's accumulator lands on its threshold (or the value next to
it, the other side of the decision): ties are where a wrong ``>=``/``>`` or a wrong direction
for a negative scale shows.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from ..errors import Bnn2hwError
from ..ir import execute, ops
from ..ir.graph import INPUT
from .qonnx_import import QonnxImport, import_qonnx

RANDOM_INPUTS = 500
THRESHOLD_TARGETS = 48
BATCH = 256


class QonnxReference:
    """qonnx's execution of the original file, batched; ``run`` returns (outputs, hidden tensors)."""

    def __init__(self, imp: QonnxImport):
        from .qonnx_import import read_qonnx

        self.imp = imp
        self.model = read_qonnx(imp.path)
        self._by_batch: dict = {}

    def _model(self, n: int):
        if n not in self._by_batch:
            from qonnx.transformation.change_batchsize import ChangeBatchSize
            from qonnx.transformation.fold_constants import FoldConstants
            from qonnx.transformation.infer_shapes import InferShapes

            m = copy.deepcopy(self.model).transform(InferShapes())
            # constant subgraphs without quantizers (e.g. the pads TorchScript computes for
            # ConstantPad2d through Reshape nodes, which ChangeBatchSize would rewrite) are evaluated
            # once by qonnx/onnxruntime, as they would be on every input
            m = m.transform(FoldConstants(exclude_op_types=["Quant", "BipolarQuant", "Trunc"]))
            m = m.transform(ChangeBatchSize(n)).transform(InferShapes())
            self._by_batch[n] = m
        return self._by_batch[n]

    def run(self, x: np.ndarray, want: list[str]) -> tuple[np.ndarray, dict]:
        from qonnx.core.onnx_exec import execute_onnx

        x = np.asarray(x, dtype=np.float32)
        outs, hidden = [], {k: [] for k in want}
        for s in range(0, len(x), BATCH):
            xb = x[s:s + BATCH]
            n = len(xb)
            m = self._model(n)
            ctx = execute_onnx(m, {self.imp.input_name: xb}, return_full_exec_context=True)
            outs.append(np.asarray(ctx[self.imp.output_name]))
            for k in want:
                hidden[k].append(np.asarray(ctx[k]))
        return np.concatenate(outs), {k: np.concatenate(v) for k, v in hidden.items()}


def compare(imp: QonnxImport, u8: np.ndarray, x_float: np.ndarray | None = None,
            ref: QonnxReference | None = None) -> dict:
    """IR on ``u8`` vs qonnx on ``x_float`` (default: the floats the input quantizer maps to u8)."""
    g = imp.graph
    x_float = imp.input_quant.to_float(u8) if x_float is None else x_float
    ref = ref or QonnxReference(imp)
    want = sorted({t for t, _ in list(imp.hidden.values()) + list(imp.fixed.values()) if t})
    out, hidden = ref.run(x_float, want)
    tr = execute.run(g, u8)
    per_layer, bits_cmp, bits_diff = {}, 0, 0
    bad = np.zeros(len(u8), dtype=bool)  # inputs with any difference
    for layer in g.layers:
        t, mid = imp.hidden.get(layer.name, ("", 0.0))
        if not t:
            continue
        r = hidden[t]
        r = r.transpose(0, 2, 3, 1) if r.ndim == 4 else r
        got = tr.tensors[layer.name]
        bits = np.where(r > mid, 1, -1)
        neq = (bits != got).reshape(len(u8), -1)
        bad |= neq.any(1)
        diff = int(neq.sum())
        per_layer[layer.name] = diff
        bits_cmp += got.size
        bits_diff += diff
    fixed_cmp, fixed_diff = 0, 0
    for name, (t, sc) in imp.fixed.items():  # the residual stream: q * scale is qonnx's value
        if not t:
            continue
        r = hidden[t]
        r = r.transpose(0, 2, 3, 1) if r.ndim == 4 else r
        got = tr.tensors[name]
        r = r.reshape(got.shape)  # a pooled (N, C) mean is the IR's (N, 1, 1, C) sums
        neq = ((got * sc).astype(np.float32) != r).reshape(len(u8), -1)
        bad |= neq.any(1)
        per_layer[name] = int(neq.sum())
        fixed_cmp += got.size
        fixed_diff += int(neq.sum())
    aff = g.layers[-1]
    scale, bias = aff.arrays["scale"], aff.arrays["bias"]
    a_ref = (out.astype(np.float64) - bias) / scale
    tol = logit_tolerance(g, tr)
    off = np.abs(a_ref - tr.int_logits)
    resid = float(off.max()) if len(out) else 0.0
    int_bad = off > tol
    int_diff = int(int_bad.sum())
    # a class agrees when qonnx's class is one of the IR's top classes: with equal integer logits,
    # classes whose logits tie (within float32 rounding) may be ordered differently by the file's
    # float32 arithmetic; which one argmax picks is then not a disagreement
    ref_cls = out.argmax(1)
    top = tr.logits.max(1) if len(out) else np.zeros(0)
    at_ref = tr.logits[np.arange(len(out)), ref_cls] if len(out) else np.zeros(0)
    cls_ok = at_ref >= top - 1e-6 * (1.0 + np.abs(top))
    cls = float(cls_ok.mean()) if len(out) else 1.0
    bad |= int_bad.any(1)
    bad |= ~cls_ok
    tie = float_order_ties(g, tr)
    exact = bits_diff == 0 and fixed_diff == 0 and int_diff == 0 and cls == 1.0
    return {"samples": len(u8), "bits_compared": bits_cmp, "bits_differing": bits_diff,
            "bits_differing_per_layer": per_layer,
            "stream_values_compared": fixed_cmp, "stream_values_differing": fixed_diff, "int_logits_differing": int_diff,
            "int_logit_max_residual": resid, "int_logit_tolerance_max": float(tol.max()) if len(out) else 0.0,
            "int_logits_not_pinned": int((tol >= 0.5).sum()),
            "int_logits_round_differing": int((np.round(a_ref) != tr.int_logits).sum()),
            "class_agreement": cls,
            "class_ties": int((cls_ok & (ref_cls != tr.logits.argmax(1))).sum()) if len(out) else 0,
            "max_logit_abs_diff": float(np.abs(out - tr.logits).max()) if len(out) else 0.0,
            "exact": exact, "inputs_differing": int(bad.sum()),
            "inputs_differing_at_float_order_ties": int((bad & tie).sum()),
            "inputs_differing_unexplained": int((bad & ~tie).sum()),
            "differing_input_indices": [int(i) for i in np.flatnonzero(bad)[:20]]}


INT_LOGIT_TOLERANCE = 1e-3
"""Largest difference, in integer-logit units, between the IR's integer logits and the file's float
logits mapped back through the IR's affine, when the last layer's float32 arithmetic is exact."""


def logit_tolerance(g, tr) -> np.ndarray:
    """(N, classes) tolerance of the integer-logit recovery ``(out - bias) / scale``: 1e-3 when the last
    dense layer's float32 dot products are exact (``float_exact``), else the worst-case float32 error
    of qonnx's computation in integer units. Each term w_i x_i carries the rounding of the float32
    weight fl(q_w s_w) and of the product (2u, u = 2^-24), a sum of n terms adds at most (n - 1) u
    sum|terms| in any order, and the bias/affine after it one rounding each: |error| <=
    (fan_in + 3) u (sum_i |w_ci x_i| + |bias_c / scale_c|). Above 1/2 the bound alone does not pin
    the integer (``int_logits_not_pinned``); ``int_logits_round_differing`` then says whether rounding
    still recovers the IR's integer."""
    i = max(j for j, l in enumerate(g.layers) if l.op == "dense")
    layer = g.layers[i]
    n = len(tr.int_logits)
    if layer.attrs.get("float_exact", True) or n == 0:
        return np.full(tr.int_logits.shape, INT_LOGIT_TOLERANCE)
    x = np.abs(tr.tensors[g.inputs_of(i)[0]].reshape(n, -1)).astype(np.float64)
    w = np.abs(layer.arrays["weight"].astype(np.float64))
    aff = g.layers[-1]
    rel = np.abs(aff.arrays["bias"] / aff.arrays["scale"]) if aff.op == "affine" else 0.0
    bound = (w.shape[1] + 3) * 2.0 ** -24 * (x @ w.T + rel)
    return np.maximum(bound, INT_LOGIT_TOLERANCE)


def float_order_ties(g, tr) -> np.ndarray:
    """Per input: does some accumulator of a ``float_order_sensitive`` channel sit on its boundary
    pair (the threshold, or its neighbour across the decision)? There the file's float32 result
    depends on onnxruntime's summation order, which no integer threshold can follow."""
    n = len(tr.int_logits)
    hit = np.zeros(n, dtype=bool)
    for i, l in enumerate(g.layers):
        fragile = l.attrs.get("float_order_sensitive") if l.op == "threshold" else None
        if not fragile:
            continue
        acc = tr.tensors[g.inputs_of(i)[0]].reshape(n, -1, len(l.arrays["thr"]))[:, :, fragile]
        t, d = l.arrays["thr"][fragile], l.arrays["direction"][fragile].astype(np.int64)
        hit |= ((acc == t) | (acc == t - d)).any((1, 2))
    return hit


def threshold_hits(g, tr) -> dict:
    """How hard the inputs exercised each threshold's decision: per ``threshold`` layer, how many
    accumulators (input x position x channel) sit on the boundary pair of :func:`boundary_pair` (the
    reachable values either side of the decision, the threshold itself when reachable: where a
    wrong >= / >, a wrong tie rule or a wrong direction shows), and in how many of the channels
    whose boundary is reachable (:func:`boundaries`) that happened."""
    out = {}
    for i, l in enumerate(g.layers):
        if l.op != "threshold":
            continue
        acc = tr.tensors[g.inputs_of(i)[0]]
        acc = acc.reshape(-1, acc.shape[-1])
        thr = l.arrays["thr"].astype(np.int64)
        _, pairs, inside = boundaries(g, i)
        on = (acc == pairs[0][None, :]) | (acc == pairs[1][None, :])
        at_thr = (acc == thr[None, :])
        out[l.name] = {"boundary_hits": int(on.sum()), "exact_threshold_hits": int(at_thr.sum()),
                       "channels_hit": int((on.any(0) & inside).sum()), "channels_reachable": int(inside.sum()),
                       "channels": len(thr)}
    return out


def random_inputs(imp: QonnxImport, n: int, seed: int = 0) -> np.ndarray:
    """IR inputs (PyTorch layout) spanning the input quantizer's whole range: uint8, or ±1 int8 for
    a binary input."""
    rng = np.random.default_rng(seed)
    return imp.input_quant.random(rng, (n,) + tuple(imp.input_shape))


def _prefix(g, upto: int, x_u8: np.ndarray) -> np.ndarray:
    """The IR tensor of layer ``upto`` (the integer reference ops of :mod:`bnn2hw.ir.ops`)."""
    t = {INPUT: execute.to_ir_input(g, x_u8)}
    for i, l in enumerate(g.layers[:upto + 1]):
        if l.op not in execute.REFERENCES:
            raise Bnn2hwError(f"internal: no prefix execution for {l.op}")
        t[l.name] = execute.REFERENCES[l.op]([t[n] for n in g.inputs_of(i)], l)
    return t[g.layers[upto].name]


def _first_layer_gradient(g, imp: QonnxImport, layer, c: int, pos) -> np.ndarray:
    """d acc[pos, c] / d u for the first layer (linear in the uint8 input), in PyTorch layout."""
    w = layer.arrays["weight"].astype(np.int64)
    if layer.op == "dense":
        grad = w[c]  # IR input order = PyTorch order for a flat input
        return grad.reshape(imp.input_shape)
    h, wd, ch = g.input_shape
    o, kh, kw, _ = w.shape
    s, p = layer.attrs["stride"], layer.attrs["pad"]
    grad = np.zeros((h, wd, ch), dtype=np.int64)
    for ky in range(kh):
        for kx in range(kw):
            y, x = pos[0] * s - p + ky, pos[1] * s - p + kx
            if 0 <= y < h and 0 <= x < wd:
                grad[y, x, :] = w[c, ky, kx, :]
    return grad.transpose(2, 0, 1)


POOL = 64
"""Random inputs whose accumulators seed the search: each target starts from the pool input and
position whose accumulator lies closest to the goal (deeper layers are then a few steps away)."""


def boundary_pair(g, src: int, thr: int, d: int) -> np.ndarray:
    """The two accumulator values either side of a threshold's decision that the layer can reach:
    (thr, thr - d), or, when the accumulator has the parity of the fan-in (±1 inputs, no padding) and
    thr the other parity, (thr + d, thr - d)."""
    layer = g.layers[src]
    parity = None
    if layer.op in ("dense", "conv2d") and layer.attrs.get("in") == "bits" and not layer.attrs.get("pad", 0):
        parity = int(np.prod(layer.arrays["weight"].shape[1:])) % 2
    if parity is not None and (thr - parity) % 2:
        return np.array([thr + d, thr - d])
    return np.array([thr, thr - d])


def _constant_bits(g, src: int):
    """For a dense layer reading a threshold's bits directly: (which input bits can change, the
    value of the others), the constant ones being the channels whose decision is the same on every
    reachable accumulator (:func:`boundaries` of that threshold); else None."""
    t = next((j for j, m in enumerate(g.layers) if m.name == g.inputs_of(src)[0]), None)
    if g.layers[src].op != "dense" or t is None or g.layers[t].op != "threshold":
        return None
    _, _, reachable = boundaries(g, t)
    thr, d = g.layers[t].arrays["thr"].astype(np.int64), g.layers[t].arrays["direction"].astype(np.int64)
    src0 = next((j for j, m in enumerate(g.layers) if m.name == g.inputs_of(t)[0]), None)
    if src0 is None or g.layers[src0].op != "dense":
        return None
    w0 = g.layers[src0].arrays["weight"].astype(np.int64)
    lo0 = np.minimum(w0, 0).sum(1) * (255 if g.layers[src0].attrs.get("in") == "u8" else 1)
    fires_at_lo = np.where(d > 0, lo0 >= thr, lo0 <= thr)  # the constant decision, read at the range's low end
    if g.layers[src0].attrs.get("in") != "u8":
        lo0 = -np.abs(w0).sum(1)
        fires_at_lo = np.where(d > 0, lo0 >= thr, lo0 <= thr)
    return reachable, np.where(fires_at_lo, 1, -1)


def boundaries(g, li: int) -> tuple[int | None, np.ndarray, np.ndarray]:
    """(source layer index, (2, C) boundary pairs, (C,) whether both values of the pair lie in the
    channel's reachable accumulator range): a channel whose decision is constant has no boundary
    to land on. Per-channel ranges come from the source layer's weights (u8: 0..255 inputs; bits:
    ±1), a stream threshold uses its ``acc_range``."""
    layer = g.layers[li]
    src_name = g.inputs_of(li)[0]
    src = next((j for j, m in enumerate(g.layers) if m.name == src_name), None)
    thr, d = layer.arrays["thr"].astype(np.int64), layer.arrays["direction"].astype(np.int64)
    lo = np.full(len(thr), layer.attrs.get("acc_range", [-(1 << 62), 1 << 62])[0], dtype=np.int64)
    hi = np.full(len(thr), layer.attrs.get("acc_range", [-(1 << 62), 1 << 62])[1], dtype=np.int64)
    if src is not None and g.layers[src].op in ("dense", "conv2d") and g.layers[src].attrs.get("in") in ("u8", "bits"):
        w = g.layers[src].arrays["weight"].astype(np.int64).reshape(len(thr), -1)
        if g.layers[src].attrs["in"] == "u8":
            lo, hi = np.minimum(w, 0).sum(1) * 255, np.maximum(w, 0).sum(1) * 255
        else:
            lo, hi = -np.abs(w).sum(1), np.abs(w).sum(1)
            fixed = _constant_bits(g, src)
            if fixed is not None:  # bits the previous threshold can never flip narrow the range
                var, val = fixed
                const = (w[:, ~var] * val[~var][None, :]).sum(1)
                lo, hi = const - np.abs(w[:, var]).sum(1), const + np.abs(w[:, var]).sum(1)
    pairs = np.stack([boundary_pair(g, src, int(a), int(b)) if src is not None else np.array([a, a - b])
                      for a, b in zip(thr, d)], 1)
    return src, pairs, (pairs.min(0) >= lo) & (pairs.max(0) <= hi)


def _second_dense(g, src: int):
    """(first layer index, its threshold index, src) when ``src`` is a dense layer on the bits of a
    threshold of a dense layer on the 8-bit input (an MLP's second layer), else None."""
    layer = g.layers[src]
    if layer.op != "dense" or layer.attrs.get("in") != "bits" or src < 2:
        return None
    t, f = src - 1, src - 2
    if g.inputs_of(src) != [g.layers[t].name] or g.layers[t].op != "threshold" or \
            g.inputs_of(t) != [g.layers[f].name] or g.layers[f].op != "dense" or g.layers[f].attrs.get("in") != "u8":
        return None
    return f, t, src


def _flip_moves(g, imp, second, c: int, goals: np.ndarray, x: np.ndarray, out: np.ndarray, rng, span: int) -> None:
    """Fill ``out`` with copies of ``x`` in which one first-layer bit j whose flip moves the second
    layer's accumulator of channel c toward ``goals`` is flipped: the first layer's accumulator of j
    is linear in the input, so it is solved onto the other side of j's boundary (the layer-by-layer
    construction of a landing input)."""
    f, t, s = second
    a0 = _prefix(g, f, x[None])[0]
    bits = _prefix(g, t, x[None])[0]
    acc = int(_prefix(g, s, x[None])[0, c])
    goal = int(goals[np.argmin(np.abs(goals - acc))])
    w2 = g.layers[s].arrays["weight"][c].astype(np.int64)
    helps = np.flatnonzero(np.sign(-2 * w2 * bits) == np.sign(goal - acc))
    _, pairs, reachable = boundaries(g, t)
    helps = helps[reachable[helps]]
    if not len(helps):
        return
    w1 = g.layers[f].arrays["weight"].astype(np.int64)
    for k in range(len(out)):
        j = int(rng.choice(helps))
        target = int(pairs[1, j] if bits[j] > 0 else pairs[0, j])  # pairs[0] fires, pairs[1] does not
        flat = x.reshape(-1).astype(np.int64).copy()
        diff = target - int(a0[j])
        for i in rng.permutation(np.flatnonzero(w1[j])):
            step = int(np.clip(np.round(diff / w1[j, i]), -flat[i], span - flat[i]))
            flat[i] += step
            diff -= step * int(w1[j, i])
            if diff == 0:
                break
        out[k] = flat.reshape(x.shape).astype(out.dtype)


def threshold_inputs(imp: QonnxImport, targets: int = THRESHOLD_TARGETS, seed: int = 1,
                     steps: int = 60, candidates: int = 32, per_layer: dict | None = None) -> tuple[np.ndarray, int]:
    """Inputs whose accumulator of one channel (at one position) before a threshold equals the
    threshold or its neighbour across the decision (:func:`boundary_pair`); returns (inputs, how many
    landed exactly); ``per_layer`` (when given) receives {threshold layer: [targets, landed]}.
    Targets cycle over the threshold layers. First layer: solved directly (the accumulator is linear
    in the input); every layer: the search starts from the input and position of a random pool
    (:data:`POOL`) whose accumulator is closest, then hill-climbs on the integer reference."""
    g = imp.graph
    rng = np.random.default_rng(seed)
    span = imp.input_quant.qmax - imp.input_quant.qmin
    binary = imp.input_quant.binary
    thr_layers = [i for i, l in enumerate(g.layers) if l.op == "threshold"]
    found, landed = [], 0
    pool = random_inputs(imp, POOL, int(rng.integers(1 << 30)))
    pool_acc: dict = {}
    hit: dict = {}  # threshold layer -> channels already on their boundary
    tries: dict = {}  # threshold layer -> targets aimed at each channel
    for t in range(targets if thr_layers else 0):
        li = thr_layers[t % len(thr_layers)]
        thr_layer = g.layers[li]
        src, pairs, reachable = boundaries(g, li)
        inside = np.flatnonzero(reachable)
        if not len(inside) or src is None:
            continue
        if li not in hit:
            pool_acc[src] = _prefix(g, src, pool)
            flat_acc = pool_acc[src].reshape(-1, pairs.shape[1])
            hit[li] = ((flat_acc == pairs[0]) | (flat_acc == pairs[1])).any(0)
            tries[li] = np.zeros(len(pairs[0]), dtype=np.int64)
        # channels no input has put on their boundary yet come first, each tried at most twice
        fresh = inside[~hit[li][inside] & (tries[li][inside] < 2)]
        c = int(rng.choice(fresh if len(fresh) else inside))
        tries[li][c] += 1
        goals = pairs[:, c]
        a = pool_acc[src][..., c]  # (POOL,) or (POOL, H, W)
        dist = np.abs(a[..., None] - goals).min(-1)
        best_at = np.flatnonzero(dist.ravel() == dist.min())
        k = np.unravel_index(int(rng.choice(best_at)), dist.shape)  # a random one of the closest
        x = pool[k[0]].copy()
        pos = (int(k[1]), int(k[2])) if a.ndim == 3 else None

        def acc_of(batch, src=src, pos=pos, c=c):
            a = _prefix(g, src, batch)
            return a[:, pos[0], pos[1], c] if pos is not None else a[:, c]

        if li == thr_layers[0] and g.layers[src].op in ("dense", "conv2d") and g.layers[src].attrs["in"] == "u8":
            grad = _first_layer_gradient(g, imp, g.layers[src], c, pos).ravel()
            flat = x.reshape(-1).astype(np.int64)
            diff = int(goals[int(rng.integers(2))]) - int(acc_of(x[None])[0])
            for j in rng.permutation(np.flatnonzero(grad)):
                step = int(np.clip(np.round(diff / grad[j]), -flat[j], span - flat[j]))
                flat[j] += step
                diff -= step * int(grad[j])
                if diff == 0:
                    break
            x = flat.reshape(x.shape).astype(np.uint8)
        best = int(np.abs(acc_of(x[None])[0] - goals).min())
        second = _second_dense(g, src)
        for _ in range(steps if best else 0):
            cand = np.repeat(x[None], candidates, 0)
            flat = cand.reshape(candidates, -1)
            if second is not None:  # a quarter: flip one helpful first-layer bit by solving its accumulator
                _flip_moves(g, imp, second, c, goals, x, cand[1:1 + candidates // 4], rng, span)
            for j in range(1 + (candidates // 4 if second is not None else 0), candidates):
                # half small nudges, half random rewrites of 1-3 values
                idx = rng.integers(flat.shape[1], size=int(rng.integers(1, 4)))
                if binary:
                    flat[j, idx] = -flat[j, idx]
                elif j % 2:
                    flat[j, idx] = np.clip(flat[j, idx].astype(np.int64) + rng.integers(-8, 9, size=len(idx)), 0, span)
                else:
                    flat[j, idx] = rng.integers(0, span + 1, size=len(idx))
            dist = np.abs(acc_of(cand)[:, None] - goals[None, :]).min(1)
            j = int(np.argmin(dist))
            if dist[j] <= best:
                best, x = int(dist[j]), cand[j].copy()
            if best == 0:
                break
        landed += best == 0
        hit[li][c] |= best == 0
        if per_layer is not None:
            row = per_layer.setdefault(thr_layer.name, [0, 0])
            row[0] += 1
            row[1] += int(best == 0)
        found.append(x)
    if not found:
        return np.zeros((0,) + tuple(imp.input_shape), np.int8 if binary else np.uint8), 0
    return np.stack(found), landed


def load_user_data(imp: QonnxImport, dataset: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(float inputs as the file takes them, labels or None) from a ``.npz`` (x_test/y_test if present)."""
    p = Path(dataset)
    if p.suffix != ".npz" or not p.is_file():
        raise Bnn2hwError(f"--dataset {dataset}: a QONNX model is verified on a .npz file with float 'x' "
                          "(as the ONNX input takes it) and optional labels 'y'")
    with np.load(p, allow_pickle=False) as f:
        key = "x_test" if "x_test" in f else "x"
        if key not in f:
            raise Bnn2hwError(f"--dataset {dataset}: no 'x' array")
        x = np.asarray(f[key], dtype=np.float32)
        ykey = "y_test" if key == "x_test" else "y"
        y = np.asarray(f[ykey]).astype(np.int64) if ykey in f else None
    if tuple(x.shape[1:]) != tuple(imp.input_shape):
        raise Bnn2hwError(f"--dataset {dataset}: rows of shape {list(x.shape[1:])}, but {imp.path} takes "
                          f"{list(imp.input_shape)}")
    return x, y


def verify_import(imp: QonnxImport, dataset: str | None = None, n_random: int = RANDOM_INPUTS,
                  n_threshold: int = THRESHOLD_TARGETS, seed: int = 0) -> tuple[dict, np.ndarray, np.ndarray | None]:
    """Compare the IR with qonnx's execution of the original file; returns (reference report,
    the uint8 inputs used, labels or None). Raises when anything differs."""
    ref = QonnxReference(imp)
    if dataset is not None:
        x, y = load_user_data(imp, dataset)
        u8 = imp.input_quant.to_ir(x)
        agreement = compare(imp, u8, x, ref)
        report = {"reference": "qonnx execution of the original file", "file": str(imp.path),
                  "inputs": "dataset", "dataset": str(Path(dataset).resolve()), "dataset_inputs": len(x),
                  "agreement": agreement}
        if y is not None:
            out, _ = ref.run(x, [])
            report["accuracy"] = {"qonnx": float((out.argmax(1) == y).mean()),
                                  "ir": float((execute.run(imp.graph, u8).logits.argmax(1) == y).mean())}
    else:
        rnd = random_inputs(imp, n_random, seed)
        targets: dict = {}
        thr, landed = threshold_inputs(imp, n_threshold, seed + 1, per_layer=targets)
        u8 = np.concatenate([thr, rnd])  # landing inputs first: --verify-samples N keeps them
        y = None
        agreement = compare(imp, u8, None, ref)
        report = {"reference": "qonnx execution of the original file", "file": str(imp.path),
                  "inputs": "random+threshold", "random_inputs": len(rnd),
                  "threshold_inputs": len(thr), "threshold_inputs_landed": int(landed),
                  "threshold_targets_per_layer": {k: {"targets": v[0], "landed": v[1]} for k, v in targets.items()},
                  "agreement": agreement}
    report["threshold_hits"] = threshold_hits(imp.graph, execute.run(imp.graph, u8))
    report["float_order_sensitive_channels"] = {
        l.name: len(l.attrs.get("float_order_sensitive", [])) for l in imp.graph.layers if l.op == "threshold"}
    report["float_exact_layers"] = [l.name for l in imp.graph.layers if l.attrs.get("float_exact")]
    if agreement["inputs_differing_unexplained"]:
        raise Bnn2hwError(f"{imp.path}: the imported IR disagrees with qonnx's execution of the file: {agreement}")
    if agreement["inputs_differing"]:
        import sys

        print(f"warning: {imp.path}: {agreement['inputs_differing']} of {agreement['samples']} inputs differ from "
              "qonnx's execution, each with an accumulator exactly on a threshold of a channel whose float32 "
              "dot product is order-dependent there (onnxruntime's summation, not the import); see "
              "'reference' in the report", file=sys.stderr)
    return report, u8, y


def export_qonnx_ir(path, dataset: str | None = None, verify: bool = True, need_data: bool = True, **_):
    """The QONNX counterpart of :func:`bnn2hw.export.pipeline.export_ir`: an ``Exported`` whose
    data are the verification inputs (uint8) and whose ``reference`` says what was compared."""
    from ..data import Dataset
    from ..export.pipeline import Exported

    imp = import_qonnx(path)
    data, reference = None, None
    if verify or need_data or dataset:
        reference, u8, y = verify_import(imp, dataset)
        name = reference.get("dataset") or "random+threshold inputs"
        labels = y if y is not None else np.zeros(len(u8), np.int64)
        data = Dataset(name, u8, labels, u8, y, int(imp.graph.num_classes))
    # no PyTorch here: the reference (and its accuracy on labelled data) is ``exp.reference``
    exp = Exported(imp.graph, None, {"meta": {"test_accuracy": None}, "spec": {}}, data, None)
    exp.reference = reference
    return exp


def describe(path) -> str:
    """``bnn2hw inspect model.onnx``: the imported IR and its input quantizer."""
    imp = import_qonnx(path)
    iq = imp.input_quant
    return (imp.graph.describe() + f"\n  input quantizer: {iq.bits}-bit {'signed' if iq.signed else 'unsigned'}, "
            f"scale {iq.scale:g}, zero point {iq.zero_point:g}; IR input u = q - ({iq.qmin})")


__all__ = [
    "QonnxReference",
    "compare",
    "export_qonnx_ir",
    "ops",
    "random_inputs",
    "threshold_inputs",
    "verify_import",
]
