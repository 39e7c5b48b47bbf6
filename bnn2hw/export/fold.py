# SPDX-License-Identifier: MIT
"""Folding passes: trained PyTorch model -> integer IR (:mod:`bnn2hw.ir.graph`).

The pipeline (:func:`fold_model`) walks the model's modules in order and applies, per layer:

1. :func:`binarize_weights` -- latent weights become plain ±1 by evaluating the trained
   binarizer (``sign(sin(w0 w))`` for BiPer, eq. 8); afterwards no trace of the surrogate is left.
2. :func:`fold_threshold` -- the per-channel scale ``gamma``, the input scale, BatchNorm
   (running stats, eps, affine) and the following ``sign`` become one integer threshold per
   channel on the accumulator, exactly reproducing PyTorch's float32 eval-mode decision.
3. :func:`fold_output_affine` -- the last layer keeps its integer accumulator (the integer
   logits) and its scale and bias become a float affine.

Threshold derivation. For channel c the model computes, after the integer accumulator ``a``,
``h_c(a) = sign(BN_c(a * gamma_c * s))`` with ``sign(0) = +1``. Each float32 operation
(multiply by a constant, subtract, multiply, add) is monotone in its input, so ``h_c`` is a
monotone step function of the integer ``a``: non-decreasing if ``gamma_c * s * bn_w_c /
sqrt(var_c + eps) > 0``, non-increasing if it is negative, constant if zero. Hence
``h_c(a) = +1  <=>  a >= T_c`` (direction +1) or ``a <= T_c`` (direction -1) for one integer T_c.
We find T_c by bisection over the reachable accumulator range, evaluating ``h_c`` with the
model's own modules in float32, so the result is PyTorch's decision by construction, including
the tie rule at ``a = T_c``. A channel that never (always) fires gets ``T = hi + 1`` (``T = lo``).
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from torch import nn

from ..errors import Bnn2hwError
from ..ir.graph import Graph, Layer
from ..nn.layers import BinaryActivation, BinaryConv2d, BinaryLinear, Int8Linear
from ..nn.models import BinaryCNN, BinaryMLP, BinaryResMLP, ClassifierHead


def model_hash(model: nn.Module) -> str:
    """sha256 over the state dict (names, shapes, bytes): identifies the exported model."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(np.ascontiguousarray(v.detach().cpu().numpy()).tobytes())
    return h.hexdigest()[:16]


def binarize_weights(layer: nn.Module, name: str) -> np.ndarray:
    """Invariant: returns the ±1 int8 weights the trained model uses in eval mode (checked)."""
    if isinstance(layer, (BinaryLinear, BinaryConv2d)):
        w = layer.hard_weight()
        # cross-check against what the Brevitas layer actually multiplies with
        with torch.no_grad():
            q = layer.quant_weight()
            used = q.value if hasattr(q, "value") else q
        if not torch.equal(w, used.detach()):
            raise Bnn2hwError(f"layer {name}: the exported weights differ from the ones the model "
                              "uses (is the model in stage 1? call set_stage(model, 2))")
    else:
        raise Bnn2hwError(f"layer {name} ({type(layer).__name__}) has no binary weights")
    if not torch.all((w == 1) | (w == -1)):
        raise Bnn2hwError(f"layer {name}: weights are not all ±1 after binarization")
    w = w.to(torch.int8).numpy()
    if w.ndim == 4:  # (O, C, kh, kw) -> channels-last (O, kh, kw, C)
        w = w.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(w)


def int8_weights(layer: Int8Linear, name: str) -> np.ndarray:
    with torch.no_grad():
        w_int, _ = layer.int_weight()
    w = w_int.numpy()
    if np.any(np.abs(w) > 127) or not np.all(w == np.round(w)):
        raise Bnn2hwError(f"layer {name}: int8 weights out of [-127, 127]")
    return w.astype(np.int8)


def _post_fn(layer: nn.Module):
    """a -> the float32 value the layer outputs for integer accumulator ``a``."""
    if isinstance(layer, (BinaryLinear, BinaryConv2d)):
        return layer._post
    if isinstance(layer, Int8Linear):
        def post(a):
            _, scale = layer.int_weight()
            y = a * (scale * layer.input_scale)
            return y + layer.out_bias.reshape((1, -1) + (1,) * (a.dim() - 2)) if layer.out_bias is not None else y
        return post
    raise Bnn2hwError(f"no accumulator post-processing known for {type(layer).__name__}")


@torch.no_grad()
def fold_threshold(layer: nn.Module, bn: nn.Module | None, act: BinaryActivation, lo: int, hi: int,
                   spatial: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Invariant: for every integer a in [lo, hi] and channel c, ``act(bn(post(a)))[c] == +1``
    iff ``a >= thr[c]`` (direction +1) or ``a <= thr[c]`` (direction -1). See module doc."""
    post = _post_fn(layer)
    channels = layer.weight.shape[0]

    def fires(values: np.ndarray) -> np.ndarray:
        a = torch.tensor(values, dtype=torch.float32).reshape((1, channels) + (1,) * len(spatial))
        a = a.expand((1, channels) + spatial).contiguous()
        y = post(a)
        if bn is not None:
            y = bn(y)
        out = act(y)
        if spatial:
            decisions = (out >= 0).reshape(channels, -1)
            if not torch.all(decisions == decisions[:, :1]):
                raise Bnn2hwError("threshold folding: decision depends on position (float path)")
            return decisions[:, 0].numpy()
        return (out >= 0).reshape(channels).numpy()

    lo_f = fires(np.full(channels, lo, dtype=np.float64))
    hi_f = fires(np.full(channels, hi, dtype=np.float64))
    increasing = ~lo_f & hi_f
    decreasing = lo_f & ~hi_f
    thr = np.where(lo_f & hi_f, lo, hi + 1).astype(np.int64)  # constant channels
    direction = np.ones(channels, dtype=np.int8)
    # bisection: increasing -> smallest a firing; decreasing -> largest a firing
    left = np.full(channels, lo, dtype=np.int64)
    right = np.full(channels, hi, dtype=np.int64)
    while True:
        active = (increasing | decreasing) & (left < right)
        if not active.any():
            break
        mid = (left + right) // 2
        mid_dec = (left + right + 1) // 2
        probe = np.where(decreasing, mid_dec, mid)
        f = fires(probe.astype(np.float64))
        # increasing: if fires(mid) -> right = mid else left = mid + 1
        inc_upd = increasing & active
        right = np.where(inc_upd & f, mid, right)
        left = np.where(inc_upd & ~f, mid + 1, left)
        # decreasing: if fires(mid) -> left = mid else right = mid - 1
        dec_upd = decreasing & active
        left = np.where(dec_upd & f, mid_dec, left)
        right = np.where(dec_upd & ~f, mid_dec - 1, right)
    thr = np.where(increasing, left, thr)
    thr = np.where(decreasing, left, thr)
    direction = np.where(decreasing, -1, direction).astype(np.int8)
    return thr, direction


def fold_output_affine(head: ClassifierHead, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Invariant: float logits = int_logits * scale + bias (float64, equal to PyTorch's float32
    up to rounding; predicted classes are checked by :mod:`bnn2hw.export.verify`)."""
    layer = head.layer
    with torch.no_grad():
        if isinstance(layer, (BinaryLinear, BinaryConv2d)):
            scale = (layer.channel_scale() * layer.input_scale).double()
            bias = torch.zeros_like(scale)
        elif isinstance(layer, Int8Linear):
            _, s = layer.int_weight()
            n = layer.weight.shape[0]
            scale = torch.full((n,), float(s) * layer.input_scale, dtype=torch.float64)
            bias = layer.out_bias.double() if layer.out_bias is not None else torch.zeros(n, dtype=torch.float64)
        else:
            raise Bnn2hwError(f"layer {name} ({type(layer).__name__}) is full precision; bnn2hw "
                              "exports first/last layers as binary or int8 (train with --last int8)")
        if head.learn_affine:
            bias = bias * head.scale.double() + head.bias.double()
            scale = scale * head.scale.double()
    return scale.numpy(), bias.numpy()


def _acc_range(layer: nn.Module, in_kind: str, fan_in: int) -> tuple[int, int]:
    peak = 255 if in_kind == "u8" else 1
    wmax = 127 if isinstance(layer, Int8Linear) else 1
    bound = peak * wmax * fan_in
    return -bound, bound


def fold_model(model: nn.Module, spec: dict, meta: dict | None = None,
               calib: np.ndarray | None = None, approx: str = "lut", table_bits: int = 8) -> Graph:
    """Run the folding pipeline on a deployable model (``mlp``, ``cnn``, or ``mbiper-mlp`` with
    calibration data ``calib`` for its fixed-point formats and the periodic ``approx``)."""
    sur = spec.get("surrogate", {})
    if isinstance(model, BinaryResMLP):
        if calib is None:
            raise Bnn2hwError("an M-BiPer residual model needs calibration data for its fixed-point "
                              "formats (the training split is used by default)")
        layers = fold_residual_mlp(model, spec, calib, approx, table_bits)
        in_shape = [int(d) for d in spec["in_shape"]]
        ir_shape = (in_shape[1], in_shape[2], in_shape[0]) if len(in_shape) == 3 else tuple(in_shape)
        graph_meta = {"model_hash": model_hash(model), "surrogate": sur.get("name"), "w0": sur.get("w0"),
                      "arch": spec.get("arch"), "fixed_point": True, "act_approx": approx, **(meta or {})}
        return Graph(ir_shape, layers, float((meta or {}).get("input_raw_scale", 1.0)), graph_meta)
    from ..nn.residual import DeployableVGGSmall, PaddedBinaryConv2d, ResidualBNN

    if isinstance(model, ResidualBNN):
        from .fold_residual import fold_residual_model

        return fold_residual_model(model, spec, meta)
    if not isinstance(model, (BinaryMLP, BinaryCNN, DeployableVGGSmall)):
        raise Bnn2hwError(f"model {spec.get('arch')!r} ({type(model).__name__}) is not exportable: "
                          "only mlp, cnn and the quantized-stream resnet8/resnet20/vgg-small fold to the integer IR (the papers' "
                          "ResNets carry real values between binary layers)")
    model.eval()
    names = {m: n for n, m in model.named_modules()}
    mods = list(model.features) + [model.head]
    in_shape = [int(d) for d in spec["in_shape"]]
    if len(in_shape) == 3:
        c, h, w = in_shape
        shape = (h, w, c)
        ir_shape: tuple[int, ...] = (h, w, c)
    else:
        shape = (int(np.prod(in_shape)),)
        ir_shape = shape
    layers: list[Layer] = []
    kind = "u8"
    counters: dict[str, int] = {}

    def new_name(prefix: str) -> str:
        counters[prefix] = counters.get(prefix, 0) + 1
        return f"{prefix}{counters[prefix] - 1}"

    i = 0
    while i < len(mods):
        m = mods[i]
        src = names.get(m, type(m).__name__)
        if isinstance(m, nn.Flatten):
            if len(shape) == 3:
                layers.append(Layer("flatten", new_name("flatten"), src))
            shape = (int(np.prod(shape)),)
            i += 1
            continue
        if isinstance(m, nn.MaxPool2d):
            if kind != "bits":
                raise Bnn2hwError(f"layer {src}: max-pool must follow a sign activation")
            k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
            s = m.stride if isinstance(m.stride, int) else m.stride[0]
            if m.padding not in (0, (0, 0)):
                raise Bnn2hwError(f"layer {src}: padded max-pool is not supported")
            layers.append(Layer("maxpool", new_name("pool"), src, {"kernel": int(k), "stride": int(s)}))
            shape = ((shape[0] - k) // s + 1, (shape[1] - k) // s + 1, shape[2])
            i += 1
            continue
        if isinstance(m, ClassifierHead):
            lin = m.layer
            if isinstance(lin, Int8Linear):
                w = int8_weights(lin, src)
                wkind = "int8"
            elif isinstance(lin, BinaryLinear):
                w = binarize_weights(lin, src)
                wkind = "binary"
            else:
                raise Bnn2hwError(f"layer {names[lin]} ({type(lin).__name__}) is full precision; bnn2hw "
                                  "exports first/last layers as binary or int8 (train with --last int8)")
            w = _reorder_columns(w, layers, spec)
            layers.append(Layer("dense", new_name("fc"), names[lin],
                                {"in": kind, "weight_kind": wkind}, {"weight": w}))
            scale, bias = fold_output_affine(m, src)
            layers.append(Layer("affine", "logits", src, {}, {"scale": scale, "bias": bias}))
            i += 1
            continue
        if isinstance(m, (BinaryLinear, BinaryConv2d, Int8Linear)):
            bn = mods[i + 1] if i + 1 < len(mods) and isinstance(mods[i + 1], (nn.BatchNorm1d, nn.BatchNorm2d)) else None
            j = i + (2 if bn is not None else 1)
            act = mods[j] if j < len(mods) else None
            if not isinstance(act, BinaryActivation):
                raise Bnn2hwError(f"layer {src}: a hidden layer must be followed by [BatchNorm and] a "
                                  f"sign activation, found {type(act).__name__}")
            if isinstance(m, BinaryConv2d):
                if len(shape) != 3:
                    raise Bnn2hwError(f"layer {src}: conv on a flat tensor")
                w = binarize_weights(m, src)
                stride = int(m.stride[0])
                pad = m.pad if isinstance(m, PaddedBinaryConv2d) else int(m.padding[0])
                o, kh, kw, c = w.shape
                if c != shape[2]:
                    raise Bnn2hwError(f"layer {src}: expects {c} channels, gets {shape[2]}")
                fan_in = kh * kw * c
                oh = (shape[0] + 2 * pad - kh) // stride + 1
                ow = (shape[1] + 2 * pad - kw) // stride + 1
                attrs = {"in": kind, "stride": stride, "pad": pad, "weight_kind": "binary"}
                if isinstance(m, PaddedBinaryConv2d) and kind == "bits" and pad:
                    attrs["pad_value"] = m.pad_value  # the padded taps' activation (graph.py)
                layers.append(Layer("conv2d", new_name("conv"), src, attrs, {"weight": w}))
                lo, hi = _acc_range(m, kind, fan_in)
                thr, d = fold_threshold(m, bn, act, lo, hi, spatial=(oh, ow))
                shape = (oh, ow, o)
            else:
                w = int8_weights(m, src) if isinstance(m, Int8Linear) else binarize_weights(m, src)
                w = _reorder_columns(w, layers, spec)
                layers.append(Layer("dense", new_name("fc"), src,
                                    {"in": kind, "weight_kind": "int8" if isinstance(m, Int8Linear) else "binary"},
                                    {"weight": w}))
                lo, hi = _acc_range(m, kind, w.shape[1])
                thr, d = fold_threshold(m, bn, act, lo, hi)
                shape = (w.shape[0],)
            layers.append(Layer("threshold", new_name("thr"), names.get(act, "act"),
                                {"acc_range": [int(lo), int(hi)]}, {"thr": thr, "direction": d}))
            kind = "bits"
            i = j + 1
            continue
        raise Bnn2hwError(f"layer {src} ({type(m).__name__}) is not supported by the exporter")
    sur = spec.get("surrogate", {})
    graph_meta = {"model_hash": model_hash(model), "surrogate": sur.get("name"), "w0": sur.get("w0"),
                  "arch": spec.get("arch"), **(meta or {})}
    return Graph(ir_shape, layers, float((meta or {}).get("input_raw_scale", 1.0)), graph_meta)


def _reorder_columns(w: np.ndarray, layers: list[Layer], spec: dict) -> np.ndarray:
    """After a flatten of a (C, H, W) PyTorch tensor, dense columns are in (c, y, x) order; the
    IR flattens channels-last (y, x, c): permute the columns so both compute the same sums."""
    if not layers or layers[-1].op != "flatten":
        return w
    # find the shape right before the flatten by replaying the IR shapes
    h, wd, c = _shape_before_flatten(layers, spec)
    o = w.shape[0]
    return np.ascontiguousarray(w.reshape(o, c, h, wd).transpose(0, 2, 3, 1).reshape(o, -1))


def _shape_before_flatten(layers: list[Layer], spec: dict) -> tuple[int, int, int]:
    c, h, w = (int(d) for d in spec["in_shape"])
    for l in layers:
        if l.op == "conv2d":
            o, kh, kw, _ = l.arrays["weight"].shape
            s, p = l.attrs["stride"], l.attrs["pad"]
            h, w, c = (h + 2 * p - kh) // s + 1, (w + 2 * p - kw) // s + 1, o
        elif l.op == "maxpool":
            k, s = l.attrs["kernel"], l.attrs["stride"]
            h, w = (h - k) // s + 1, (w - k) // s + 1
    return h, w, c


# ---------------------------------------------------------------------------------------------
# M-BiPer residual models (eq. 7): a fixed-point value path between binary layers.

FIXED_SHIFT_MAX = 16
PERIODIC_APPROX = ("lut", "taylor", "fixed")


def choose_frac(max_abs: float, word_bits: int = 32, headroom: float = 4.0) -> int:
    """Fraction bits of a Q format for values up to ``max_abs`` (from calibration data), with
    ``headroom`` (x4 by default) so unseen inputs do not saturate; at most 24."""
    import math

    int_bits = max(0, math.ceil(math.log2(max(max_abs * headroom, 1e-9) + 1)))
    return int(max(0, min(24, word_bits - 2 - int_bits)))


def fixed_affine_params(a: np.ndarray, b: np.ndarray, frac: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Integer (mult, bias, shift) with  q = (acc * mult + bias + 2^(shift-1)) >> shift  ~
    (a * acc + b) * 2^frac: the float affine of scale, BatchNorm and bias in Q(frac)."""
    import math

    amax = float(np.max(np.abs(a))) if a.size else 1.0
    shift = FIXED_SHIFT_MAX
    if amax > 0:
        shift = int(min(FIXED_SHIFT_MAX, max(0, 30 - frac - math.ceil(math.log2(amax)))))
    mult = np.round(a * 2.0 ** (frac + shift)).astype(np.int64)
    bias = np.round(b * 2.0 ** (frac + shift)).astype(np.int64)
    if np.any(np.abs(mult) >= 2 ** 31):
        raise Bnn2hwError("fixed-point affine: multiplier does not fit int32")
    return mult, bias, shift


def _float_affine(layer: nn.Module, bn: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) with BN(post(acc)) = a * acc + b per channel (float64)."""
    with torch.no_grad():
        k = (layer.channel_scale() * layer.input_scale).double()
        inv = 1.0 / torch.sqrt(bn.running_var.double() + bn.eps)
        a = k * bn.weight.double() * inv
        b = bn.bias.double() - bn.running_mean.double() * bn.weight.double() * inv
    return a.numpy(), b.numpy()


@torch.no_grad()
def _stream_ranges(model, x_u8: np.ndarray) -> tuple[float, list[float]]:
    """max |x| of the residual stream and max |BN output| before each periodic f."""
    x = model.stem_bn(model.stem(model.flatten(torch.from_numpy(x_u8.astype(np.float32)))))
    stream = float(x.abs().max())
    pre = []
    for sign, lin, bn in zip(model.signs, model.linears, model.bns):
        z = bn(lin(sign(x)))
        pre.append(float(z.abs().max()))
        x = model.periodic(z) + x
        stream = max(stream, float(x.abs().max()))
    return stream, pre


def fold_residual_mlp(model, spec: dict, calib: np.ndarray, approx: str = "lut",
                      table_bits: int = 8) -> list[Layer]:
    """Fold an M-BiPer residual MLP (:class:`bnn2hw.nn.models.BinaryResMLP`).

    Invariants: binary weights as in :func:`binarize_weights`; each BatchNorm becomes a
    ``fixed_affine`` into a Q format chosen from ``calib`` (recorded on the op); each ``sign``
    is a ``threshold`` at 0 on the fixed-point stream (tie 0 -> +1); each ``f`` is a
    ``periodic`` op (function, w0, in/out formats, approximation) and each residual sum an
    ``add`` naming its inputs. The IR's integer semantics then define the deployed model;
    PyTorch agreement is measured, not exact (fixed point and the sin approximation)."""
    if approx not in PERIODIC_APPROX:
        raise Bnn2hwError(f"unknown --act-approx {approx!r}; valid: {', '.join(PERIODIC_APPROX)}")
    model.eval()
    names = {m: n for n, m in model.named_modules()}
    stream_max, pre_max = _stream_ranges(model, calib)
    frac = choose_frac(stream_max)
    layers: list[Layer] = [Layer("flatten", "flatten0", "flatten")]
    stem = model.stem
    if isinstance(stem, Int8Linear):
        w = int8_weights(stem, "stem")
        a_bn, b_bn = _int8_bn_affine(stem, model.stem_bn)
        wk = "int8"
    else:
        w = binarize_weights(stem, "stem")
        a_bn, b_bn = _float_affine(stem, model.stem_bn)
        wk = "binary"
    w = _reorder_columns(w, layers, spec)
    layers.append(Layer("dense", "fc0", "stem", {"in": "u8", "weight_kind": wk}, {"weight": w}))
    m, b, s = fixed_affine_params(a_bn, b_bn, frac)
    layers.append(Layer("fixed_affine", "x0", "stem_bn", {"shift": s, "frac": frac},
                        {"mult": m, "bias": b}))
    width = w.shape[0]
    zeros = np.zeros(width, dtype=np.int64)
    ones = np.ones(width, dtype=np.int8)
    w0p = float(model.periodic.w0)
    func = model.periodic.kind
    from ..mcu.periodic_tables import check_method

    check_method(func, {"fixed": "linear"}.get(approx, approx))
    for i, (sign, lin, bn) in enumerate(zip(model.signs, model.linears, model.bns)):
        x_name = layers[-1].name
        layers.append(Layer("threshold", f"sign{i}", names[sign], {"sign_of": "fixed"},
                            {"thr": zeros, "direction": ones}))
        layers.append(Layer("dense", f"fc{i + 1}", names[lin], {"in": "bits", "weight_kind": "binary"},
                            {"weight": binarize_weights(lin, names[lin])}))
        in_frac = choose_frac(pre_max[i])
        a, bb = _float_affine(lin, bn)
        m, b, s = fixed_affine_params(a, bb, in_frac)
        layers.append(Layer("fixed_affine", f"z{i}", names[bn], {"shift": s, "frac": in_frac},
                            {"mult": m, "bias": b}))
        layers.append(Layer("periodic", f"f{i}", "periodic",
                            {"func": func, "w0": w0p, "in_frac": in_frac, "out_frac": frac,
                             "approx": approx, "table_bits": table_bits,
                             "calib_range": [-pre_max[i], pre_max[i]]}))
        layers.append(Layer("add", f"x{i + 1}", f"block{i} residual", {"inputs": [f"f{i}", x_name],
                                                                        "frac": frac}))
    head = model.head
    layers.append(Layer("threshold", f"sign{len(model.linears)}", names[model.signs[-1]],
                        {"sign_of": "fixed"}, {"thr": zeros, "direction": ones}))
    lin = head.layer
    if isinstance(lin, Int8Linear):
        wl, wk = int8_weights(lin, "head.layer"), "int8"
    else:
        wl, wk = binarize_weights(lin, "head.layer"), "binary"
    layers.append(Layer("dense", f"fc{len(model.linears) + 1}", "head.layer", {"in": "bits", "weight_kind": wk},
                        {"weight": wl}))
    scale, bias = fold_output_affine(head, "head")
    layers.append(Layer("affine", "logits", "head", {}, {"scale": scale, "bias": bias}))
    return layers


def _int8_bn_affine(layer: Int8Linear, bn) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        _, s = layer.int_weight()
        inv = 1.0 / torch.sqrt(bn.running_var.double() + bn.eps)
        a = float(s) * layer.input_scale * bn.weight.double() * inv
        b = bn.bias.double() - bn.running_mean.double() * bn.weight.double() * inv
    return a.numpy(), b.numpy()
