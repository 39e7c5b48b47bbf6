# SPDX-License-Identifier: MIT
"""Weight packing for the column-sliced conv kernel (``bnn_conv_vc_bits``, firmware
``bnn_conv_vc.h``): columns of 32 lanes per group, tap-major, the per-tap +1 counts, the
lanes-per-position choice and the work-memory size, all as the C header defines them.

Invariants (checked by tests/test_vcols_conv.py against the C reference and numpy):
* full groups ``g < cout // 32``: ``cols[g, ky, kx, c]`` bit ``r`` = weight of channel ``32 g + r``;
  then the tail group (``ct = cout % 32`` channels, ``npos`` positions): ``tail[ky, kx', c]`` bit
  ``j ct + r`` = weight of channel ``32 (cout // 32) + r`` at tap ``(ky, kx' - j stride)``, 0 where
  no such tap.
* ``ctap[o, ky kw + kx]`` = number of +1 weights of channel ``o`` at tap ``(ky, kx)``.
"""

from __future__ import annotations

import numpy as np

CLASSES = 16  # BNN_CONV_VC_CLASSES
MAX_PLANES = 24  # BNN_VC_MAX_PLANES
MAX_TAPS = 64  # BNN_CONV_VC_TAPS


def choose_npos(cout: int, kw: int, stride: int, kh: int = 3) -> int:
    """Output positions of the tail group (ct = cout % 32 channels): 32 // ct (16 channels: 2,
    8: 4, 1: up to 16), capped so the extended window stays within KWe <= 16 and kh KWe <= 64
    taps; 1 when cout is a multiple of 32."""
    ct = cout % 32
    if ct == 0:
        return 1
    npos = 32 // ct
    while npos > 1 and (kw + (npos - 1) * stride > 16 or kh * (kw + (npos - 1) * stride) > MAX_TAPS):
        npos -= 1
    return npos


def tail_on_rows(cin: int, cout: int, kh: int, kw: int, stride: int) -> bool:
    """Whether the tail channels (ct = cout % 32) run on the row kernel (bnn_conv_vc_t.tail_rows)
    rather than column-sliced: a few channels fill few lanes of a column word, and the window of
    P positions is mostly columns of other positions.  Cortex-M4 costs per output position: rows
    ~ct (9 ceil(kh kw cin / 32) + 20), column-sliced ~(3.5 kh KWe cin + 300) / P (about 7
    instructions per counted column, half the window counted, a step's bookkeeping).  cout 33
    (one tail channel, P = 7 at stride 2): rows; 40 (8 channels, P = 4) and 48: column-sliced."""
    ct = cout % 32
    if ct == 0:
        return False
    npos = choose_npos(cout, kw, stride, kh)
    rows = ct * (9 * -(-kh * kw * cin // 32) + 20)
    cols = (3.5 * kh * kwe(kw, stride, npos) * cin + 300) / npos
    return rows < cols


def layer_npos(cin: int, cout: int, kw: int, stride: int, kh: int = 3) -> int:
    """The npos a generated layer uses: choose_npos, or 1 when its tail runs on the row kernel
    (the tail columns then only serve bnn_conv_vc_bits_ref: the fewest, kh kw cin words)."""
    return 1 if tail_on_rows(cin, cout, kh, kw, stride) else choose_npos(cout, kw, stride, kh)


def kwe(kw: int, stride: int, npos: int) -> int:
    return kw + (npos - 1) * stride


def groups(cout: int, npos: int) -> int:
    """Plane groups of a class entry (bnn_conv_vc.h BNN_CONV_VC_GROUPS)."""
    return max(cout // 32, 1)


def pack_columns(w: np.ndarray, stride: int, npos: int) -> np.ndarray:
    """w [O, KH, KW, C] in {-1, +1} -> uint32 words: the full groups [G, KH, KW, C], then the
    tail group [KH, KWe, C], then one zero word."""
    o, kh, kw, c = w.shape
    pos = (w > 0).astype(np.uint64)  # [O, KH, KW, C]
    shifts = np.arange(32, dtype=np.uint64)
    gf, ct = o // 32, o % 32
    parts = []
    if gf:
        full = np.moveaxis(pos[:32 * gf].reshape(gf, 32, kh, kw, c), 1, -1)  # [G, KH, KW, C, 32]
        parts.append((full << shifts).sum(axis=-1).astype(np.uint32).ravel())
    if ct:
        ke = kwe(kw, stride, npos)
        lanes = np.zeros((kh, ke, c, 32), dtype=np.uint64)
        sub = np.moveaxis(pos[32 * gf:], 0, -1)  # [KH, KW, C, ct]
        for j in range(npos):
            lanes[:, j * stride:j * stride + kw, :, j * ct:(j + 1) * ct] = sub
        parts.append((lanes << shifts).sum(axis=-1).astype(np.uint32).ravel())
    parts.append(np.zeros(1, np.uint32))  # the zero column (pads a step's list tails to 16)
    return np.concatenate(parts)


def tap_counts(w: np.ndarray) -> np.ndarray:
    """int16 [O, KH KW]: the +1 weights of each channel per tap."""
    o, kh, kw, c = w.shape
    if c > 32767:
        raise ValueError(f"conv with {c} input channels: the per-tap counts need int16")
    return (w > 0).sum(axis=3).reshape(o, kh * kw).astype(np.int16)


def _bitlen(v: int) -> int:
    return int(v).bit_length()


def nq(kh: int, kw: int, cin: int, stride: int, npos: int) -> int:
    """bnn_conv_vc_nq(): planes of the offset count Q + W - h <= Qmax + K + 2."""
    return _bitlen(kh * kwe(kw, stride, npos) * cin // 2 + kh * kw * cin + 2)


def nt(kh: int, kw: int, cin: int, stride: int, npos: int) -> int:
    return nq(kh, kw, cin, stride, npos) + 1


def work_words(in_w: int, cin: int, cout: int, kh: int, kw: int, stride: int, npos: int,
               table_complete: bool = False) -> int:
    """bnn_conv_vc_work_words(): the ring of kh rows of pixel lists and their tags, a step's list
    tails; without a complete class table (bnn_conv_vc_t.table_complete) also the class cache
    (CLASSES + 1 entries) and 2 words per output channel."""
    rows = kh * (in_w * cin + 2 * (in_w + 1)) + kh + 16 * kh + 4
    if table_complete:
        return rows
    return rows + (CLASSES + 1) * (1 + groups(cout, npos) * 4 * nt(kh, kw, cin, stride, npos)) + 2 * cout


def supported(kh: int, kw: int, cin: int, cout: int, stride: int, npos: int) -> bool:
    """bnn_conv_vc_ok() (square stride)."""
    ke = kwe(kw, stride, npos)
    return (npos >= 1 and 1 <= kh <= 16 and kw >= 1 and (cout % 32) * npos <= 32
            and (cout % 32 != 0 or npos == 1) and ke <= 16
            and kh * ke <= MAX_TAPS and kh * kw <= 32 and nt(kh, kw, cin, stride, npos) <= MAX_PLANES)


def _out(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


def _hkey(x0: int, ke: int, wd: int) -> int:
    """Bits 0..ke-1: the window columns x0 + k' outside [0, wd) (bnn_conv_vc.c vc_row's hkey)."""
    xs = max(x0, 0)
    xe = max(min(x0 + ke, wd), xs)
    return ((1 << ke) - 1) & ~(((1 << (xe - xs)) - 1) << (xs - x0))


def class_keys(h: int, wd: int, cout: int, kh: int, kw: int, s: int, p: int, npos: int,
               tail_vc: bool = True) -> list[int]:
    """The border-class keys a bnn_conv_vc_bits call meets, in the order it meets them (bits 0..15:
    padded extended columns, 16..30: padded kernel rows, 31: the tail group; square stride / pad).
    tail_vc False: the tail channels run from their rows (bnn_conv_vc_t.tail_rows), no tail keys.
    The same set as the C's bnn_conv_vc_class_keys (tests/test_vcols_conv.py checks it)."""
    oh, ow = _out(h, kh, s, p), _out(wd, kw, s, p)
    runs = ([(0, 1, kw)] if cout // 32 else []) + ([(1, npos, kwe(kw, s, npos))] if cout % 32 and tail_vc else [])
    keys: list[int] = []
    for oy in range(oh):
        y0 = oy * s - p
        vkey = sum(1 << ky for ky in range(kh) if not 0 <= y0 + ky < h)
        for tail, np_, ke in runs:
            for ox in range(0, ow, np_):
                key = (tail << 31) | (vkey << 16) | _hkey(ox * s - p, ke, wd)
                if key not in keys:
                    keys.append(key)
    return keys


def _planes_of(vals: list[int], nplanes: int) -> list[int]:
    """Bit-sliced: plane b bit lane = bit b of vals[lane]."""
    return [sum(((v >> b) & 1) << lane for lane, v in enumerate(vals)) for b in range(nplanes)]


def class_entry(w: np.ndarray, thr: np.ndarray, key: int, s: int, npos: int, m1: bool) -> list[int]:
    """One class entry as bnn_conv_vc.c's class_planes() fills it (method: bnn_conv_vc.h): the key,
    then per group (the Gf full groups, or the tail's one; GROUPS slots, unused ones 0) the planes
    of S1 even, S1 odd, S0 even, S0 odd (nt each) of the start-value thresholds."""
    o, kh, kw, cin = w.shape
    kk, k_all = kh * kw, kh * kw * cin
    gf, tail = o // 32, key >> 31
    ng, cpl, np_ = (1, o % 32, npos) if tail else (gf, 32, 1)
    n_t = nt(kh, kw, cin, s, npos)
    top, wst = 1 << (n_t - 1), k_all // 2 + 1
    ctap = tap_counts(w).astype(np.int64)  # [O, kk]
    call = ctap.sum(axis=1)
    a_int = np.clip(thr.astype(np.int64), -(k_all + 1), k_all + 1) - k_all + 2 * call
    vkey = (key >> 16) & 0x7FFF
    padm = []
    for j in range(np_):
        padm.append([t for t in range(kk) if (vkey >> (t // kw)) & 1 or (key >> (t % kw + j * s)) & 1])
    ent = [key]
    for g in range(groups(o, npos)):
        if g >= ng:
            ent += [0] * (4 * n_t)
            continue
        v1, v0, inc1, inc0 = [], [], 0, 0
        for lane in range(32):
            j, oc = lane // cpl, (32 * gf if tail else 32 * g) + lane % cpl
            if j >= np_:
                v1.append(top)
                v0.append(top)
                continue
            cpad = int(ctap[oc, padm[j]].sum())
            a = int(a_int[oc]) + (0 if m1 else len(padm[j]) * cin - 2 * cpad)
            t1 = -((-a) // 2)
            t0 = (4 * int(call[oc]) - a) // 2 + 1 - 2 * cpad
            v1.append(min(max(-((-t1) // 2) + wst, 0), top))
            v0.append(min(max(-((-t0) // 2) + wst, 0), top))
            inc1 |= int(t1 % 2 == 0) << lane
            inc0 |= int(t0 % 2 == 0) << lane
        for vals, inc in ((v1, inc1), (v0, inc0)):
            ev = _planes_of(vals, n_t)
            od, c = [], inc
            for x in ev:
                od.append(x ^ c)
                c &= x
            ent += ev + od
    return ent


def class_table(w: np.ndarray, thr: np.ndarray, h: int, wd: int, s: int, p: int, npos: int, m1: bool,
                tail_vc: bool = True) -> np.ndarray:
    """uint32 [nclass, 1 + GROUPS 4 nt]: every class entry the layer's calls meet, precomputed for
    flash (bnn_conv_vc_t.classes), so a call does not rebuild them (~6,250 Cortex-M4 instructions
    per class and group: 4x4x256 pad 1 spent 35% of its instructions there).  Complete by
    construction (bnn_conv_vc_t.table_complete = 1: no class cache in the work memory, no ctap).
    tail_vc False (the tail on rows): no tail entries."""
    o, kh, kw, _ = w.shape
    ents = [class_entry(w, thr, k, s, npos, m1) for k in class_keys(h, wd, o, kh, kw, s, p, npos, tail_vc)]
    width = 1 + groups(o, npos) * 4 * nt(kh, kw, w.shape[3], s, npos)
    return np.array(ents, dtype=np.uint64).astype(np.uint32).reshape(len(ents), width)


def class_table_words(h: int, wd: int, cin: int, cout: int, kh: int, kw: int, s: int, p: int) -> int:
    npos = layer_npos(cin, cout, kw, s, kh)
    tail_vc = not tail_on_rows(cin, cout, kh, kw, s)
    return len(class_keys(h, wd, cout, kh, kw, s, p, npos, tail_vc)) * (1 + groups(cout, npos) * 4 * nt(kh, kw, cin, s, npos))


def use_class_table(h: int, wd: int, cin: int, cout: int, kh: int, kw: int, s: int, p: int) -> bool:
    """Store the class table in flash when it costs at most max(4 KB, a quarter of the columns) (the
    rest rebuild their classes per call: a few in a big layer)."""
    npos = layer_npos(cin, cout, kw, s, kh)
    cols = (cout // 32) * kh * kw * cin + (kh * kwe(kw, s, npos) * cin if cout % 32 else 0)
    return class_table_words(h, wd, cin, cout, kh, kw, s, p) <= max(1024, cols // 4)


def vc_features(h: int, wd: int, cin: int, cout: int, kh: int, kw: int, s: int, p: int, m1: bool) -> list[float]:
    """Work of one bnn_conv_vc_bits call (random inputs): [listed columns x groups, list-tail
    indices copied, taps visited, steps, step-groups x count planes, input pixel channels,
    class-groups built per call (0 with a flash class table)].  A tail on the row kernel
    (tail_on_rows) is not in them: vc_estimate adds its rows_estimate."""
    oh, ow = _out(h, kh, s, p), _out(wd, kw, s, p)
    gf, ct = cout // 32, cout % 32
    npos = layer_npos(cin, cout, kw, s, kh)
    parts = []
    if gf:
        parts.append((oh * ow, kh * kw, gf))
    if ct and not tail_on_rows(cin, cout, kh, kw, s):
        parts.append((oh * -(-ow // npos), kh * kwe(kw, s, npos), 1))
    cols = copy = taps = steps = planes = 0.0
    q = nq(kh, kw, cin, s, npos)
    for n, t, g in parts:
        m = cin / 2.0
        tail = m if m < 16 else 7.5
        cols += n * t * m * g
        copy += n * t * tail
        taps += n * t
        steps += n
        planes += n * g * q
    ncls = 1 if p == 0 else min(9, 4 * p + 1) if oh > 1 else 3  # -1 padding too: its S0 planes fold C_pad
    cls = ncls * (max(gf, 1) + (1 if ct and gf else 0))
    if use_class_table(h, wd, cin, cout, kh, kw, s, p):
        cls = 0
    direct = oh * ow * ct * kh * kw * -(-cin // 32) if _tail_direct(cin, cout, kh, kw, s) else 0
    return [cols, copy, taps, steps, planes, h * wd * cin, cls, direct]


def _tail_direct(cin: int, cout: int, kh: int, kw: int, s: int) -> bool:
    """bnn_conv_vc_bits counts a row-format tail itself (tail_direct) when ct cw <= 2."""
    return tail_on_rows(cin, cout, kh, kw, s) and (cout % 32) * -(-cin // 32) <= 2


# VC_COEFFS: fitted by non-negative least squares (relative error) to the exact Cortex-M4 QEMU counts
# of bnn_conv_vc_bits on 25 shapes (2026-12-01, branch conv-fast: flash class tables, interior steps
# spelled out, tail on rows): the 13 of `benchmarks/bench_mcu_kernels.py --conv-only` and 12 more
# (maps 5..20, cin 8..96, cout 8..96 with 16-, 33- and 65-channel tails, stride 1 / 2).  Max error
# 19% (4x4x256 pad 0: -19%, pad 1: +17%, layers where the column-sliced kernel wins by 2x), the
# others within 13%.  The list-tail copy and the steps are collinear with the taps visited (their
# weight went there); the per-call class builds have no sample left (every measured layer stores
# its class table), so their weight is the measured cost of class_planes (~6,250 instructions
# per class and group, 4x4x256 before the tables); the last feature is tail_direct's word
# popcounts.  ROWS_COEFFS: 2026-11-30 (bnn_conv_bits is unchanged), 13 shapes, max error 29%
# (9x9x33 s2, rows overestimated; the others within 13%).
VC_COEFFS = (5.677, 0.0, 34.458, 0.0, 56.859, 7.859, 6255.0, 19.683)
ROWS_COEFFS = (7.856, 0.0, 18.187, 15.237)


def vc_estimate(h: int, wd: int, cin: int, cout: int, kh: int, kw: int, s: int, p: int, m1: bool) -> float:
    """Estimated Cortex-M4 instructions of bnn_conv_vc_bits (random inputs)."""
    est = float(np.dot(VC_COEFFS, vc_features(h, wd, cin, cout, kh, kw, s, p, m1)))
    if tail_on_rows(cin, cout, kh, kw, s) and not _tail_direct(cin, cout, kh, kw, s):
        est += rows_estimate(h, wd, cin, cout % 32, kh, kw, s, p, m1)
    return est


def rows_estimate(h: int, wd: int, cin: int, cout: int, kh: int, kw: int, s: int, p: int, m1: bool = False) -> float:
    """Estimated Cortex-M4 instructions of bnn_conv_bits / bnn_conv_bits_m1."""
    return float(np.dot(ROWS_COEFFS, rows_features(h, wd, cin, cout, kh, kw, s, p, m1)))


# PREP_COEFFS: fitted by non-negative least squares (relative error) to the exact Cortex-M4 QEMU counts of
# the prepared row-kernel conv on the 78 shapes of issue 11's grid (2026-12-01, main after the tiles16 / conv24 /
# rec16 merges: `python benchmarks/bench_conv_grid_m4.py rows,prep,few,vc,ps OUT.json "c <= 32"`, the count of
# bnn_conv_bits_few where conv_m4_prep.use_few (3x3 cin <= 32 as one tile; 3x3x16 and 3x3x32 at every size, in
# tiles), else of bnn_conv_bits_prep; cin >= 64 from mcu_conv_grid_m4.md), with PREP_ROWS24_OPS at 45.0; then
# PREP_ROWS24_OPS refit with these fixed.  Max error 4.5% (4x4x16 stride 2 pad 1, underestimated).
PREP_COEFFS = (1.141, 8.946, 59.697, 282.966, 46.115)
# 3x3x24 tail-spread rows (bnn_conv.c conv24_positions: 54 instructions a row in the kernel, ~80 per
# position on bnn_conv_bits_prep for the gather, the seventh word's spread and the loop's position step): the
# row-ops feature of such a row (see PREP_COEFFS).
PREP_ROWS24_OPS = 44.1


def prep_features(h: int, wd: int, cin: int, cout: int, kh: int, kw: int, s: int, p: int) -> list[float]:
    """Work of one bnn_conv_bits_prep / bnn_conv_bits_few call: [row-kernel ALU operations (per row:
    4.5 x 7.2 for a 3x3x16 pair-record row (72 instructions, 63 ALU a two-row record),
    PREP_ROWS24_OPS for a 3x3x24 tail-spread row, else 21 per 3-word group, 10 / 17 for a 1- / 2-word
    tail)
    x rows x positions, row pairs x positions (the kernel's per-pass work), border positions on
    bnn_conv_bits_prep (its border gather; bnn_conv_bits_few packs every position alike), 1,
    positions outside the pair records (the row kernel's per-position call and gather; the pair
    records run all of a tile's positions in one assembly loop)]."""
    from . import conv_m4_prep

    oh, ow = _out(h, kh, s, p), _out(wd, kw, s, p)
    pos = oh * ow
    nw = conv_m4_prep.row_words(cin, kh, kw)
    if conv_m4_prep.uses_pairs(cin, kh, kw):
        rowops = 4.5 * 7.2  # 4.5 x 7.4 until the records' groups took nib2_sum (74 -> 72 a record)
    elif conv_m4_prep.uses_rows24(cin, kh, kw):
        rowops = PREP_ROWS24_OPS
    else:
        g, r = divmod(nw, 3)
        rowops = 21 * g + (10 if r == 1 else 17 if r == 2 else 0)
    border = 0
    if p and not conv_m4_prep.use_few(cin, kh, kw, (h, wd), (oh, ow), s, p):
        inner = max(0, _out(h, kh, s, 0) - 1) * max(0, _out(wd, kw, s, 0) - 1)
        border = pos - min(inner, pos)
    return [pos * cout * rowops, pos * -(-cout // 2), border, 1.0, 0 if conv_m4_prep.uses_pairs(cin, kh, kw) else pos]


def prep_estimate(h: int, wd: int, cin: int, cout: int, kh: int, kw: int, s: int, p: int, m1: bool = False) -> float:
    """Estimated Cortex-M4 instructions of the row-format kernel emit-c calls on cores without Helium:
    bnn_conv_bits_prep / bnn_conv_bits_few where conv_m4_prep prepares the layer (fits and worth),
    else bnn_conv_bits / _m1 (rows_estimate)."""
    from . import conv_m4_prep

    oh, ow = _out(h, kh, s, p), _out(wd, kw, s, p)
    few = conv_m4_prep.use_few(cin, kh, kw, (h, wd), (oh, ow), s, p)
    if not (conv_m4_prep.fits(cin, kh, kw) and conv_m4_prep.worth(cin, kh, kw, oh, ow, p, m1, few)):
        return rows_estimate(h, wd, cin, cout, kh, kw, s, p, m1)
    return float(np.dot(PREP_COEFFS, prep_features(h, wd, cin, cout, kh, kw, s, p)))


# emit-c --optimize: "speed" (default) picks the column-sliced conv where the count model says it is
# faster; "size" keeps every conv on the row kernel: no column copy of the weights, no class table,
# no bnn_conv_vc.c code (about 6 KB on Cortex-M4) and no work buffer.  Flash is smaller with
# "size" when the image links the row conv kernel anyway; when the column-sliced kernel replaces
# every bits conv (the digits CNN: 21,552 B speed, 21,572 B size) the two are within a few bytes
# and "size" saves the work buffer (RAM 1,000 B against 3,692 B) at 23% more instructions.
OPTIMIZE = ("speed", "size")


def check_optimize(value: str) -> str:
    """``value`` if it is one of OPTIMIZE, else a Bnn2hwError naming the valid values."""
    if value not in OPTIMIZE:
        from ..errors import Bnn2hwError

        raise Bnn2hwError(f"unknown --optimize {value!r}; valid: {', '.join(OPTIMIZE)} (default speed)")
    return value


def vc_flash_bytes(h: int, wd: int, cin: int, cout: int, kh: int, kw: int, s: int, p: int) -> int:
    """Flash of a layer's column-sliced data as emitters._emit_conv_vc_data writes it: the columns
    and their zero word, the complete class table (or, without one, the int16 per-tap counts),
    the tail channels' rows when they run on the row kernel; not the thresholds (both formats
    share them) nor the kernel's code."""
    npos = layer_npos(cin, cout, kw, s, kh)
    on_rows = tail_on_rows(cin, cout, kh, kw, s)
    cols = (cout // 32) * kh * kw * cin + (kh * kwe(kw, s, npos) * cin if cout % 32 else 0) + 1
    if use_class_table(h, wd, cin, cout, kh, kw, s, p):
        extra = 4 * class_table_words(h, wd, cin, cout, kh, kw, s, p)
    else:
        extra = 2 * cout * kh * kw
    rows = rows_flash_bytes(cin, cout % 32, kh, kw) if on_rows else 0
    return 4 * cols + extra + rows


def rows_flash_bytes(cin: int, cout: int, kh: int, kw: int) -> int:
    """Flash of the row format's weights (codegen.pack_bits per tap: ceil(cin / 32) words)."""
    return 4 * cout * kh * kw * -(-cin // 32)


def use_vc(h: int, wd: int, cin: int, cout: int, kh: int, kw: int, s: int, p: int, m1: bool,
           optimize: str = "speed") -> bool:
    """The code generator's choice for a binary conv + threshold on bits (on the cores where
    BNN_CONV_VCOLS is on): the column-sliced kernel when the layer meets its preconditions and
    its estimate is below the row kernel's by 20%; never with optimize "size" (emit-c --optimize).  Why the margin: the models' errors (column-
    sliced up to 19%, rows up to 29%) and the column-sliced kernel's code (bnn_conv_vc.c 6 KB on
    Cortex-M4 for full groups with complete tables, up to 10.5 KB with column-sliced tails and
    per-call class builds, plus bnn_vcols.c's count), paid once per image.  resnet8 at -1 padding
    (benchmarks/bench_resnet8_c.py) has one candidate, its 32 -> 64 stride-2 conv on 16x16
    (estimates 254 K against the rows' 300 K): on the column-sliced kernel the net took 1.4% fewer
    instructions (4,724,969 against 4,790,787) and 19.9 KB more flash (68,396 B, past issue 9's
    64 KiB), so it stays on the rows.  The margin keeps every issue-11 shape where the
    column-sliced kernel measured >= 25% fewer instructions (9x9x33 s2: 72,481 against 134,396)."""
    npos = layer_npos(cin, cout, kw, s, kh)
    if check_optimize(optimize) == "size" or not supported(kh, kw, cin, cout, s, npos):
        return False
    vc = vc_estimate(h, wd, cin, cout, kh, kw, s, p, m1)
    # and only where the kernel the rows format really runs is not estimated 2% faster (issue 11: the
    # prepared entry, bnn_conv_bits_prep / _few, is up to 50% faster than the plain rows the first test
    # compares with: 4x4x16 stride 1 pad 1 measured 0.300 per MAC on bnn_conv_bits_few against the
    # column-sliced 0.406).  The 2% keep near ties on the column-sliced kernel (before the 3x3x24
    # tail-spread rows, 4x4x24 stride 1 pad 1: 0.308 against bnn_conv_bits_few's 0.311; with them
    # bnn_conv_bits_few measures 0.280 and is picked, as on 8x8x24 stride 1 pad 1).  This test only removes
    # column-sliced picks, so no layer gains its flash.
    return vc < 0.80 * rows_estimate(h, wd, cin, cout, kh, kw, s, p, m1) and vc < 1.02 * prep_estimate(
        h, wd, cin, cout, kh, kw, s, p, m1)


def rows_features(h: int, wd: int, cin: int, cout: int, kh: int, kw: int, s: int, p: int,
                  m1: bool = False) -> list[float]:
    """Work of one bnn_conv_bits call: [row words x outputs, outputs, gathered tap words, border
    outputs x kh (the zero-padding correction; none at -1 padding, bnn_conv_bits_m1)]."""
    oh, ow = _out(h, kh, s, p), _out(wd, kw, s, p)
    cw = (cin + 31) // 32
    nd, n = -(-kh * kw * cin // 32), kh * kw * cw
    nw = nd if cin % 32 and 32 * nd <= 640 and nd < n else n
    if cin == 16 and kh == kw == 3:
        nw = 4.5  # bnn_conv.c's conv16_rows_bits: two rows share the half-filled fifth word
    pos = oh * ow
    inner = max(0, _out(h, kh, s, 0) - (1 if p else 0)) * max(0, _out(wd, kw, s, 0) - (1 if p else 0)) if p else pos
    return [pos * cout * nw, pos * cout, pos * kh * kw * cw, 0 if m1 else (pos - min(inner, pos)) * cout * kh]
