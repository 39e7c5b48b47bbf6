# SPDX-License-Identifier: MIT
"""Generation-time weight prep of the row-kernel binary conv on cores without Helium (issue 11).

``bnn_conv_bits_prep`` (bnn_conv.h / bnn_conv.c) runs the arithmetic of ``bnn__conv_bits_rows`` but
takes from flash what that function rebuilds on every call, per 32-channel chunk:

* the weight rows as the row kernel runs them (:func:`prepared_rows`): taps packed back to back
  (tap t at bit t cin, ``pack_taps``; 3x3 cin 24: four taps in three words, :func:`pack_3x3x24`)
  when :func:`row_words` packs, else the padded layout; for 3x3
  convs with 16 input channels on cores with USADA8, ``conv16_rows_bits``' pair records instead
  (:func:`pair_records`: A0 A1 A2, B0 B1 B2, A3, B3, spread(A4) | spread(B4) << 1); for 3x3 convs
  with 24 input channels on every core but the M0 and Helium, the 7-word rows with their seventh word
  tail-spread
  (:func:`rows24`, bnn_conv.c's conv24_positions: the patch in registers, 54 instructions a row);
* the popcount bounds M per window class (:func:`m_tables`), the per-call ``clamp_mm`` formula:
  ``M = clamp(floor((K_v + 2 corr - thr) / 2), -1, 32 nw)``, K_v = (valid taps) cin, corr = the +1
  weights of the padded taps (zero padding only); a position's bit is
  ``popcount(patch ^ row) <= M``; pair records and 3x3x24 rows take ``~M = -M - 1``.

The same data serves ``bnn_conv_bits_few`` (bnn_conv.c), which the code generator calls instead where
:func:`use_few` (3x3, cin <= 32, <= 16 positions; 3x3x16 and 3x3x32 at any size): the output in tiles of <= 16
positions, each tile's patches packed by full-window packs (zero-bordered copies only where windows
leave the input), then the row kernel per chunk on all the tile's positions (3x3x16: an assembly loop
over every position's pair records with the patch in registers; 3x3x24: the same over tail-spread
rows).

Invariant: for every output position the table selected by (ycls[oy], xcls[ox]) equals the M that
``bnn__conv_bits_rows`` computes for that position's window, and the rows equal its packed rows, so
the prepared entry gives bit for bit the same output.  Exact integer arithmetic (int64, no clamp
of thr): the C path computes in int64 too.
"""

from __future__ import annotations

import numpy as np

from .codegen import pack_bits
from .conv_mve_prep import class_masks, window_classes

# bnn_conv.h defaults (non-Helium): BNN_CONV_DENSE_WORDS, BNN_CONV_PATCH_WORDS, BNN_CONV_MAX_TAPS
DENSE_WORDS = 640
DENSE_WORDS_M0 = 160
PATCH_WORDS = 128
MAX_TAPS = 9
PAIR_WORDS = 9


def row_words(cin: int, kh: int, kw: int, dense_words: int = DENSE_WORDS) -> int:
    """bnn__conv_row_words (non-Helium builds): words per weight row as the row kernel runs it."""
    taps = kh * kw
    nd = -(-taps * cin // 32)
    n = taps * -(-cin // 32)
    return nd if cin % 32 != 0 and 32 * nd <= dense_words and nd < n else n


def fits(cin: int, kh: int, kw: int) -> bool:
    """The prepared entry runs the row kernel (not bnn_conv.c's generic window path)."""
    n = kh * kw * -(-cin // 32)
    return 0 < n <= PATCH_WORDS and kh * kw <= MAX_TAPS


def worth(cin: int, kh: int, kw: int, out_h: int, out_w: int, pad: int, pad_minus1: bool, few: bool = False) -> bool:
    """The code generator's choice between the prepared data (bnn_conv_bits_prep / _few) and the plain
    call.  Measured on the Cortex-M4 (issue 11 grid): the prepared entry saves the per-call weight work
    (~1,500 instructions at 16 channels) and the border corrections, but its 3x3x16 pair-record interior
    costs ~5 instructions more per position (32x32x16 s1 p0: 646,087 against 641,784), so 3x3x16
    convs without zero-padding classes (pad 0 or -1 padding) over 256 positions keep the plain call,
    unless ``few``: the layer runs bnn_conv_bits_few (use_few), which beats the plain call there
    (32x32x16 s1 p0: 598,893 against 641,784)."""
    return few or not (uses_pairs(cin, kh, kw) and (pad == 0 or pad_minus1) and out_h * out_w > 256)


# bnn_conv.h / bnn_conv.c defaults of bnn_conv_bits_few: BNN_CONV_FEW_POS, BNN_CONV_FEW_IMG
FEW_POS = 16
FEW_IMG = 160


def one_tile(cin: int, kh: int, kw: int, in_hw: tuple[int, int], out_hw: tuple[int, int], stride: int,
             pad: int) -> bool:
    """bnn__conv_bits_few runs the layer as one tile: 3x3, cin <= 32, at most FEW_POS output positions
    and the zero-bordered copy of all windows (needed with padding or windows past the input) within
    FEW_IMG words."""
    (h, w), (oh, ow) = in_hw, out_hw
    if kh != 3 or kw != 3 or not 0 < cin <= 32 or not 0 < oh * ow <= FEW_POS:
        return False
    yr, xc = (oh - 1) * stride + 3, (ow - 1) * stride + 3
    return not (pad or yr > h or xc > w) or yr * xc <= FEW_IMG


def use_few(cin: int, kh: int, kw: int, in_hw: tuple[int, int], out_hw: tuple[int, int], stride: int,
            pad: int) -> bool:
    """The code generator calls bnn_conv_bits_few (not bnn_conv_bits_prep) on the prepared data where it
    measured faster on the Cortex-M4 (issue 11 grid, benchmarks/bench_conv_grid_m4.py, kernels few and
    prep): layers it runs as one tile (one_tile; 0.6% to 15% fewer instructions than bnn_conv_bits_prep
    on every grid shape with <= 16 positions and <= 32 channels, 4x4x16 stride 1 pad 1: 0.298 against
    0.355 per MAC), and 3x3x16 layers of any size in tiles of <= FEW_POS positions (7% to 11% fewer
    than bnn_conv_bits_prep on every 16-channel grid shape; with the 72-instruction records, main after
    the rec16 merge: 32x32 stride 2 pad 1 0.313 -> 0.290, 8x8 stride 1 pad 1 0.328 -> 0.290), and 3x3x32 at any size (0.1% to 2% fewer: 16x16 stride 1 pad 0
    491,239 -> 486,968); not 3x3x24 over 16 positions: with the 3x3x24 tail-spread rows on both entries
    the tiles measured 0.4% to 0.8% more at 32x32 and within 2% either way below (main after the conv24
    merge, `bench_conv_grid_m4.py prep,few OUT.json "c == 24"`: 8x8 stride 1 pad 1 0.270 against 0.275,
    16x16 stride 2 pad 1 0.274 against 0.273), no clear rule, so bnn_conv_bits_prep.  About 4.2 KB more
    code once per image than bnn_conv_bits_prep (tests' 8x8 CNN, Cortex-M4 text: 23,812 against
    19,652 B; 22,212 B before the tiles), so emit-c --optimize size keeps bnn_conv_bits_prep
    (emitters._m4_prep_call)."""
    if one_tile(cin, kh, kw, in_hw, out_hw, stride, pad):
        return True
    return kh == 3 and kw == 3 and cin in (16, 32) and out_hw[0] * out_hw[1] > 0


def uses_pairs(cin: int, kh: int, kw: int, dsp: bool = True, dense_words: int = DENSE_WORDS) -> bool:
    """3x3 cin 16 on a core with USADA8 (BNN_CONV16_PAIRS): pair records."""
    return dsp and cin == 16 and kh == 3 and kw == 3 and row_words(cin, kh, kw, dense_words) == 5


def uses_rows24(cin: int, kh: int, kw: int, dense_words: int = DENSE_WORDS) -> bool:
    """3x3 cin 24 packed into 7 words (BNN_CONV24_ROWS: Cortex-M3 / M4 / M7 / M33, with or without
    USADA8): tail-spread rows."""
    return cin == 24 and kh == 3 and kw == 3 and row_words(cin, kh, kw, dense_words) == 7


def tail_spread(t: np.ndarray) -> np.ndarray:
    """bnn_conv.h bnn_conv24_tail: 24-bit words with bit 3 of every nibble moved to nibbles 6 and 7
    (bits 3, 7 -> 24, 28; 11, 15 -> 25, 29; 19, 23 -> 26, 30), so bit 3 of each nibble is 0."""
    t = np.asarray(t).astype(np.uint64)
    m = np.uint64(0xFFFFFFFF)
    out = (t & np.uint64(0x77777777)) | ((t << np.uint64(21)) & m & np.uint64(0x11000000))
    out |= ((t << np.uint64(14)) & np.uint64(0x22000000)) | ((t << np.uint64(7)) & np.uint64(0x44000000))
    return out.astype(np.uint32)


def rows24(w: np.ndarray) -> np.ndarray:
    """3x3x24 weights (cout, 3, 3, 24) -> uint32 (cout, 7): pack_3x3x24's rows with the seventh word
    (tap 8) tail-spread, as bnn_conv.c's conv24_positions reads them (row j of chunk c0 at 7 (c0 + j))."""
    rows = prepared_rows(w)
    assert rows.shape[1] == 7, "tail-spread rows are for 3x3 convs with 24 input channels"
    rows[:, 6] = tail_spread(rows[:, 6])
    return rows


def pack_3x3x24(taps: np.ndarray) -> np.ndarray:
    """bnn_conv.c pack_taps_3x3x24: tap words (..., 9) uint32 (24 bits each) -> (..., 7) words,
    taps a, b, c, d as a | d << 24, b | (d >> 8) << 24, c | (d >> 16) << 24 (taps 0-3, 4-7), tap 8."""
    t = taps.astype(np.uint64)
    out = []
    for g in (0, 4):
        a, b, c, d = t[..., g], t[..., g + 1], t[..., g + 2], t[..., g + 3]
        out += [a | (d & 0xFF) << 24, b | ((d >> 8) & 0xFF) << 24, c | ((d >> 16) & 0xFF) << 24]
    out.append(t[..., 8])
    return np.stack(out, axis=-1).astype(np.uint32)


def prepared_rows(w: np.ndarray, dense_words: int = DENSE_WORDS) -> np.ndarray:
    """±1 weights (cout, kh, kw, cin) -> uint32 (cout, nw) as bnn_conv.c's pack_taps writes them:
    packed taps (tap t at bit t cin; 3x3 cin 24: pack_3x3x24's order) when row_words packs, else
    one padded word group per tap (the plain layout)."""
    o, kh, kw, c = w.shape
    nw = row_words(c, kh, kw, dense_words)
    if nw == kh * kw * -(-c // 32):
        return pack_bits(w).reshape(o, -1)
    if c == 24 and kh == 3 and kw == 3:
        return pack_3x3x24(pack_bits(w).reshape(o, 9))
    return pack_bits(np.asarray(w).reshape(o, kh * kw * c))  # zero bits above kh kw cin


def _spread(h: np.ndarray) -> np.ndarray:
    """The 16 low bits of each word at the even bit positions (bnn_conv.h bnn_conv16_spread)."""
    h = h.astype(np.uint64) & 0xFFFF
    out = np.zeros_like(h)
    for i in range(16):
        out |= ((h >> np.uint64(i)) & np.uint64(1)) << np.uint64(2 * i)
    return out.astype(np.uint32)


def pair_records(w: np.ndarray) -> np.ndarray:
    """3x3x16 weights (cout, 3, 3, 16) -> uint32 records: per 32-channel chunk, rows (j, j + 1) as
    9 words (A0 A1 A2 B0 B1 B2 A3 B3 spread(A4) | spread(B4) << 1), an odd count's last row
    paired with itself (bnn_conv.c conv16_pack_pairs); 9 ceil(...) words in all."""
    rows = prepared_rows(w)  # (cout, 5)
    assert rows.shape[1] == 5, "pair records are for 3x3 convs with 16 input channels"
    out = []
    o = rows.shape[0]
    for c0 in range(0, o, 32):
        cnt = min(32, o - c0)
        for j in range(0, cnt, 2):
            a = rows[c0 + j]
            b = rows[c0 + j + 1] if j + 1 < cnt else a
            tail = _spread(a[4:5])[0] | (_spread(b[4:5])[0] << np.uint32(1))
            out.append([a[0], a[1], a[2], b[0], b[1], b[2], a[3], b[3], tail])
    return np.asarray(out, dtype=np.uint32).reshape(-1)


def m_tables(w: np.ndarray, thr: np.ndarray, in_hw: tuple[int, int], out_hw: tuple[int, int], stride: int,
             pad: int, pad_minus1: bool, nw: int, negate: bool = False
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(M tables (ny nx, cout) int32, xcls (out_w,) uint8, ycls (out_h,) uint8); negate: ~M.

    Zero padding: one table per distinct (row window, column window) pair; -1 padding or no
    padding: one table (K_v = kh kw cin everywhere, no correction)."""
    o, kh, kw, c = w.shape
    t = np.asarray(thr, dtype=np.int64)
    ones = (np.asarray(w) > 0).sum(-1).reshape(o, kh * kw).astype(np.int64)  # c_t per channel
    ywin, xwin, ys, xs = window_classes(in_hw, out_hw, kh, kw, stride, pad, pad_minus1)
    tables = np.zeros((len(ys) * len(xs), o), dtype=np.int64)
    for row, valid in class_masks(ys, xs, kh, kw):
        v = int(valid.sum()) * c + 2 * ones[:, ~valid.ravel()].sum(-1) - t
        m = np.where(v >= 0, np.minimum(v >> 1, 32 * nw), -1)  # bnn_conv.c clamp_mm
        tables[row] = ~m if negate else m
    ycls = np.array([ys.index(v) for v in ywin], dtype=np.uint8)
    xcls = np.array([xs.index(v) for v in xwin], dtype=np.uint8)
    return tables.astype(np.int32), xcls, ycls


def prepare(w: np.ndarray, thr: np.ndarray, in_hw: tuple[int, int], out_hw: tuple[int, int], stride: int,
            pad: int, pad_minus1: bool, dsp: bool = True, dense_words: int = DENSE_WORDS) -> dict:
    """Everything bnn_conv_prep_t holds for a build with USADA8 (dsp) and BNN_CONV_DENSE_WORDS =
    dense_words: {"nw", "pairs", "rows" (uint32 words), "m" (int32, ny nx cout), "xcls", "ycls", "nx"};
    "pairs" 1: 3x3x16 pair records or 3x3x24 tail-spread rows, both with ~M tables (pair records of
    an odd cout: cout + 1 columns, the last 0, a bit that never fires; bnn_conv_prep_t.cpad is the
    row stride)."""
    _, kh, kw, c = w.shape
    nw = row_words(c, kh, kw, dense_words)
    pairs = uses_pairs(c, kh, kw, dsp, dense_words)
    r24 = uses_rows24(c, kh, kw, dense_words)
    if pairs:
        rows = pair_records(w)
    else:
        rows = rows24(w).reshape(-1) if r24 else prepared_rows(w, dense_words).reshape(-1)
    m, xcls, ycls = m_tables(w, thr, in_hw, out_hw, stride, pad, pad_minus1, nw, negate=pairs or r24)
    if pairs and m.shape[1] % 2:
        # pair records of an odd count: one more ~M column, 0 (M = -1: never fires), so the assembly record
        # loops run the last record (row cout - 1 paired with itself) as a whole pair whose second bit is 0
        m = np.concatenate([m, np.zeros((m.shape[0], 1), dtype=m.dtype)], axis=1)
    pairs = pairs or r24
    return {"nw": nw, "pairs": int(pairs), "rows": rows, "m": m, "xcls": xcls, "ycls": ycls,
            "nx": int(xcls.max()) + 1 if len(xcls) else 1}
