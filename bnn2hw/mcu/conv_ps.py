# SPDX-License-Identifier: MIT
"""Generation-time data of the position-sliced conv (``bnn_conv_ps_bits``, firmware
``bnn_conv_ps.h``, issue 11): per output channel the list of the shorter weight set (S1 = the +1
weights or S0 = the -1 weights, <= K / 2 indices, K = kh kw cin), the compare values per window
class, the work size, the flash and a Cortex-M4 count model.

Derivation (bnn_conv_ps.h; x = the tap bits of a window, 0 at padded taps, w = the weight bits):
``acc_all = 4 C1 - 2 Ctot - 2 W1 + K`` with C1 = sum of x over S1, Ctot = sum of x, W1 = |S1|; at
zero padding a window with padded taps Pi has ``acc = acc_all + gpad``,
``gpad = sum_{t in Pi} (2 W1_t - cin)``.  So ``acc >= thr <=> 2 C1 - Ctot >= theta``,
``theta = ceil((thr + 2 W1 - K - gpad) / 2)``, and with C0 = Ctot - C1: ``<=> not (2 C0 - Ctot >= 1 -
theta)``.  The kernel computes ``F = 2 C + 2^m - 1 - Ctot`` (C: the listed set's sum) and the bit
``(F >= v) xor neg``.

Invariant (tests/test_conv_ps.py: :func:`compare_values` against numpy's accumulator on every
window, and the C kernel and its reference against numpy): for every output position and
channel, ``(2 C + 2^m - 1 - Ctot >= v[cls, o]) xor neg[o]`` equals ``acc >= thr[o]``.
"""

from __future__ import annotations

import numpy as np

from .conv_mve_prep import class_masks, window_classes

PLANES = 18  # BNN_CONV_PS_PLANES


def planes_m(k: int) -> int:
    """m: planes of Ctot, 2^m > K, at least 4 (the kernel's carry-save levels)."""
    return max(int(k).bit_length(), 4)


def _geometry(h: int, wd: int, kh: int, kw: int, s: int, p: int) -> tuple[int, int, int, int]:
    oh, ow = (h + 2 * p - kh) // s + 1, (wd + 2 * p - kw) // s + 1
    wl = ow + (kw - 1) // s
    return oh, ow, wl, -(-((oh - 1) * wl + ow) // 32)


def lane_pitch(ow: int, kw: int, s: int) -> int:
    """Wl: lanes per output row (bnn__conv_ps_wl)."""
    return ow + (kw - 1) // s


def work_words(h: int, wd: int, cin: int, cout: int, kh: int, kw: int, s: int, p: int) -> int:
    """bnn_conv_ps_work_words(): the phase streams, the vector buffer, class masks, output words,
    the transpose block."""
    _, _, wl, nwords = _geometry(h, wd, kh, kw, s, p)
    offmax = (kh - 1) // s * wl + (kw - 1) // s
    sw = (32 * nwords + offmax) // 32 + 2
    return s * s * cin * sw + kh * kw * cin + 1 + 64 + 32 * -(-cout // 32) + 32


def supported(h: int, wd: int, cin: int, cout: int, kh: int, kw: int, s: int, p: int) -> bool:
    """bnn_conv_ps_ok() (square stride / pad)."""
    oh, ow, _, _ = _geometry(h, wd, kh, kw, s, p)
    k = kh * kw * cin
    return oh >= 1 and ow >= 1 and min(kh, kw, cin, cout, s) >= 1 and k < 65535 and planes_m(k) + 1 <= PLANES


def lists(w: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Per channel the word indices (t cin + c) of its shorter weight set, padded to a multiple of
    8 with K (the zero vector), and the neg flags (1: the list is S0, the -1 weights)."""
    o, kh, kw, c = w.shape
    k = kh * kw * c
    flat = (np.asarray(w) > 0).reshape(o, k)
    out, neg = [], np.zeros(o, dtype=np.int64)
    for i in range(o):
        s1 = np.flatnonzero(flat[i])
        s0 = np.flatnonzero(~flat[i])
        lst = s1 if len(s1) <= len(s0) else s0
        neg[i] = int(len(s1) > len(s0))
        pad = -len(lst) % 8
        out.append(np.concatenate([lst, np.full(pad, k, dtype=np.int64)]).astype(np.int64))
    return out, neg


def compare_values(w: np.ndarray, thr: np.ndarray, in_hw: tuple[int, int], out_hw: tuple[int, int], s: int,
                   p: int, pad_minus1: bool, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(v [ncls, cout] int32, xcls, ycls, nx): v = clamp(theta + 2^m - 1, or 1 - theta + 2^m - 1 for
    an S0 list, 0, 2^(m+1) - 1) per window class (conv_mve_prep.window_classes)."""
    o, kh, kw, c = w.shape
    k = kh * kw * c
    m = planes_m(k)
    t = np.asarray(thr, dtype=np.int64)
    wb = (np.asarray(w) > 0).reshape(o, kh * kw, c)
    w1t = wb.sum(-1).astype(np.int64)  # +1 weights per tap
    w1 = w1t.sum(-1)
    ywin, xwin, ys, xs = window_classes(in_hw, out_hw, kh, kw, s, p, pad_minus1)
    v = np.zeros((len(ys) * len(xs), o), dtype=np.int64)
    for row, valid in class_masks(ys, xs, kh, kw):
        gpad = (2 * w1t[:, ~valid.ravel()] - c).sum(-1)
        theta = -((-(t + 2 * w1 - k - gpad)) // 2)  # ceil
        val = np.where(neg > 0, 1 - theta, theta) + (1 << m) - 1
        v[row] = np.clip(val, 0, (1 << (m + 1)) - 1)
    ycls = np.array([ys.index(q) for q in ywin], dtype=np.uint8)
    xcls = np.array([xs.index(q) for q in xwin], dtype=np.uint8)
    return v.astype(np.int32), xcls, ycls, len(xs)


def prepare(w: np.ndarray, thr: np.ndarray, in_hw: tuple[int, int], out_hw: tuple[int, int], s: int, p: int,
            pad_minus1: bool) -> dict:
    """Everything bnn_conv_ps_t points to: idx (uint8 when K < 256, else uint16), len (uint16),
    neg (uint32 words), v (int32, ncls x cout), xcls, ycls, nx, m."""
    o, kh, kw, c = w.shape
    k = kh * kw * c
    lst, neg = lists(w)
    v, xcls, ycls, nx = compare_values(w, thr, in_hw, out_hw, s, p, pad_minus1, neg)
    negw = np.zeros(-(-o // 32), dtype=np.uint64)
    for i in range(o):
        negw[i // 32] |= np.uint64(int(neg[i]) << (i % 32))
    idx = np.concatenate(lst) if lst else np.zeros(0, dtype=np.int64)
    return {"idx": idx.astype(np.uint8 if k < 256 else np.uint16), "idx8": k < 256,
            "len": np.array([len(x) for x in lst], dtype=np.uint16), "neg": negw.astype(np.uint32),

            "v": v, "xcls": xcls, "ycls": ycls, "nx": nx, "m": planes_m(k)}


def flash_bytes(h: int, wd: int, cin: int, cout: int, kh: int, kw: int, s: int, p: int, pad_minus1: bool) -> int:
    """Flash of a layer's position-sliced tables (beside the plain rows, which the fallback keeps):
    the lists (bound: K / 2 rounded up to 8 per channel), lengths, neg words, compare values and
    class bytes."""
    oh, ow, _, _ = _geometry(h, wd, kh, kw, s, p)
    k = kh * kw * cin
    per = -(-(k // 2) // 8) * 8
    _, _, ys, xs = window_classes((h, wd), (oh, ow), kh, kw, s, p, pad_minus1)
    ny, nx = len(ys), len(xs)
    return cout * per * (1 if k < 256 else 2) + 2 * cout + 4 * -(-cout // 32) + 4 * ny * nx * cout + oh + ow


def _word_classes(h: int, wd: int, kh: int, kw: int, s: int, p: int, pad_minus1: bool) -> tuple[float, float]:
    """(whole-word compares, lone lanes) summed over the output words, as bnn_conv_ps_bits picks
    them: the commonest class of a word as a whole word, the other lanes one by one when they are
    at most LONE, else every class as a whole word."""
    oh, ow, wl, nwords = _geometry(h, wd, kh, kw, s, p)
    ywin, xwin, _, _ = window_classes((h, wd), (oh, ow), kh, kw, s, p, pad_minus1)
    nl = (oh - 1) * wl + ow
    whole = lone = 0
    for j in range(nwords):
        cnt: dict = {}
        for n in range(32 * j, min(32 * j + 32, nl)):
            oy, ox = divmod(n, wl)
            if ox < ow:
                key = (ywin[oy], xwin[ox])
                cnt[key] = cnt.get(key, 0) + 1
        rest = sum(cnt.values()) - max(cnt.values(), default=0)
        if rest <= LONE:
            whole, lone = whole + 1, lone + rest
        else:
            whole += len(cnt)
    return float(whole), float(lone)


LONE = 4  # bnn_conv_ps.c PS_LONE


def ps_features(h: int, wd: int, cin: int, cout: int, kh: int, kw: int, s: int, p: int, m1: bool) -> list[float]:
    """Work of one bnn_conv_ps_bits call (random weights): [blocks of 16 listed vectors, whole-word
    compares x count planes, lone lanes x count planes, word vectors built and counted, words x
    output groups, input transposes, input runs x channels (their OR into the streams), 1]."""
    oh, _, wl, nwords = _geometry(h, wd, kh, kw, s, p)
    k = kh * kw * cin
    m = planes_m(k)
    lp = (k / 2 - 0.4 * k ** 0.5 + 4) / 16  # expected blocks of the shorter set, padded to 8
    whole, lone = _word_classes(h, wd, kh, kw, s, p, m1)
    cw = -(-cin // 32)
    hl = oh + (kh - 1) // s
    rows = sum(1 for y in range(h) if (y + p) // s < hl)
    pix = 0  # input pixels copied into the phase streams (each run: every s-th pixel of a row, q < Wl)
    for px in range(s):
        x0 = (px - p) % s
        pix += min(len(range(x0, wd, s)), wl - (x0 + p) // s) * rows
    return [nwords * cout * lp, whole * cout * (m + 1), lone * cout * (m + 1), nwords * k,
            nwords * -(-cout // 32), -(-pix // 32) * cw, rows * s * cin, 1.0]


# PS_COEFFS: fitted by non-negative least squares (relative error) to the exact Cortex-M4 QEMU counts of
# bnn_conv_ps_bits on the 32 issue-11 grid shapes with 16 and 24 channels (3x3, maps 32..4, stride
# 1 / 2, pad 0 / 1; 2026-12-01, branch conv-ps, benchmarks/bench_conv_grid_m4.py ps): per block of 16
# listed vectors ~104 (the assembly block), ~10 per whole-word compare plane, ~8 per lone-lane plane,
# ~49 per vector built and counted per word, ~1,700 per input transpose (the gather, the 32x32
# transpose) and ~15 per input run and channel (the OR into the phase streams).  Max error 5.4%
# (4x4 stride 2, where the call's fixed work dominates).  On the 16 grid shapes with 32 channels
# (uint16 lists, not chosen: K >= 256) it overestimates by 1% to 7%.
PS_COEFFS = (104.381, 10.103, 7.874, 48.735, 0.0, 1708.611, 14.859, 0.0)
# ps must beat the kernel emit-c would pick otherwise by this factor, as the column-sliced kernel must by 20%
# (conv_vcols.use_vc): bnn_conv_ps.c's ~7 KB of code (paid once per image), its index lists (K / 2 bytes per
# output channel, 4x the weight bits) and its static work buffer (3.5 KB at 32x32x16) must buy a clear win, and
# the models err (ps 5%, prep 4.5%).  Since the tiled bnn_conv_bits_few, the 72-instruction 3x3x16 pair records
# and the 3x3x24 tail-spread rows, the prepared rows come within 4-14% of ps on the 16-channel shapes where ps
# won: at the former 0.95 resnet8 at -1 padding (benchmarks/bench_resnet8_c.py) kept two 16-channel convs on ps
# beside the few entry, 4,468,432 instructions and 68,880 B of model flash (past issue 9's 64 KiB); at 0.85 it
# runs them on the tiled few entry, 4,543,465 instructions (+1.7%), 60,160 B of flash and 26,624 B of RAM
# (was 30,532).  On the issue-11 grid (2026-12-01, main after the tiles16 / conv24 / rec16 merges,
# `bench_conv_grid_m4.py rows,prep,few,vc,ps OUT.json "c <= 32"`) ps keeps the 24-channel maps from 16x16
# stride 1 pad 0 up (estimated 0.77-0.84 of the prepared rows, measured 0.76-0.85); the largest win given up is
# 32x32x16 stride 1 pad 0 (estimated 0.903; measured ps 0.261 against the tiled few entry's 0.282 per MAC).
PS_MARGIN = 0.85


def ps_estimate(h: int, wd: int, cin: int, cout: int, kh: int, kw: int, s: int, p: int, m1: bool = False) -> float:
    """Estimated Cortex-M4 instructions of bnn_conv_ps_bits (random weights)."""
    return float(np.dot(PS_COEFFS, ps_features(h, wd, cin, cout, kh, kw, s, p, m1)))


def other_kernel(h: int, wd: int, cin: int, cout: int, kh: int, kw: int, s: int, p: int, m1: bool,
                 vc: bool) -> tuple[str, float]:
    """The kernel emit-c runs on Cortex-M3/M4/M7/M33 without the position-sliced one, and its
    Cortex-M4 estimate: column-sliced when ``vc`` (conv_vcols.use_vc), else the prepared row kernel
    where conv_m4_prep applies, else the row kernel."""
    from . import conv_m4_prep, conv_vcols

    if vc:
        return "column-sliced", conv_vcols.vc_estimate(h, wd, cin, cout, kh, kw, s, p, m1)
    oh, ow = (h + 2 * p - kh) // s + 1, (wd + 2 * p - kw) // s + 1
    few = conv_m4_prep.use_few(cin, kh, kw, (h, wd), (oh, ow), s, p)
    if conv_m4_prep.fits(cin, kh, kw) and conv_m4_prep.worth(cin, kh, kw, oh, ow, p, m1, few):
        return "prepared-rows", conv_vcols.prep_estimate(h, wd, cin, cout, kh, kw, s, p, m1)
    return "rows", conv_vcols.rows_estimate(h, wd, cin, cout, kh, kw, s, p, m1)


def use_ps(h: int, wd: int, cin: int, cout: int, kh: int, kw: int, s: int, p: int, m1: bool, optimize: str = "speed",
           vc: bool = False) -> bool:
    """The code generator's choice of bnn_conv_ps_bits for a binary conv + threshold on bits (where
    BNN_CONV_PS is on): supported, optimize "speed", and its estimate below PS_MARGIN times that of
    the kernel it replaces (other_kernel), and K = kh kw cin < 256 (byte lists: K / 2 bytes per
    output channel, 4x the weight bits; uint16 lists at K >= 256 are 8x: resnet8's 64-channel convs
    on the kernel took its flash from 50,272 B to 84,876 B for 2.7% fewer instructions).  Never with
    optimize "size": the lists come on top of the row format the other cores keep."""
    from .conv_vcols import check_optimize

    if check_optimize(optimize) == "size" or not supported(h, wd, cin, cout, kh, kw, s, p) or kh * kw * cin >= 256:
        return False
    return ps_estimate(h, wd, cin, cout, kh, kw, s, p, m1) < PS_MARGIN * other_kernel(h, wd, cin, cout, kh, kw, s, p,
                                                                                       m1, vc)[1]
