# SPDX-License-Identifier: MIT
"""One C emitter per IR op kind (the onnx2c / TFLM shape: adding an op touches one place).

Each ``_emit_<op>(st, i, layer, nxt, lid, cmt)`` reads the op's attributes and arrays, appends
its constant data (``st.data``), its call into the runtime (``st.body``) and its output buffer
(``st.out_buf``), updates the current tensor (``st.cur``, ``st.kind``, ``st.shape``, ``st.bits``),
and returns how many IR ops it consumed (2 when a dense/conv layer absorbs the threshold or
requant that follows it into one kernel call). ``nxt`` is that following op only when it is the
sole reader of this op's tensor (so fusing it loses nothing), else None.
:func:`bnn2hw.mcu.codegen.emit` sets the current tensor to the op's (first) input before each
call, so the emitters work on any DAG. The numpy reference of each op is the function of the same
name in :mod:`bnn2hw.ir.ops`.

Memory plan (liveness, not ping-pong): every tensor the C code materializes lives in one static
byte arena. :class:`Arena` places a buffer first-fit when its op runs and frees it after the last
op that reads it has run, so a residual skip tensor (read by a block's first op and again by its
``add``) stays live across the block while the block's own temporaries reuse the space around it;
a kernel's scratch (a conv's int32 row) is freed right after its op. An elementwise op may write
over an input whose last reader it is (``reuse``). The arena's size is the peak of live bytes
under this placement. Fixed-point tensors are stored as int8_t / int16_t / int32_t by their
``bits`` (:func:`bnn2hw.ir.summary.stream_bytes`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import Bnn2hwError
from ..ir.graph import Graph
from ..ir.ops import saturation
from ..ir.summary import stream_bytes
from .codegen import _clamp_i32, _flip, c_array, c_float, dense_kernel, ident, pack_bits
from . import conv_mve_prep, conv_ps, conv_vcols
from .vcols import use_vcols, vcols_layer

CTYPE = {1: "int8_t", 2: "int16_t", 4: "int32_t"}


class Arena:
    """First-fit placement of buffers in one byte arena. Invariant: live blocks never overlap;
    ``peak`` is the highest byte any block ever reached (the arena's size)."""

    ALIGN = 4  # every block starts on a 32-bit word

    def __init__(self):
        self.live: dict[int, tuple[int, int]] = {}  # block id -> (offset, size)
        self.peak = 0
        self._next = 0

    def alloc(self, nbytes: int) -> int:
        size = -(-max(int(nbytes), 1) // self.ALIGN) * self.ALIGN
        off = 0
        for o, s in sorted(self.live.values()):
            if off + size <= o:
                break
            off = max(off, o + s)
        bid = self._next
        self._next += 1
        self.live[bid] = (off, size)
        self.peak = max(self.peak, off + size)
        return bid

    def free(self, bid: int) -> None:
        del self.live[bid]

    def expr(self, bid: int) -> str:
        """The C expression of a block: a void pointer into the arena."""
        return f"BNN_BUF({self.live[bid][0]}u)"

    def size(self, bid: int) -> int:
        return self.live[bid][1]


@dataclass
class CTensor:
    """A tensor the C code holds: its C expression, kind, IR shape, width and arena block."""

    expr: str
    kind: str
    shape: tuple
    bits: int | None = None
    block: int | None = None  # arena block (None: the input, the logits or a static)


@dataclass
class EmitState:
    """What the generator knows while it walks the graph."""

    graph: Graph
    graph_infos: dict  # IR tensor name -> bnn2hw.ir.validate.TensorInfo
    shape: tuple
    kind: str  # "u8", "bits", "acc", "fixed": what the current tensor holds
    cur: str  # the C expression of the current tensor
    bits: int | None = None  # width of the current fixed-point tensor (acc: 32)
    data: list = field(default_factory=list)  # static const data (flash)
    body: list = field(default_factory=list)  # statements of bnn_infer
    statics: list = field(default_factory=list)  # static buffers outside the arena (packed input)
    static_bytes: int = 0
    vidx_words: int = 0  # index scratch of bnn_dense_vbits (the largest column-sliced layer's), outside the arena
    cvwork_words: int = 0  # work memory of bnn_conv_vc_bits (the largest column-sliced conv's), outside the arena
    pswork_words: int = 0  # work memory of bnn_conv_ps_bits (the largest position-sliced conv's), outside the arena
    optimize: str = "speed"  # emit-c --optimize (conv_vcols.OPTIMIZE): "size" keeps every conv on the rows
    conv_choices: list = field(default_factory=list)  # per binary conv on bits: the kernel picked and why (report)
    helpers: set = field(default_factory=set)  # static helper functions model.c needs
    tensors: dict = field(default_factory=dict)  # IR tensor name -> CTensor
    steps: list = field(default_factory=list)  # IR ops that run a kernel (report)
    flash_bits: int = 0
    thr_count: int = 0
    arena: Arena = field(default_factory=Arena)
    out_block: int | None = None  # the current op's output block
    temps: list = field(default_factory=list)  # the current op's scratch blocks
    reused: set = field(default_factory=set)  # blocks an op took over from a dying input
    last_use: dict = field(default_factory=dict)  # tensor name -> index of its last reader
    op_end: int = 0  # index of the last IR op the current emitter consumes
    readers: dict = field(default_factory=dict)  # tensor name -> indices of the ops reading it (lazy)

    def readers_of(self, name: str) -> list[int]:
        """Indices of the ops that read tensor ``name`` (in graph order)."""
        if not self.readers:
            for j in range(len(self.graph.layers)):
                for n in self.graph.inputs_of(j):
                    self.readers.setdefault(n, []).append(j)
        return self.readers.get(name, [])

    def out_buf(self, nbytes: int, reuse: tuple = (), elem_bytes: int | None = None) -> str:
        """The current op's output buffer of ``nbytes``. With ``reuse`` (input tensor names of an
        elementwise op writing ``elem_bytes`` per element in index order), an input whose last
        reader is this op and whose element is at least as wide is overwritten in place."""
        for name in reuse:
            t = self.tensors[name]
            others = [u for n, u in self.tensors.items() if n != name and u.block == t.block]
            in_bytes = 4 if t.kind == "acc" else stream_bytes(t.bits)
            if (t.block is not None and not others and self.last_use.get(name, -1) <= self.op_end
                    and elem_bytes is not None and elem_bytes <= in_bytes and self.arena.size(t.block) >= nbytes):
                self.out_block = t.block
                self.reused.add(t.block)
                return self.arena.expr(t.block)
        self.out_block = self.arena.alloc(nbytes)
        return self.arena.expr(self.out_block)

    def temp(self, nbytes: int) -> str:
        """Scratch for the current op only (freed when it returns)."""
        bid = self.arena.alloc(nbytes)
        self.temps.append(bid)
        return self.arena.expr(bid)

    @property
    def in_bytes(self) -> int:
        """Bytes per element of the current tensor (acc: int32; fixed: by its bits)."""
        return 4 if self.kind == "acc" else stream_bytes(self.bits)


def _thr_for(bits: int | None, thr: np.ndarray) -> np.ndarray:
    """Thresholds as int32 for a tensor of ``bits`` bits: values beyond the tensor's range are
    clamped to just outside it (same comparison results), so they fit int32."""
    b = 32 if bits is None else bits
    lo, hi = -(2 ** (b - 1)) - 1, 2 ** (b - 1)
    return _clamp_i32(np.clip(np.asarray(thr, dtype=np.int64), lo, hi))


def _requant_params(st: EmitState, layer, lid: str) -> str:
    """Constant data of a requant op (per-channel int32 multiplier, int64 bias, uint8 shift: the
    IR's one shift per layer broadcast, so a per-channel shift needs no C change); the name of
    its bnn_requant_params_t."""
    at, a = layer.attrs, layer.arrays
    n, bits, sh = a["mult"].size, int(at["bits"]), int(at["shift"])
    st.data.append(f"/* {layer.name} <- {layer.source}: Q{at['frac']} stream of {bits} bits = "
                   f"clamp((x * mult + bias) >> {sh}) (floor shift; rounding is in the bias) */\n")
    st.data.append(c_array("int32_t", f"{lid}_mult", a["mult"]))
    st.data.append(c_array("int64_t", f"{lid}_bias", a["bias"], 4, fmt=lambda v: f"INT64_C({int(v)})"))
    st.data.append(c_array("uint8_t", f"{lid}_shift", np.full(n, sh), 16))  # the IR's scalar, per channel in C
    lo, hi = saturation(bits, at.get("lo"), at.get("hi"))  # explicit lo/hi: a hardtanh of the stream
    st.data.append(f"static const bnn_requant_params_t {lid}_p = {{{n}u, {lid}_mult, {lid}_bias, {lid}_shift, "
                   f"{lo}, {hi}, {stream_bytes(bits)}u}};\n")
    st.flash_bits += 104 * n
    return f"{lid}_p"


def _pool_geometry(st: EmitState, layer) -> tuple[int, int, int, int, int, int, int]:
    """(h, w, c, k, stride, out_h, out_w) of a k x k pool over the current (H, W, C) tensor, no
    padding (floor), as :func:`bnn2hw.ir.ops.maxpool` / ``avgpool`` compute it."""
    h, w, c = st.shape
    k, s = layer.attrs["kernel"], layer.attrs["stride"]
    return h, w, c, k, s, (h - k) // s + 1, (w - k) // s + 1


def _emit_flatten(st: EmitState, i: int, layer, nxt, lid: str, cmt: str) -> int:
    """(H, W, C) -> H*W*C; bits whose channel count is not a multiple of 32 are repacked densely
    (a fixed-point or accumulator tensor is already in (y, x, c) order: no copy)."""
    if len(st.shape) == 3 and st.kind == "bits" and st.shape[2] % 32 != 0:
        h, w, c = st.shape
        n = h * w * c
        dst = st.out_buf(4 * ((n + 31) // 32))
        st.body.append(f"{cmt}: repack per-pixel channel words into one bit vector */")
        st.body.append(f"    bnn_repack_hwc((const bnn_word_t *){st.cur}, {h * w}u, {c}u, (bnn_word_t *){dst});")
        st.cur = dst
    st.shape = (int(np.prod(st.shape)),)
    return 1


def _emit_maxpool(st: EmitState, i: int, layer, nxt, lid: str, cmt: str) -> int:
    """k x k max-pool on packed bits (max of ±1 = OR), or on a fixed-point stream."""
    if st.kind == "fixed":
        return _emit_maxpool_stream(st, i, layer, nxt, lid, cmt)
    h, w, c, k, s, oh, ow = _pool_geometry(st, layer)
    dst = st.out_buf(4 * oh * ow * ((c + 31) // 32))
    st.data.append(f"static const bnn_pool_params_t {lid}_p = {{{h}u, {w}u, {c}u, {oh}u, {ow}u, "
                   f"{k}u, {k}u, {s}u, {s}u}};\n")
    st.body.append(f"{cmt}: {k}x{k} max-pool on bits = OR */")
    st.body.append(f"    bnn_maxpool(&{lid}_p, (const bnn_word_t *){st.cur}, (bnn_word_t *){dst});")
    st.cur = dst
    st.shape = (oh, ow, c)
    st.steps.append(layer.name)
    return 1


def _dense_weights(st: EmitState, layer, w: np.ndarray, lid: str) -> str:
    o, k = w.shape
    if layer.attrs.get("weight_kind", "binary") == "binary":
        st.data.append(f"/* {layer.name} <- {layer.source}: {o} x {k} binary weights, bit 1 = +1 */\n")
        st.data.append(c_array("bnn_word_t", f"{lid}_w", pack_bits(w)))
        st.flash_bits += o * k
    else:
        st.data.append(f"/* {layer.name} <- {layer.source}: {o} x {k} int8 weights */\n")
        st.data.append(c_array("int8_t", f"{lid}_w", w.astype(np.int8), per_line=16))
        st.flash_bits += 8 * o * k
    return f"{lid}_w"


def _emit_vcols_data(st: EmitState, layer, nxt, w: np.ndarray, thr: np.ndarray, lid: str) -> None:
    """The column-sliced format of a hidden binary dense layer + threshold (bnn_dense.h,
    bnn_dense_vbits) and its params, opening ``#if BNN_DENSE_VCOLS``; the row format follows in the
    ``#else`` branch (_emit_dense closes it).  Flash is counted once, for the row format (the same
    weight bits; the start-value planes take fewer bytes than the 4 B per threshold counted)."""
    o, k = w.shape
    lay = vcols_layer(w, np.clip((k - thr) // 2, -1, k))  # acc >= T <=> popcount(x^w) <= floor((K-T)/2)
    tname = ident(nxt.name)
    st.data.append("#if BNN_DENSE_VCOLS /* column-sliced (bnn_dense_vbits); row format in the #else */\n")
    st.data.append(f"/* {layer.name} <- {layer.source}: {o} x {k} binary weights by columns, 32 outputs per "
                   f"word, {k} columns + zero + 2 parity columns per group */\n")
    st.data.append(c_array("bnn_word_t", f"{lid}_wc", lay.wc))
    st.data.append(f"/* {nxt.name} <- {nxt.source}: count start values, {lay.nv} planes x 2 sets per group */\n")
    st.data.append(c_array("bnn_word_t", f"{tname}_tv", lay.tv))
    st.data.append(f"static const bnn_dense_vparams_t {lid}_vp = BNN_DENSE_VPARAMS({k}u, {o}u, {lay.nq}u, {lay.nv}u, "
                   f"{lay.off}u);\n")
    st.data.append("#else\n")


def _is_logits(st: EmitState, i: int) -> bool:
    return i == max(j for j, l in enumerate(st.graph.layers) if l.op == "dense")


def _emit_dense(st: EmitState, i: int, layer, nxt, lid: str, cmt: str) -> int:
    """Dense layer: the integer logits (last dense), or with the following threshold one kernel
    call producing bits (popcount form on bits input), else int32 accumulators for the next op
    (requant, fixed_affine, a threshold that is not its sole reader). On a fixed-point stream it
    reads int8/int16/int32 values with int8 or binary weights (bnn_dense_stream_*)."""
    logits = _is_logits(st, i)
    fuse = not logits and nxt is not None and nxt.op == "threshold" and st.kind in ("u8", "bits")
    w, thr = _flip(layer, nxt if fuse else None)
    o, k = w.shape
    wk = layer.attrs.get("weight_kind", "binary")
    # a hidden binary layer on bits: the column-sliced kernel (bnn_dense_vbits) where the count model
    # prefers it, both stored formats emitted and BNN_DENSE_VCOLS (bnn_dense.h, per core) picking one
    vcols = fuse and st.kind == "bits" and wk == "binary" and use_vcols(k, o)
    if vcols:
        _emit_vcols_data(st, layer, nxt, w, thr, lid)
    wname = _dense_weights(st, layer, w, lid)
    dst = "logits" if logits else None
    if st.kind == "fixed":
        st.data.append(f"static const bnn_stream_dense_params_t {lid}_p = {{{k}u, {o}u, {st.in_bytes}u}};\n")
        dst = dst or st.out_buf(4 * o)
        fn = "bnn_dense_stream_s8" if wk == "int8" else "bnn_dense_stream_bin"
        st.body.append(f"{cmt}: {k} {CTYPE[st.in_bytes]} stream values -> {o} "
                       f"{'integer logits' if logits else 'int32 accumulators'} */")
        st.body.append(f"    {fn}(&{lid}_p, {st.cur}, {wname}, (int32_t *){dst});")
        st.cur, st.kind, st.shape, st.bits = dst, "acc", (o,), 32
        st.steps.append(layer.name)
        return 1
    src = f"(const bnn_word_t *){st.cur}" if st.kind == "bits" else st.cur
    if not fuse:
        fn, ptype = dense_kernel(layer, st.kind, wk, "acc")
        st.data.append(f"static const {ptype} {lid}_p = {{{k}u, {o}u}};\n")
        dst = dst or st.out_buf(4 * o)
        st.body.append(f"{cmt}: {'integer logits' if logits else f'{k} -> {o} integer accumulators'} */")
        st.body.append(f"    {fn}(&{lid}_p, {src}, {wname}, (int32_t *){dst});")
        st.cur, st.kind, st.shape, st.bits = dst, "acc", (o,), 32
        st.steps.append(layer.name)
        return 1
    fn, ptype = dense_kernel(layer, st.kind, wk, "bits")
    st.data.append(f"static const {ptype} {lid}_p = {{{k}u, {o}u}};\n")
    dst = st.out_buf(4 * ((o + 31) // 32))
    tname = ident(nxt.name)
    if st.kind == "bits":
        mm = np.clip((k - thr) // 2, -1, k)  # acc >= T <=> popcount(x^w) <= floor((K-T)/2)
        st.data.append(f"/* {nxt.name} <- {nxt.source}: max mismatches per output (popcount form) */\n")
        st.data.append(c_array("int32_t", f"{tname}_mm", mm))
        call = f"{fn}(&{lid}_p, {src}, {wname}, {tname}_mm, (bnn_word_t *){dst});"
    else:
        st.data.append(f"/* {nxt.name} <- {nxt.source}: thresholds on the integer accumulator */\n")
        st.data.append(c_array("int32_t", f"{tname}_thr", _clamp_i32(thr)))
        call = f"{fn}(&{lid}_p, {src}, {wname}, {tname}_thr, (bnn_word_t *){dst});"
    st.thr_count += o
    st.body.append(f"{cmt} + {nxt.name}: {k} -> {o}, thresholded to bits */")
    if vcols:
        st.data.append("#endif /* BNN_DENSE_VCOLS */\n")
        # BNN_DENSE_VIDX_WORDS(k) indices: one static buffer under #if BNN_DENSE_VCOLS (codegen.emit),
        # not an arena temp, so cores that keep the row kernels (Helium) do not reserve it
        st.vidx_words = max(st.vidx_words, (k // 2 + 16) // 16 * 16)
        st.body += ["#if BNN_DENSE_VCOLS",
                    f"    bnn_dense_vbits(&{lid}_vp, {src}, {lid}_wc, {tname}_tv, bnn_vidx, (bnn_word_t *){dst});",
                    "#else", "    " + call, "#endif"]
    else:
        st.body.append("    " + call)
    st.cur, st.kind, st.shape, st.bits = dst, "bits", (o,), None
    st.steps.append(layer.name)
    return 2


def fold_requant_threshold(rq, th, bound: int):
    """A requant whose only reader is a threshold, as one threshold on the accumulator: the
    returned ``(thr, direction)`` give, for every integer |acc| <= ``bound``, exactly the bits of
    ``threshold(requant(acc))`` (:mod:`bnn2hw.ir.ops` references, evaluated on the whole range).
    Valid because requant is monotone in acc per channel (a multiply by mult[c], a floor shift, a
    clamp), so the set of accumulators giving +1 is a prefix or a suffix of [-bound, bound];
    a channel that is constant gets thr = -bound (always +1) or bound + 1 (never).
    Returns None if some channel is not monotone (cannot happen for a valid requant)."""
    from ..ir import ops

    mult, bias = rq.arrays["mult"].astype(np.int64), rq.arrays["bias"].astype(np.int64)
    sh, bits = int(rq.attrs["shift"]), int(rq.attrs["bits"])
    n = mult.size
    acc = np.arange(-bound, bound + 1, dtype=np.int64)
    thr, direction = np.empty(n, np.int64), np.empty(n, np.int8)
    step = max(1, (1 << 21) // acc.size)
    for c0 in range(0, n, step):
        cs = slice(c0, min(n, c0 + step))
        r = ops.requant(acc[:, None], mult[cs], bias[cs], sh, bits, rq.attrs.get("lo"), rq.attrs.get("hi"))
        on = ops.threshold(r, th.arrays["thr"][cs], th.arrays["direction"][cs]) > 0
        for j, b in enumerate(on.T):
            c = c0 + j
            if b.all() or not b.any():
                thr[c], direction[c] = (-bound if b[0] else bound + 1), 1
            elif (np.diff(b.astype(np.int8)) >= 0).all():  # 0..0 1..1: acc >= first +1
                thr[c], direction[c] = acc[np.argmax(b)], 1
            elif (np.diff(b.astype(np.int8)) <= 0).all():  # 1..1 0..0: acc <= last +1
                thr[c], direction[c] = acc[b.size - 1 - np.argmax(b[::-1])], -1
            else:
                return None
    return thr, direction


def _conv_bound(st: EmitState, layer) -> int:
    """|acc| <= K = kh kw cin (packed bits input) or 255 K (uint8 input)."""
    _, kh, kw, c = layer.arrays["weight"].shape
    return kh * kw * c * (255 if st.kind == "u8" else 1)


def _stream_epilogue(st: EmitState, i: int, rq):
    """What the requant (op i + 1) of conv i feeds, for the fused kernel: ``(add, thr, store)``
    with ``add`` the residual add (op i + 2) when the requant's only reader is that add and the
    add's other input is already in memory, ``thr`` a threshold fused into the same pass (op
    right after the add or the requant, reading its tensor) and ``store`` whether that tensor
    must still be written (it has readers besides the fused threshold)."""
    layers = st.graph.layers
    add = None
    if st.readers_of(rq.name) == [i + 2] and layers[i + 2].op == "add":
        other = [n for n in st.graph.inputs_of(i + 2) if n != rq.name]
        t = st.tensors.get(other[0]) if len(other) == 1 else None
        if t is not None and t.kind == "fixed" and t.block is not None:
            add = layers[i + 2]
    v = add if add is not None else rq  # the tensor the stream value is
    j = i + 3 if add is not None else i + 2
    thr = None
    if j < len(layers) and layers[j].op == "threshold" and st.graph.inputs_of(j) == [v.name]:
        thr = layers[j]
    store = thr is None or any(r != j for r in st.readers_of(v.name))
    return add, thr, store


def _emit_conv_vc_data(st: EmitState, layer, nxt, w: np.ndarray, thr: np.ndarray, lid: str, geom: str,
                       pad_minus1: int, s: int) -> None:
    """The column-sliced format of a binary conv + threshold (bnn_conv_vc.h: columns tap-major,
    per-tap +1 counts, the layer struct; thresholds shared with the row format), opening
    ``#if BNN_CONV_VCOLS``; the row-format weights follow in the ``#else`` branch (_emit_conv2d
    closes it).  Flash is counted once, for the row format (the same weight bits; the per-tap
    counts add 2 B per channel and tap when the layer has no class table).  Returns whether the
    class table is complete (the work memory then has no class cache)."""
    o, kh, kw, c = w.shape
    npos = conv_vcols.layer_npos(c, o, kw, s, kh)
    tname = ident(nxt.name)
    st.data.append("#if BNN_CONV_VCOLS /* column-sliced (bnn_conv_vc_bits); row format in the #else */\n")
    st.data.append(f"/* {layer.name} <- {layer.source}: {o} x {kh}x{kw}x{c} binary weights by columns, "
                   f"32 lanes per word ({o // 32} full groups, then {o % 32} channels x {npos} positions) */\n")
    st.data.append(c_array("bnn_word_t", f"{lid}_wc", conv_vcols.pack_columns(w, s, npos)))
    h, wd = st.shape[0], st.shape[1]
    p = layer.attrs["pad"]
    on_rows = conv_vcols.tail_on_rows(c, o, kh, kw, s)
    complete = conv_vcols.use_class_table(h, wd, c, o, kh, kw, s, p)
    if complete:
        # every border class's compare planes, precomputed (table_complete: the kernel builds none,
        # so it needs neither the per-tap counts nor a class cache)
        tab = conv_vcols.class_table(w, _clamp_i32(thr), h, wd, s, p, npos, bool(pad_minus1), not on_rows)
        st.data.append(f"/* {layer.name}: the {tab.shape[0]} border classes' start-value planes (bnn_conv_vc.h) */\n")
        st.data.append(c_array("bnn_word_t", f"{lid}_cls", tab.ravel()))
        cls = f"NULL, {tab.shape[0]}u, {lid}_cls"
    else:
        st.data.append(c_array("int16_t", f"{lid}_ct", conv_vcols.tap_counts(w).ravel()))
        cls = f"{lid}_ct, 0u, NULL"
    if on_rows:
        # the few tail channels on the row kernel (bnn_conv_vc_t.tail_rows), row format
        st.data.append(f"/* {layer.name}: channels {32 * (o // 32)}..{o - 1} in the row format (the row kernel "
                       "runs them) */\n")
        st.data.append(c_array("bnn_word_t", f"{lid}_wt", pack_bits(w[32 * (o // 32):])))
        cls += f", {lid}_wt"
    else:
        cls += ", NULL"
    st.data.append(f"static const bnn_conv_vc_t {lid}_vc = {{{{{geom}}}, {pad_minus1}u, {npos}u, {lid}_wc, "
                   f"{tname}_thr, {cls}, {int(complete)}u}};\n")
    st.data.append("#else\n")
    return complete


def _mve_prep_call(st: EmitState, w: np.ndarray, thr: np.ndarray, lid: str, tname: str, geo: tuple,
                   pad_minus1: int, call: str, dst: str, vc: bool = False, ps: bool = False) -> list[str]:
    """Cortex-M55 (Helium) bits conv + threshold: the statement lines running ``call`` (the plain
    bnn_conv_bits / _m1 call) or, under ``#if BNN_MVE`` when the column-image conv applies
    (conv_mve_prep.fits), ``bnn_conv_bits_mve_prep`` on generation-time row-dense weights and M
    tables (conv_mve_prep.py; extra flash on Helium builds only: the rows when cin % 32 != 0, 4 B
    per M entry, the class bytes).  geo = (h, w, oh, ow, stride, pad); vc: the call sits in the ``#else`` of
    ``#if BNN_CONV_VCOLS`` (the row-format data only exists there); ps: in the ``#else`` of
    ``#if BNN_CONV_PS`` (the position-sliced conv, never on Helium)."""
    _, kh, kw, c = w.shape
    h, wd, oh, ow, s, p = geo
    call = _m4_prep_call(st, w, thr, lid, tname, geo, pad_minus1, call, dst, vc, ps)
    if st.kind != "bits" or not conv_mve_prep.fits(h, c, kh, kw, s, oh):
        return ["#if BNN_MVE", call[2], "#else", call[3], "#endif"] if call[0] == "#if !BNN_MVE" else call
    m, xcls, ycls, cpad = conv_mve_prep.m_tables(w, thr, (h, wd), (oh, ow), s, p, bool(pad_minus1))
    guard = "BNN_MVE && !BNN_CONV_VCOLS" if vc else "BNN_MVE"
    st.data.append(f"#if {guard} /* {lid}: Helium column-image conv, weight side prepared (conv_mve_prep.py) */\n")
    wr = f"{lid}_w"  # cin % 32 == 0: the row-dense layout is the plain one, no copy
    if c % 32:
        wr = f"{lid}_wr"
        st.data.append(c_array("bnn_word_t", wr, conv_mve_prep.row_dense_weights(w)))
    st.data.append(f"/* popcount bounds M of {m.shape[0]} window classes x {cpad} channels */\n")
    st.data.append(c_array("int32_t", f"{lid}_m", m))
    st.data.append(c_array("uint8_t", f"{lid}_xc", xcls))
    st.data.append(c_array("uint8_t", f"{lid}_yc", ycls))
    st.data.append(f"static const bnn_conv_mve_prep_t {lid}_q = {{{pad_minus1}u, {len(set(xcls.tolist()))}u, "
                   f"{cpad}u, {wr}, {lid}_m, {lid}_xc, {lid}_yc, {lid}_w, {tname}_thr}};\n#endif\n")
    prep = f"    bnn_conv_bits_mve_prep(&{lid}_p, &{lid}_q, (const bnn_word_t *){st.cur}, (bnn_word_t *){dst});"
    if call[0] == "#if !BNN_MVE":  # the plain call, then the prepared row-kernel entry
        return ["#if BNN_MVE", prep, "#else", call[3], "#endif"]
    return ["#if BNN_MVE", prep, "#else", *call, "#endif"]


def _m4_prep_call(st: EmitState, w: np.ndarray, thr: np.ndarray, lid: str, tname: str, geo: tuple,
                  pad_minus1: int, call: str, dst: str, vc: bool = False, ps: bool = False) -> list[str]:
    """Cores without Helium, bits conv + threshold: ``bnn_conv_bits_prep`` on the weight side
    prepared at generation time (conv_m4_prep.py: the rows in the row kernel's layout, M per window
    class), when the row kernel runs the shape (conv_m4_prep.fits); ``bnn_conv_bits_few`` on the same
    data where it measured faster (conv_m4_prep.use_few: few output positions, 3x3x16 / 3x3x32 at any
    size in tiles), not with --optimize size; 3x3 layers of at most 16 output positions (conv_tile.applies)
    on ``bnn_conv_bits_tile`` with the tile's patch packer and M-row list written here (conv_tile.py).
    Returns [call] or
    ["#if !BNN_MVE", "#else", call, prep] (the caller puts the Helium branch first).  Extra flash:
    4 B per M entry (one table at -1 or no padding, up to 9 at zero padding), the class bytes, and
    the prepared rows unless they are the plain ones (cin % 32 == 0)."""
    from . import conv_m4_prep, conv_tile

    _, kh, kw, c = w.shape
    h, wd, oh, ow, s, p = geo
    # bnn_conv_bits_few where it measured faster (about 4 KB more code on Cortex-M4, not with --optimize size)
    few = st.optimize != "size" and conv_m4_prep.use_few(c, kh, kw, (h, wd), (oh, ow), s, p)
    if st.kind != "bits" or not conv_m4_prep.fits(c, kh, kw) or not conv_m4_prep.worth(c, kh, kw, oh, ow, p,
                                                                                      bool(pad_minus1), few):
        return [call]
    q = conv_m4_prep.prepare(w, thr, (h, wd), (oh, ow), s, p, bool(pad_minus1))
    guard = "!BNN_MVE && !BNN_CONV_VCOLS" if vc else ("!BNN_MVE && !BNN_CONV_PS" if ps else "!BNN_MVE")
    st.data.append(f"#if {guard} /* {lid}: row-kernel conv, weight side prepared (conv_m4_prep.py) */\n")
    wr = f"{lid}_w"
    if q["pairs"] or q["nw"] != kh * kw * -(-c // 32):
        wr = f"{lid}_w4"
        what = (("3x3x16 pair records" if c == 16 else "3x3x24 rows, seventh word tail-spread") if q["pairs"]
                else f"rows of {q['nw']} packed words")
        st.data.append(f"/* {what} */\n")
        st.data.append(c_array("bnn_word_t", wr, q["rows"]))
    st.data.append(f"/* popcount bounds M of {q['m'].shape[0]} window classes x {q['m'].shape[1]} channels"
                   + (" (the last a pad: never fires)" if q["m"].shape[1] > w.shape[0] else "")
                   + (" (~M, record kernel)" if q["pairs"] else "") + " */\n")
    st.data.append(c_array("int32_t", f"{lid}_m4", q["m"]))
    st.data.append(c_array("uint8_t", f"{lid}_xc4", q["xcls"]))
    st.data.append(c_array("uint8_t", f"{lid}_yc4", q["ycls"]))
    st.data.append(f"static const bnn_conv_prep_t {lid}_q4 = {{{pad_minus1}u, {q['nx']}u, {q['m'].shape[1]}u, "
                   f"{q['nw']}u, {q['pairs']}u, {wr}, {lid}_m4, {lid}_xc4, {lid}_yc4, {lid}_w, {tname}_thr}};\n")
    # at most 16 output positions: the tile's per-call work done here (conv_tile.py)
    tile = st.optimize != "size" and conv_tile.applies(c, kh, kw, (oh, ow))
    if tile:
        st.data.append(conv_tile.tile_c(lid, f"{lid}_m4", c, q, (h, wd), (oh, ow), s, p))
    st.data.append("#endif\n")
    entry, extra = ("tile", f", &{lid}_tile") if tile else ("few" if few else "prep", "")
    prep = (f"    bnn_conv_bits_{entry}(&{lid}_p, &{lid}_q4{extra}, (const bnn_word_t *){st.cur}, "
            f"(bnn_word_t *){dst});")
    return ["#if !BNN_MVE", "#else", call, prep]


def _conv_choice(name: str, vc: bool, optimize: str, geo: tuple, ps: bool = False) -> dict:
    """report.json's record of a binary conv + threshold on bits: the kernel picked where
    BNN_CONV_VCOLS / BNN_CONV_PS are on (Cortex-M3/M4/M7/M33 with the multi popcount; the other cores
    run the rows or their prepared variant), the count model's Cortex-M4 estimates (column-sliced,
    rows, prepared rows, position-sliced), the layer's flash of each format (weights and tables, not
    the kernels' code, which is paid once per image) and the column- and position-sliced kernels'
    work memory (static buffers under their switches, the largest layer's each)."""
    h, wd, c, o, kh, kw, s, p, m1 = geo  # the last: -1 padding (the estimates take it from geo)
    npos = conv_vcols.layer_npos(c, o, kw, s, kh)
    ok = conv_vcols.supported(kh, kw, c, o, s, npos)
    complete = conv_vcols.use_class_table(h, wd, c, o, kh, kw, s, p)
    ps_ok = conv_ps.supported(h, wd, c, o, kh, kw, s, p)
    return {"layer": name, "kernel": "position-sliced" if ps else ("column-sliced" if vc else "rows"),
            "optimize": optimize, "column_sliced_supported": ok, "position_sliced_supported": ps_ok,
            "estimated_instructions_m4": {"column_sliced": round(conv_vcols.vc_estimate(*geo)) if ok else None,
                                          "rows": round(conv_vcols.rows_estimate(*geo)),
                                          "prepared_rows": round(conv_vcols.prep_estimate(*geo)),
                                          "position_sliced": round(conv_ps.ps_estimate(*geo)) if ps_ok else None},
            "flash_bytes": {"column_sliced": conv_vcols.vc_flash_bytes(h, wd, c, o, kh, kw, s, p) if ok else None,
                            "rows": conv_vcols.rows_flash_bytes(c, o, kh, kw),
                            "position_sliced": (conv_vcols.rows_flash_bytes(c, o, kh, kw)
                                                + conv_ps.flash_bytes(h, wd, c, o, kh, kw, s, p, m1)) if ps_ok else None},
            "column_sliced_work_bytes": 4 * conv_vcols.work_words(wd, c, o, kh, kw, s, npos, complete) if ok else None,
            "position_sliced_work_bytes": 4 * conv_ps.work_words(h, wd, c, o, kh, kw, s, p) if ps_ok else None}


def _emit_conv_ps_data(st: EmitState, layer, w: np.ndarray, thr: np.ndarray, lid: str, tname: str, geom: str,
                       geo: tuple, pad_minus1: int) -> None:
    """The position-sliced conv's generation-time data (bnn_conv_ps.h, conv_ps.prepare: the shorter
    weight set's indices per channel, their lengths, the S0 flags, the compare values per window
    class) and its layer struct, under ``#if BNN_CONV_PS``, after the row-format weights and
    thresholds (its fallback and the other cores' kernels read those)."""
    o = w.shape[0]
    h, wd, oh, ow, s, p = geo
    q = conv_ps.prepare(w, _clamp_i32(thr), (h, wd), (oh, ow), s, p, bool(pad_minus1))
    it = "uint8_t" if q["idx8"] else "uint16_t"
    st.data.append(f"#if BNN_CONV_PS /* {lid}: position-sliced conv (bnn_conv_ps_bits), lists and compare values */\n")
    st.data.append(f"/* {layer.name}: per channel the indices of its shorter weight set (+1 or -1 weights), "
                   f"{int(q['len'].sum())} in all */\n")
    st.data.append(c_array(it, f"{lid}_pi", q["idx"]))
    st.data.append(c_array("uint16_t", f"{lid}_pl", q["len"]))
    st.data.append(c_array("uint32_t", f"{lid}_pn", q["neg"]))
    st.data.append(f"/* compare values of {q['v'].shape[0]} window classes x {o} channels */\n")
    st.data.append(c_array("int32_t", f"{lid}_pv", q["v"]))
    st.data.append(c_array("uint8_t", f"{lid}_px", q["xcls"]))
    st.data.append(c_array("uint8_t", f"{lid}_py", q["ycls"]))
    i8, i16 = (f"{lid}_pi", "NULL") if q["idx8"] else ("NULL", f"{lid}_pi")
    st.data.append(f"static const bnn_conv_ps_t {lid}_ps = {{{{{geom}}}, {pad_minus1}u, {q['nx']}u, {q['m']}u, {i8}, "
                   f"{i16}, {lid}_pl, {lid}_pn, {lid}_pv, {lid}_px, {lid}_py, {lid}_w, {tname}_thr}};\n#endif\n")


def _emit_conv2d(st: EmitState, i: int, layer, nxt, lid: str, cmt: str) -> int:
    """Binary conv (uint8 or packed-bit input, any kernel size and stride) fused with the ops
    that read its accumulator: a threshold (packed bits out), or a requant and what follows it.

    * requant -> threshold (the threshold the requant's only reader): folded into one threshold
      on the accumulator (:func:`fold_requant_threshold`), the stream is never materialized.
    * requant [-> add of a stream already in memory] [-> threshold]: one pass per output row
      (``bnn_conv_stream``, ``bnn_stream.h``): requant, saturating add, store the stream when
      another op reads it, compare with the next block's thresholds and pack the bits.
    * else requant alone (``bnn_conv_requant``).

    A threshold runs inside the conv kernel, packed bits out: ``bnn_conv_bits`` /
    ``bnn_conv_u8_bits`` at zero padding (``pad_value`` 0, a padded tap contributes 0),
    ``bnn_conv_bits_m1`` for packed bits input at ``pad_value`` -1 (the patch's zero bits at padded
    taps are the -1 activation, so one threshold per channel holds at every position); a uint8
    input at -1 padding takes the accumulator rows. Everything else runs row by row
    (``bnn_stream.c``): the accumulator kernel (patch + popcount-mode row kernel for bits input)
    fills one int32 output row (scratch, out_w * cout words); with ``pad_value`` -1 it takes the
    zero bits of padded taps as the -1 activation (flag ``pad_minus1``); then the row is
    thresholded or requantized, so the int32 tensor is never stored whole."""
    at = layer.attrs
    pv = int(at.get("pad_value", 0))
    if at.get("weight_kind") == "int8":
        return _emit_conv_u8_s8(st, i, layer, nxt, lid, cmt)
    if nxt is None or nxt.op not in ("threshold", "requant"):
        raise Bnn2hwError(f"IR layer {layer.name} ({layer.source}): the C back end needs a conv's accumulator "
                          "to be read by exactly one op, the next one, and that op to be a threshold or a requant")
    used = 2
    if nxt.op == "requant" and i + 2 < len(st.graph.layers):
        th = st.graph.layers[i + 2]
        if th.op == "threshold" and st.readers_of(nxt.name) == [i + 2] and st.graph.inputs_of(i + 2) == [nxt.name]:
            folded = fold_requant_threshold(nxt, th, _conv_bound(st, layer))
            if folded is not None:
                from ..ir.graph import Layer

                nxt = Layer("threshold", th.name, f"{nxt.source} + {th.source} (requant folded into the "
                            f"threshold of the accumulator)", {}, {"thr": folded[0], "direction": folded[1]})
                used = 3
    w, thr = _flip(layer, nxt)  # thr is None for a requant (its multiplier carries the sign)
    o, kh, kw, c = w.shape
    h, wd, _ = st.shape
    s, p = at["stride"], at["pad"]
    oh, ow = (h + 2 * p - kh) // s + 1, (wd + 2 * p - kw) // s + 1
    geom = f"{h}u, {wd}u, {c}u, {oh}u, {ow}u, {o}u, {kh}u, {kw}u, {s}u, {s}u, {p}u, {p}u"
    pad_minus1 = int(pv == -1 and p > 0)  # the kernel takes a zero bit of the patch as the -1 activation
    tname = ident(nxt.name)
    # binary conv + threshold on bits: the column-sliced kernel (bnn_conv_vc_bits) where its count
    # model wins; both stored formats are emitted and BNN_CONV_VCOLS (bnn_conv_vc.h, per core) picks one
    vc = (nxt.op == "threshold" and st.kind == "bits"
          and conv_vcols.use_vc(h, wd, c, o, kh, kw, s, p, bool(pad_minus1), optimize=st.optimize))
    # the position-sliced kernel (bnn_conv_ps_bits, BNN_CONV_PS) where its count model beats the kernel
    # picked so far (conv_ps.use_ps); it replaces the column-sliced one on the same cores
    ps = (nxt.op == "threshold" and st.kind == "bits"
          and conv_ps.use_ps(h, wd, c, o, kh, kw, s, p, bool(pad_minus1), st.optimize, vc))
    vc = vc and not ps
    if nxt.op == "threshold" and st.kind == "bits":
        st.conv_choices.append(_conv_choice(layer.name, vc, st.optimize, (h, wd, c, o, kh, kw, s, p, bool(pad_minus1)),
                                            ps))
    if vc:  # the thresholds first: both formats read them
        st.data.append(f"/* {nxt.name} <- {nxt.source}: thresholds on the accumulator */\n")
        st.data.append(c_array("int32_t", f"{tname}_thr", _clamp_i32(thr)))
        complete = _emit_conv_vc_data(st, layer, nxt, w, thr, lid, geom, pad_minus1, s)
    st.data.append(f"/* {layer.name} <- {layer.source}: {o} x {kh}x{kw}x{c} binary weights, "
                   "channels packed per tap */\n")
    st.data.append(c_array("bnn_word_t", f"{lid}_w", pack_bits(w)))
    st.flash_bits += o * kh * kw * c
    src = st.cur if st.kind == "u8" else f"(const bnn_word_t *){st.cur}"
    pad_txt = f"pad {p}" + (" (padded tap = -1)" if pv == -1 and p else "")
    if nxt.op == "threshold":
        if vc:
            st.data.append(f"static const bnn_conv_params_t {lid}_p = {{{geom}}};\n")
            st.data.append("#endif /* BNN_CONV_VCOLS */\n")
        else:
            st.data.append(f"/* {nxt.name} <- {nxt.source}: thresholds on the accumulator */\n")
            st.data.append(c_array("int32_t", f"{tname}_thr", _clamp_i32(thr)))
        st.thr_count += o
        dst = st.out_buf(4 * oh * ow * ((o + 31) // 32))
        st.body.append(f"{cmt} + {nxt.name}: conv {kh}x{kw}/{s} {pad_txt}, {c} -> {o} channels, to bits */")
        if vc:
            npos = conv_vcols.layer_npos(c, o, kw, s, kh)
            # the work memory: one static buffer under #if BNN_CONV_VCOLS (codegen.emit), the
            # largest layer's, not an arena temp, so cores on the row kernels reserve none
            st.cvwork_words = max(st.cvwork_words, conv_vcols.work_words(wd, c, o, kh, kw, s, npos, complete))
            fn = "bnn_conv_bits_m1" if pad_minus1 else "bnn_conv_bits"
            st.body += ["#if BNN_CONV_VCOLS",
                        f"    bnn_conv_vc_bits(&{lid}_vc, (const bnn_word_t *){st.cur}, bnn_cvwork, "
                        f"(bnn_word_t *){dst});",
                        "#else"] + _mve_prep_call(
                st, w, thr, lid, tname, (h, wd, oh, ow, s, p), pad_minus1,
                f"    {fn}(&{lid}_p, {src}, {lid}_w, {tname}_thr, (bnn_word_t *){dst});", dst, True) + ["#endif"]
        elif pv == 0 or p == 0 or st.kind == "bits":
            params = f"static const bnn_conv_params_t {lid}_p = {{{geom}}};\n"
            st.data.append(f"#if !BNN_CONV_PS /* the position-sliced struct holds its own */\n{params}#endif\n"
                           if ps else params)
            fn = "bnn_conv_u8_bits" if st.kind == "u8" else ("bnn_conv_bits_m1" if pad_minus1 else "bnn_conv_bits")
            calls = _mve_prep_call(st, w, thr, lid, tname, (h, wd, oh, ow, s, p), pad_minus1,
                                   f"    {fn}(&{lid}_p, {src}, {lid}_w, {tname}_thr, (bnn_word_t *){dst});", dst,
                                   ps=ps)
            if ps:
                # the work memory: one static buffer under #if BNN_CONV_PS (codegen.emit), the largest
                # layer's, not an arena temp, so cores without the kernel reserve none
                _emit_conv_ps_data(st, layer, w, thr, lid, tname, geom, (h, wd, oh, ow, s, p), pad_minus1)
                st.pswork_words = max(st.pswork_words, conv_ps.work_words(h, wd, c, o, kh, kw, s, p))
                calls = ["#if BNN_CONV_PS",
                         f"    bnn_conv_ps_bits(&{lid}_ps, (const bnn_word_t *){st.cur}, bnn_pswork, (bnn_word_t *){dst});",
                         "#else", *calls, "#endif"]
            st.body += calls
        else:
            st.data.append(f"static const bnn_conv_rows_params_t {lid}_p = {{{{{geom}}}, "
                           f"{int(st.kind == 'u8')}u, {pad_minus1}u}};\n")
            row = st.temp(4 * ow * o)
            st.body.append(f"    bnn_conv_threshold_rows(&{lid}_p, {st.cur}, {lid}_w, {tname}_thr, "
                           f"(int32_t *){row}, (bnn_word_t *){dst});")
        st.cur, st.kind, st.shape, st.bits = dst, "bits", (oh, ow, o), None
        st.steps.append(layer.name)
        return used
    rq = _requant_params(st, nxt, tname)
    st.data.append(f"static const bnn_conv_rows_params_t {lid}_p = {{{{{geom}}}, "
                   f"{int(st.kind == 'u8')}u, {pad_minus1}u}};\n")
    add, th, store = _stream_epilogue(st, i, nxt)
    conv_in = st.cur
    if add is None and th is None:
        bits = int(nxt.attrs["bits"])
        dst = st.out_buf(stream_bytes(bits) * oh * ow * o)
        row = st.temp(4 * ow * o)
        st.body.append(f"{cmt} + {nxt.name}: conv {kh}x{kw}/{s} {pad_txt}, {c} -> {o} channels, "
                       f"requantized to a {bits}-bit stream ({CTYPE[stream_bytes(bits)]}) */")
        st.body.append(f"    bnn_conv_requant(&{lid}_p, {conv_in}, {lid}_w, &{rq}, (int32_t *){row}, {dst});")
        st.cur, st.kind, st.shape, st.bits = dst, "fixed", (oh, ow, o), bits
        st.steps.append(layer.name)
        return 2
    v = add if add is not None else nxt  # the op whose tensor the fused pass computes
    bits = int(v.attrs.get("bits", 32))
    ob = stream_bytes(bits)
    n = oh * ow * o
    skip, sb, lo, hi, what = "NULL", 0, 0, 0, [f"requant to {bits} bits"]
    if add is not None:
        other = next(nm for nm in st.graph.inputs_of(i + 2) if nm != nxt.name)
        t = st.tensors[other]
        skip, sb = t.expr, stream_bytes(t.bits)
        lo, hi = saturation(bits, add.attrs.get("lo"), add.attrs.get("hi"))  # lo/hi: a hardtanh of the sum
        what.append(f"+ {other} ({add.name}), saturated to [{lo}, {hi}]")
        st.op_end = i + 2  # the stream may overwrite the skip when the add is its last reader
    out, vblock = "NULL", None
    if store:
        out = st.out_buf(ob * n, reuse=(other,) if add is not None else (), elem_bytes=ob)
        vblock = st.out_block
        what.append(f"stored ({CTYPE[ob]})")
    thr_arg, dir_arg, bits_out = "NULL", "NULL", "NULL"
    if th is not None:
        ttn = ident(th.name)
        st.data.append(f"/* {th.name} <- {th.source}: thresholds on the stream {v.name} */\n")
        st.data.append(c_array("int32_t", f"{ttn}_thr", _thr_for(bits, th.arrays["thr"])))
        st.data.append(c_array("int8_t", f"{ttn}_dir", th.arrays["direction"], 16))
        st.thr_count += o
        thr_arg, dir_arg = f"{ttn}_thr", f"{ttn}_dir"
        bits_out = st.out_buf(4 * oh * ow * ((o + 31) // 32))
        what.append(f"{th.name} thresholds -> bits")
    st.data.append(f"static const bnn_stream_epilogue_t {lid}_e = {{&{rq}, {sb}u, {lo}, {hi}, "
                   f"{ob if store else 0}u, {thr_arg}, {dir_arg}}};\n")
    row = st.temp(4 * ow * o)
    names = " + ".join(x.name for x in (nxt, add, th) if x is not None)
    st.body.append(f"{cmt} + {names}: conv {kh}x{kw}/{s} {pad_txt}, {c} -> {o} channels; one pass per row: "
                   f"{', '.join(what)} */")
    st.body.append(f"    bnn_conv_stream(&{lid}_p, {conv_in}, {lid}_w, &{lid}_e, {skip}, (int32_t *){row}, {out}, "
                   f"{'NULL' if th is None else f'(bnn_word_t *){bits_out}'});")
    st.steps.append(layer.name)
    used = 2 + (add is not None) + (th is not None)
    if th is None:
        st.cur, st.kind, st.shape, st.bits = out, "fixed", (oh, ow, o), bits
        return used
    if store:  # the stream has readers of its own: register it (codegen registers the bits)
        st.tensors[v.name] = CTensor(out, "fixed", (oh, ow, o), bits, vblock)
    st.cur, st.kind, st.shape, st.bits = bits_out, "bits", (oh, ow, o), None
    return used


def _emit_requant(st: EmitState, i: int, layer, nxt, lid: str, cmt: str) -> int:
    """Requantize int32 accumulators or a fixed-point stream to a ``bits``-bit stream (per
    channel multiply, floor shift, saturate); in place over a dying stream input."""
    bits = int(layer.attrs["bits"])
    rq = _requant_params(st, layer, lid)
    n = int(np.prod(st.shape))
    ch = st.shape[-1]
    ob = stream_bytes(bits)
    name = st.graph.inputs_of(i)[0]
    dst = st.out_buf(ob * n, reuse=(name,), elem_bytes=ob)
    st.body.append(f"{cmt}: requantize {'accumulators' if st.kind == 'acc' else 'the stream'} to a {bits}-bit "
                   f"stream ({CTYPE[ob]}) */")
    st.body.append(f"    bnn_requant(&{rq}, {n // ch}u, {st.cur}, {st.in_bytes}u, {dst});")
    st.cur, st.kind, st.bits = dst, "fixed", bits
    st.steps.append(layer.name)
    return 1


def _emit_avgpool(st: EmitState, i: int, layer, nxt, lid: str, cmt: str) -> int:
    """Window sum of a fixed-point stream (average pooling without the division)."""
    h, w, c, k, s, oh, ow = _pool_geometry(st, layer)
    bits = st.graph_infos[layer.name].bits
    ob = stream_bytes(bits)
    st.data.append(f"static const bnn_avgpool_params_t {lid}_p = {{{h}u, {w}u, {c}u, {oh}u, {ow}u, {k}u, {s}u, "
                   f"{st.in_bytes}u, {ob}u}};\n")
    dst = st.out_buf(ob * oh * ow * c)
    what = "global average pool" if (oh, ow) == (1, 1) and k == h == w else f"{k}x{k}/{s} average pool"
    st.body.append(f"{cmt}: {what} as a window sum ({bits} bits; the 1/{k * k} is folded downstream) */")
    st.body.append(f"    bnn_avgpool_sum(&{lid}_p, {st.cur}, {dst});")
    st.cur, st.shape, st.bits = dst, (oh, ow, c), bits
    st.steps.append(layer.name)
    return 1


def _emit_fixed_affine(st: EmitState, i: int, layer, nxt, lid: str, cmt: str) -> int:
    """BatchNorm of an accumulator to a Q-format int32 value (fixed_affine in ir.ops)."""
    n = layer.arrays["mult"].size
    sh = int(layer.attrs["shift"])
    st.data.append(f"/* {layer.name} <- {layer.source}: Q{layer.attrs['frac']} value = "
                   f"(acc * mult + bias + 2^{sh}/2) >> {sh} */\n")
    st.data.append(c_array("int32_t", f"{lid}_mult", layer.arrays["mult"]))
    st.data.append(c_array("int64_t", f"{lid}_bias", layer.arrays["bias"], 4,
                           fmt=lambda v: f"INT64_C({int(v)})"))
    dst = st.out_buf(4 * n)
    rnd = f"(INT64_C(1) << {sh - 1})" if sh else "0"
    st.body.append(f"{cmt}: BatchNorm of the accumulator to fixed point Q{layer.attrs['frac']} */")
    st.body.append(f"    bnn_fixed_affine((const int32_t *){st.cur}, {lid}_mult, {lid}_bias, {rnd}, {sh}u, {n}u, "
                   f"(int32_t *){dst});")
    st.helpers.add("fixed_affine")
    st.cur, st.kind, st.bits = dst, "fixed", 32
    return 1


def _emit_threshold(st: EmitState, i: int, layer, nxt, lid: str, cmt: str) -> int:
    """Standalone threshold of a fixed-point stream (any storage) or int32 accumulators, 1-D or
    (H, W, C), packed per position like a conv input (0 -> +1 on ties)."""
    if st.kind not in ("fixed", "acc"):
        raise Bnn2hwError(f"IR layer {layer.name}: a standalone threshold needs a fixed-point or accumulator input")
    n = layer.arrays["thr"].size
    positions = int(np.prod(st.shape[:-1])) if len(st.shape) > 1 else 1
    st.data.append(f"static const bnn_stream_threshold_params_t {lid}_p = {{{positions}u, {n}u, {st.in_bytes}u}};\n")
    st.data.append(c_array("int32_t", f"{lid}_thr", _thr_for(st.bits, layer.arrays["thr"])))
    st.data.append(c_array("int8_t", f"{lid}_dir", layer.arrays["direction"], 16))
    st.thr_count += n
    dst = st.out_buf(4 * positions * ((n + 31) // 32))
    what = "the fixed-point stream" if st.kind == "fixed" else "the accumulators"
    st.body.append(f"{cmt}: threshold of {what} (ties -> +1), packed to bits */")
    st.body.append(f"    bnn_stream_threshold(&{lid}_p, {st.cur}, {lid}_thr, {lid}_dir, (bnn_word_t *){dst});")
    st.cur, st.kind, st.bits = dst, "bits", None
    st.steps.append(layer.name)
    return 1


def _emit_periodic(st: EmitState, i: int, layer, nxt, lid: str, cmt: str) -> int:
    """Periodic activation f(w0 x) in fixed point (lut | taylor | linear), M-BiPer eq. 10-11."""
    at = layer.attrs
    from . import periodic_tables as pt

    if st.in_bytes != 4:
        raise Bnn2hwError(f"IR layer {layer.name} ({layer.source}): the C periodic kernels read int32 values, "
                          f"the input is a {st.bits}-bit stream")
    prm = pt.make_params(at["w0"], at["in_frac"], at["out_frac"], at.get("table_bits", 8))
    method = {"fixed": "linear"}.get(at["approx"], at["approx"])
    pt.check_method(at["func"], method)
    table = "NULL"
    if method == "lut":
        st.data.append(c_array("int32_t", f"{lid}_table",
                               pt.table(at["func"], prm.table_bits, prm.out_frac)))
        table = f"{lid}_table"
    st.data.append(f"/* {layer.name}: {at['func']}({at['w0']:g} x), Q{at['in_frac']} -> Q{at['out_frac']}, "
                   f"approximation '{at['approx']}' (M-BiPer eq. 10-11) */\n")
    st.data.append(f"static const bnn_periodic_params_t {lid}_p = {{{prm.phase_mul}, {prm.phase_shift}u, "
                   f"{prm.out_frac}u, {table}, {prm.table_bits}u, {prm.lin_a}, {prm.lin_n}u}};\n")
    n = int(np.prod(st.shape))
    dst = st.out_buf(4 * n)
    st.body.append(f"{cmt}: periodic activation */")
    st.body.append(f"    bnn_periodic_{method}(&{lid}_p, (const int32_t *){st.cur}, (int32_t *){dst}, {n}u);")
    st.cur, st.bits = dst, 32
    return 1


def _emit_add(st: EmitState, i: int, layer, nxt, lid: str, cmt: str) -> int:
    """Residual connection: saturating sum of the two fixed-point tensors the op names, written
    over one of them when this add is its last reader."""
    a_name, b_name = st.graph.inputs_of(i)
    a, b = st.tensors[a_name], st.tensors[b_name]
    bits = int(layer.attrs.get("bits", 32))
    ob = stream_bytes(bits)
    n = int(np.prod(st.shape))
    ab, bb = (4 if t.kind == "acc" else stream_bytes(t.bits) for t in (a, b))
    lo, hi = saturation(bits, layer.attrs.get("lo"), layer.attrs.get("hi"))
    st.data.append(f"static const bnn_add_params_t {lid}_p = {{{n}u, {ab}u, {bb}u, {ob}u, {lo}, {hi}}};\n")
    dst = st.out_buf(ob * n, reuse=(a_name, b_name), elem_bytes=ob)
    sat = (f"clipped to [{lo}, {hi}] (hardtanh)" if "lo" in layer.attrs else f"saturated to {bits} bits")
    st.body.append(f"{cmt}: residual sum {a_name} + {b_name}, {sat} ({CTYPE[ob]}) */")
    st.body.append(f"    bnn_stream_add(&{lid}_p, {a.expr}, {b.expr}, {dst});")
    st.cur, st.kind, st.bits = dst, "fixed", bits
    st.steps.append(layer.name)
    return 1


def _emit_affine(st: EmitState, i: int, layer, nxt, lid: str, cmt: str) -> int:
    """The float head: per-class scale and bias for bnn_predict (not used by bnn_infer)."""
    st.data.append("/* logits <- head: float logits = int_logits * scale + bias (bnn_predict) */\n")
    st.data.append(c_array("float", "logit_scale", layer.arrays["scale"].astype(np.float32), 4,
                           fmt=c_float))
    st.data.append(c_array("float", "logit_bias", layer.arrays["bias"].astype(np.float32), 4,
                           fmt=c_float))
    return 1


# ---- official BiPer networks (bnn2hw.export.fold_official): small kernels emitted into model.c ----

_C_HELPERS = {
    "conv_u8_s8": """
/* int8 x uint8 conv (the quantized full-precision first layer), HWC input, weights
 * (cout, kh, kw, cin); a padded tap holds its channel's pad[c] (the mean pixel: zero padding
 * after the input Normalize). One output row at a time into `row` (out_w * cout int32), then
 * requantized to a stream (rq) or thresholded to packed bits (tp, thr, dir). */
static void bnn_conv_u8_s8(const bnn_conv_params_t *p, const uint8_t *in, const int8_t *w, const uint8_t *pad,
                           const bnn_requant_params_t *rq, const bnn_stream_threshold_params_t *tp,
                           const int32_t *thr, const int8_t *dir, int32_t *row, void *out)
{
    const uint32_t cin = p->cin, cout = p->cout;
    uint32_t oy, ox, o, ky, kx, c;
    for (oy = 0; oy < p->out_h; ++oy) {
        for (ox = 0; ox < p->out_w; ++ox) {
            for (o = 0; o < cout; ++o) {
                int32_t acc = 0;
                for (ky = 0; ky < p->kh; ++ky) {
                    const int32_t iy = (int32_t)(oy * p->stride_h + ky) - (int32_t)p->pad_h;
                    for (kx = 0; kx < p->kw; ++kx) {
                        const int32_t ix = (int32_t)(ox * p->stride_w + kx) - (int32_t)p->pad_w;
                        const int inside = iy >= 0 && ix >= 0 && iy < (int32_t)p->in_h && ix < (int32_t)p->in_w;
                        const uint8_t *px = inside ? &in[((uint32_t)iy * p->in_w + (uint32_t)ix) * cin] : pad;
                        const int8_t *wr = &w[((o * p->kh + ky) * p->kw + kx) * cin];
                        for (c = 0; c < cin; ++c) {
                            acc += (int32_t)wr[c] * (int32_t)px[c];
                        }
                    }
                }
                row[ox * cout + o] = acc;
            }
        }
        if (rq != NULL) {
            bnn_requant(rq, p->out_w, row, 4u, (uint8_t *)out + (size_t)oy * p->out_w * cout * rq->out_bytes);
        } else {
            bnn_stream_threshold(tp, row, thr, dir, (bnn_word_t *)out + (size_t)oy * p->out_w * BNN_WORDS(cout));
        }
    }
}
""",
    "pad_channels": """
/* Zero channels around a stream (option-A shortcut): out[pos][before + c] = in[pos][c]. */
static void bnn_pad_channels(const void *in, uint32_t positions, uint32_t c, uint32_t before, uint32_t after,
                             uint32_t bytes, void *out)
{
    const uint32_t oc = before + c + after;
    uint32_t pos, k;
    for (pos = 0; pos < positions; ++pos) {
        for (k = 0; k < oc; ++k) {
            const int32_t v = (k >= before && k < before + c) ? bnn_stream_get(in, bytes, pos * c + k - before) : 0;
            bnn_stream_put(out, bytes, pos * oc + k, v);
        }
    }
}
""",
    "maxpool_stream": """
/* k x k max-pool (stride s, no padding) of an HWC stream: the largest integer of each window. */
static void bnn_maxpool_stream(const void *in, uint32_t h, uint32_t w, uint32_t c, uint32_t k, uint32_t s,
                               uint32_t bytes, void *out)
{
    const uint32_t oh = (h - k) / s + 1u, ow = (w - k) / s + 1u;
    uint32_t oy, ox, ch, ky, kx;
    for (oy = 0; oy < oh; ++oy) {
        for (ox = 0; ox < ow; ++ox) {
            for (ch = 0; ch < c; ++ch) {
                int32_t best = INT32_MIN;
                for (ky = 0; ky < k; ++ky) {
                    for (kx = 0; kx < k; ++kx) {
                        const int32_t v = bnn_stream_get(in, bytes, ((oy * s + ky) * w + ox * s + kx) * c + ch);
                        best = v > best ? v : best;
                    }
                }
                bnn_stream_put(out, bytes, (oy * ow + ox) * c + ch, best);
            }
        }
    }
}
""",
}


def _helper(st: EmitState, name: str) -> None:
    """Put the static C function ``name`` of :data:`_C_HELPERS` into model.c (once)."""
    code = _C_HELPERS[name]
    if code not in st.statics:
        st.statics.append(code)


def _emit_conv_u8_s8(st: EmitState, i: int, layer, nxt, lid: str, cmt: str) -> int:
    """int8 conv on the uint8 input (``pad_u8``: per-channel padding pixel) fused with the requant
    or threshold that reads it (``bnn_conv_u8_s8``, row by row)."""
    at = layer.attrs
    if st.kind != "u8" or nxt is None or nxt.op not in ("threshold", "requant"):
        raise Bnn2hwError(f"IR layer {layer.name} ({layer.source}): an int8 conv needs the uint8 input and one "
                          "reader, the next op, a threshold or a requant")
    w = layer.arrays["weight"]
    o, kh, kw, c = w.shape
    h, wd, _ = st.shape
    s, p = at["stride"], at["pad"]
    oh, ow = (h + 2 * p - kh) // s + 1, (wd + 2 * p - kw) // s + 1
    pad = layer.arrays.get("pad_u8", np.zeros(c, dtype=np.int64))
    st.data.append(f"/* {layer.name} <- {layer.source}: {o} x {kh}x{kw}x{c} int8 weights; padded taps hold "
                   f"the pixels {[int(v) for v in pad]} */\n")
    st.data.append(c_array("int8_t", f"{lid}_w", w.astype(np.int8), per_line=16))
    st.data.append(c_array("uint8_t", f"{lid}_pad", pad.astype(np.int64)))
    st.data.append(f"static const bnn_conv_params_t {lid}_p = {{{h}u, {wd}u, {c}u, {oh}u, {ow}u, {o}u, {kh}u, "
                   f"{kw}u, {s}u, {s}u, {p}u, {p}u}};\n")
    st.flash_bits += 8 * w.size
    row = st.temp(4 * ow * o)
    tname = ident(nxt.name)
    if nxt.op == "requant":
        rq = _requant_params(st, nxt, tname)
        bits = int(nxt.attrs["bits"])
        dst = st.out_buf(stream_bytes(bits) * oh * ow * o)
        call = f"&{rq}, NULL, NULL, NULL"
        st.body.append(f"{cmt} + {nxt.name}: int8 conv {kh}x{kw}/{s} pad {p}, {c} -> {o} channels, requantized "
                       f"to a {bits}-bit stream */")
        out = ("fixed", bits)
    else:
        st.data.append(f"static const bnn_stream_threshold_params_t {tname}_tp = {{{ow}u, {o}u, 4u}};\n")
        st.data.append(c_array("int32_t", f"{tname}_thr", _thr_for(32, nxt.arrays["thr"])))
        st.data.append(c_array("int8_t", f"{tname}_dir", nxt.arrays["direction"], 16))
        st.thr_count += o
        dst = st.out_buf(4 * oh * ow * ((o + 31) // 32))
        call = f"NULL, &{tname}_tp, {tname}_thr, {tname}_dir"
        st.body.append(f"{cmt} + {nxt.name}: int8 conv {kh}x{kw}/{s} pad {p}, {c} -> {o} channels, to bits */")
        out = ("bits", None)
    st.body.append(f"    bnn_conv_u8_s8(&{lid}_p, {st.cur}, {lid}_w, {lid}_pad, {call}, (int32_t *){row}, {dst});")
    _helper(st, "conv_u8_s8")
    st.cur, st.kind, st.shape, st.bits = dst, out[0], (oh, ow, o), out[1]
    st.steps.append(layer.name)
    return 2


def _emit_pad_channels(st: EmitState, i: int, layer, nxt, lid: str, cmt: str) -> int:
    """Zero channels before and after a fixed-point stream (``bnn_pad_channels``)."""
    h, w, c = st.shape
    b, a = int(layer.attrs["before"]), int(layer.attrs["after"])
    ob = st.in_bytes
    dst = st.out_buf(ob * h * w * (b + c + a))
    st.body.append(f"{cmt}: {b} zero channels before, {a} after */")
    st.body.append(f"    bnn_pad_channels({st.cur}, {h * w}u, {c}u, {b}u, {a}u, {ob}u, {dst});")
    _helper(st, "pad_channels")
    st.cur, st.shape = dst, (h, w, b + c + a)
    st.steps.append(layer.name)
    return 1


def _emit_maxpool_stream(st: EmitState, i: int, layer, nxt, lid: str, cmt: str) -> int:
    h, w, c, k, s, oh, ow = _pool_geometry(st, layer)
    dst = st.out_buf(st.in_bytes * oh * ow * c)
    st.body.append(f"{cmt}: {k}x{k} max-pool of the stream */")
    st.body.append(f"    bnn_maxpool_stream({st.cur}, {h}u, {w}u, {c}u, {k}u, {s}u, {st.in_bytes}u, {dst});")
    _helper(st, "maxpool_stream")
    st.cur, st.shape = dst, (oh, ow, c)
    st.steps.append(layer.name)
    return 1


EMITTERS = {"flatten": _emit_flatten, "maxpool": _emit_maxpool, "dense": _emit_dense, "conv2d": _emit_conv2d,
            "fixed_affine": _emit_fixed_affine, "threshold": _emit_threshold, "periodic": _emit_periodic,
            "add": _emit_add, "affine": _emit_affine, "requant": _emit_requant, "avgpool": _emit_avgpool,
            "pad_channels": _emit_pad_channels}
"""IR op -> its C emitter."""
